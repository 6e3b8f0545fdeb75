//! The conformance suite every [`Store`] backend must pass.
//!
//! Each check is a generic `async fn` that takes a fresh, empty store and panics on a breach of
//! the [`Store`] contract. A backend runs them all with `conformance_tests!(fresh)`, where
//! `fresh()` returns `(store, guard)` and `guard` (a temporary directory, say) lives as long as
//! the test:
//!
//! ```text
//! #[cfg(test)]
//! mod tests {
//!     fn fresh() -> (MemoryStore, ()) { (MemoryStore::new(), ()) }
//!     crate::store::conformance::conformance_tests!(fresh);
//! }
//! ```

use std::time::Duration;

use super::{
    Commit, Created, EventKind, ExecutionRecord, HistoryEvent, Lease, ListFilter, NewExecution, Sent, Snapshot, Status,
    StepRecord, Store, StoreError, WorkflowInfo,
};
use crate::time::{ManualClock, SharedClock, Timestamp};

mod children;
mod claims;
mod operations;

pub use self::children::{
    claims_only_runnable_layouts, commit_notifies_other_executions, commit_spawns_children, list_by_business_key,
    paused_workflows_are_not_claimed, refused_commit_spawns_nothing,
};
pub use self::claims::{
    claim_one_rules, claim_order_and_limit, concurrent_claimers_never_share, expired_lease_is_reclaimable,
    lease_renew_and_release, lease_runs_from_the_grant, same_owner_reclaim_fences_the_old_claim, suspended_due_rules,
    terminal_never_claimed,
};
pub use self::operations::{purge_rules, reopen_rules};

/// Expands to one `#[tokio::test]` per conformance check, each on a store from `$fresh()`, which
/// returns `(store, guard)`; with `async`, `$fresh().await` returns `Option<(store, guard)>` and
/// `None` skips the test (a backend whose server is not there).
#[cfg(test)]
macro_rules! conformance_tests {
    (async $fresh:path) => {
        $crate::store::conformance::conformance_tests!(@list (async $fresh));
    };
    ($fresh:path) => {
        $crate::store::conformance::conformance_tests!(@list (sync $fresh));
    };
    (@list $how:tt) => {
        $crate::store::conformance::conformance_tests!(@each $how;
            create_is_idempotent,
            create_batch_creates_each_as_create_does,
            load_missing_is_none,
            commit_conflict_changes_nothing,
            commit_writes_every_field,
            commit_changes_status_and_wake_at_independently,
            commit_appends_history_and_consumes_inbox,
            terminal_execution_refuses_commits,
            batch_failures_are_isolated,
            concurrent_claimers_never_share,
            expired_lease_is_reclaimable,
            same_owner_reclaim_fences_the_old_claim,
            lease_runs_from_the_grant,
            lease_renew_and_release,
            suspended_due_rules,
            terminal_never_claimed,
            claim_order_and_limit,
            claim_one_rules,
            send_event_rules,
            keyed_events_are_stored_once,
            list_filters_and_order,
            history_keeps_order_and_fields,
            workflow_registrations,
            commit_spawns_children,
            refused_commit_spawns_nothing,
            commit_notifies_other_executions,
            list_by_business_key,
            paused_workflows_are_not_claimed,
            claims_only_runnable_layouts,
            reopen_rules,
            purge_rules,
        );
    };
    (@each (sync $fresh:path); $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (store, _guard) = $fresh();
                $crate::store::conformance::$check(store).await;
            }
        )*
    };
    (@each (async $fresh:path); $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some((store, _guard)) = $fresh().await else { return };
                $crate::store::conformance::$check(store).await;
            }
        )*
    };
}
#[cfg(test)]
pub(crate) use conformance_tests;

const MINUTE: Duration = Duration::from_secs(60);

/// A timestamp `secs` seconds after the suite's epoch.
fn t(secs: u64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + secs * 1_000)
}

/// A clock that reads `now` until it is moved.
fn clock(now: Timestamp) -> SharedClock {
    std::sync::Arc::new(ManualClock::new(now))
}

async fn start<S: Store>(store: &S, id: &str, workflow: &str, at: Timestamp) -> ExecutionRecord {
    let new = NewExecution::new(id, workflow, format!("{{\"id\":\"{id}\"}}"), at);
    match store.create(new).await.expect("create") {
        Created::New(record) => record,
        Created::Existing(record) => panic!("{id} already existed: {record:?}"),
    }
}

/// Commits `record` as suspended until `wake_at` and/or waiting for event `waiting_for`.
async fn suspend<S: Store>(
    store: &S,
    record: &ExecutionRecord,
    wake_at: Option<Timestamp>,
    waiting_for: Option<&str>,
) -> ExecutionRecord {
    let mut commit = Commit::on(record, record.updated_at);
    commit.status = Status::Suspended;
    commit.wake_at = wake_at;
    commit.waiting_for = waiting_for.map(str::to_owned);
    store.commit(commit).await.expect("suspend")
}

async fn finish<S: Store>(store: &S, record: &ExecutionRecord, status: Status) -> ExecutionRecord {
    let mut commit = Commit::on(record, record.updated_at);
    commit.status = status;
    commit.output = Some(r#"{"Ok":null}"#.to_owned());
    commit.wake_at = Some(t(0));
    store.commit(commit).await.expect("finish")
}

async fn claim_ids<S: Store>(store: &S, owner: &str, now: Timestamp, limit: usize) -> Vec<String> {
    let claimed = store.claim_due(owner, &clock(now), MINUTE, limit).await.expect("claim_due");
    claimed.into_iter().map(|record| record.id).collect()
}

/// `create` inserts once; later calls with the same id return the stored record unchanged.
pub async fn create_is_idempotent<S: Store>(store: S) {
    let first = start(&store, "e-1", "order", t(1)).await;
    assert_eq!(first.status, Status::Running);
    assert_eq!((first.version, first.created_at, first.updated_at), (1, t(1), t(1)));
    assert_eq!((first.snapshot.as_ref(), first.lease.as_ref()), (None, None));
    let again = NewExecution::new("e-1", "other", "\"different input\"", t(2));
    let existing = store.create(again).await.unwrap();
    assert_eq!(existing, Created::Existing(first.clone()));
    assert!(!existing.is_new());
    assert_eq!(store.load("e-1").await.unwrap(), Some(first));
    let history = store.history("e-1").await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!((history[0].seq, history[0].kind, history[0].at), (1, EventKind::ExecutionStarted, t(1)));
    assert_eq!(history[0].state.as_deref(), Some(r#"{"id":"e-1"}"#));
}

/// `load` of an unknown id is `None`, not an error.
pub async fn load_missing_is_none<S: Store>(store: S) {
    assert_eq!(store.load("nope").await.unwrap(), None);
    start(&store, "e-1", "order", t(1)).await;
    assert_eq!(store.load("e-2").await.unwrap(), None);
}

/// A commit with a stale version fails with `Conflict` and changes nothing at all.
pub async fn commit_conflict_changes_nothing<S: Store>(store: S) {
    let v1 = start(&store, "e-1", "order", t(1)).await;
    store.send_event("e-1", "payment", "1", t(2)).await.unwrap();
    let v2 = suspend(&store, &v1, Some(t(100)), None).await;
    assert_eq!(v2.version, 2);

    let mut stale = Commit::on(&v1, t(3));
    stale.status = Status::Succeeded;
    stale.events.push(HistoryEvent::new(t(3), EventKind::ExecutionSucceeded));
    stale.consume.push(1);
    let error = store.commit(stale).await.unwrap_err();
    assert!(matches!(&error, StoreError::Conflict { id, expected: 1, actual: 2 } if id == "e-1"), "{error:?}");
    assert!(!error.is_retryable());
    assert_eq!(store.load("e-1").await.unwrap(), Some(v2));
    assert_eq!(store.history("e-1").await.unwrap().len(), 1);
    assert_eq!(store.inbox("e-1").await.unwrap().len(), 1);

    let unknown = Commit { id: "nope".into(), ..Commit::on(&v1, t(3)) };
    assert!(matches!(store.commit(unknown).await, Err(StoreError::NotFound(id)) if id == "nope"));
}

/// A commit writes every field it carries, bumps the version, sets `updated_at` and keeps what
/// only `create` sets.
pub async fn commit_writes_every_field<S: Store>(store: S) {
    let v1 = start(&store, "e-1", "order", t(1)).await;
    let mut commit = Commit::on(&v1, t(5));
    commit.status = Status::Suspended;
    commit.snapshot =
        Some(Snapshot { point: "payment".into(), fingerprint: "fp-1".into(), state: r#"{"payment":{"x":1}}"#.into() });
    let retry_at = Some(t(60));
    commit.step = Some(StepRecord { point: "ship".into(), attempt: 2, started: true, retry_at });
    commit.wake_at = Some(t(60));
    commit.waiting_for = Some("approval".into());
    commit.output = Some("{}".into());
    let v2 = store.commit(commit.clone()).await.unwrap();
    let expected = ExecutionRecord {
        status: Status::Suspended,
        snapshot: commit.snapshot,
        output: commit.output,
        wake_at: commit.wake_at,
        step: commit.step,
        waiting_for: commit.waiting_for,
        version: 2,
        updated_at: t(5),
        ..v1.clone()
    };
    assert_eq!(v2, expected);
    assert_eq!(store.load("e-1").await.unwrap(), Some(expected));

    let cleared = store.commit(Commit { snapshot: None, step: None, ..Commit::on(&v2, t(6)) });
    let v3 = cleared.await.unwrap();
    assert_eq!((v3.version, v3.snapshot, v3.step), (3, None, None));
}

/// Status and wake-up time change together or alone, the lease stays unless released, and
/// claims follow the stored values after each commit (a backend may write only what changes).
pub async fn commit_changes_status_and_wake_at_independently<S: Store>(store: S) {
    start(&store, "e-1", "order", t(1)).await;
    let claimed = store.claim("e-1", "w-1", &clock(t(2)), MINUTE).await.unwrap().expect("claimable");
    let lease = claimed.lease.clone();
    let commit = |record: &ExecutionRecord, status, wake_at, release_lease| Commit {
        lease: record.lease.as_ref().map(Lease::token),
        status,
        wake_at,
        release_lease,
        ..Commit::on(record, t(3))
    };

    // The status changes, the wake-up time does not (none before, none after).
    let running = store.commit(commit(&claimed, Status::Suspended, None, false)).await.unwrap();
    assert_eq!((running.status, running.wake_at, &running.lease), (Status::Suspended, None, &lease));
    // The wake-up time changes alone.
    let later = store.commit(commit(&running, Status::Suspended, Some(t(100)), false)).await.unwrap();
    assert_eq!((later.status, later.wake_at, &later.lease), (Status::Suspended, Some(t(100)), &lease));
    let sooner = store.commit(commit(&later, Status::Suspended, Some(t(50)), true)).await.unwrap();
    assert_eq!((sooner.status, sooner.wake_at, &sooner.lease), (Status::Suspended, Some(t(50)), &None));
    assert_eq!(store.load("e-1").await.unwrap().as_ref(), Some(&sooner));
    assert!(claim_ids(&store, "w-2", t(49), 10).await.is_empty(), "not due before its new wake-up time");
    assert_eq!(claim_ids(&store, "w-1", t(50), 10).await, ["e-1"], "due at its new wake-up time");

    // Both change at once, then the status alone with the wake-up time kept.
    let reloaded = store.load("e-1").await.unwrap().expect("stored");
    let both = Commit { now: t(51), ..commit(&reloaded, Status::Running, None, false) };
    let both = store.commit(both).await.unwrap();
    assert_eq!((both.status, both.wake_at, both.version), (Status::Running, None, 5));
    let parked = Commit { now: t(52), ..commit(&both, Status::Running, Some(t(500)), true) };
    let parked = store.commit(parked).await.unwrap();
    assert_eq!((parked.status, parked.wake_at, parked.lease.as_ref()), (Status::Running, Some(t(500)), None));
    let suspended = store.commit(Commit { status: Status::Suspended, ..Commit::on(&parked, t(53)) });
    let suspended = suspended.await.unwrap();
    assert_eq!((suspended.status, suspended.wake_at), (Status::Suspended, Some(t(500))));
    assert!(claim_ids(&store, "w-2", t(499), 10).await.is_empty(), "suspended until its kept wake-up time");
    assert_eq!(claim_ids(&store, "w-2", t(500), 10).await, ["e-1"]);
    assert_eq!(store.load("e-1").await.unwrap().map(|record| record.version), Some(7));
}

/// A commit appends its events with the next seqs (ignoring the seqs passed in) and deletes
/// the inbox events it consumes; inbox seqs are never reused.
pub async fn commit_appends_history_and_consumes_inbox<S: Store>(store: S) {
    let v1 = start(&store, "e-1", "order", t(1)).await;
    let first = store.send_event("e-1", "payment", r#"{"amount":1}"#, t(2)).await.unwrap();
    let second = store.send_event("e-1", "payment", r#"{"amount":2}"#, t(3)).await.unwrap();
    assert_eq!((first, second), (1, 2));

    let mut commit = Commit::on(&v1, t(5));
    let received = HistoryEvent::new(t(4), EventKind::EventReceived);
    let suspended = HistoryEvent { seq: 99, ..HistoryEvent::new(t(5), EventKind::Suspended) };
    commit.events = vec![received.with_point("payment", "src/a.rs", 7), suspended];
    commit.consume = vec![1, 42];
    let v2 = store.commit(commit).await.unwrap();

    let history = store.history("e-1").await.unwrap();
    let seqs: Vec<(u64, EventKind)> = history.iter().map(|e| (e.seq, e.kind)).collect();
    let expected = [(1, EventKind::ExecutionStarted), (2, EventKind::EventReceived), (3, EventKind::Suspended)];
    assert_eq!(seqs, expected, "the store assigns seqs; the 99 passed in is ignored");
    let inbox = store.inbox("e-1").await.unwrap();
    let left: Vec<(u64, &str, Timestamp)> = inbox.iter().map(|e| (e.seq, e.payload.as_str(), e.at)).collect();
    assert_eq!(left, [(2, r#"{"amount":2}"#, t(3))]);
    let third = store.send_event("e-1", "payment", "3", t(6)).await.unwrap();
    assert_eq!(third, 3, "inbox seqs are never reused");

    let mut next = Commit::on(&v2, t(7));
    next.consume = vec![2, 3];
    next.events = vec![HistoryEvent::new(t(7), EventKind::Resumed)];
    assert_eq!(store.commit(next).await.unwrap().version, 3);
    let history = store.history("e-1").await.unwrap();
    assert_eq!(history.last().map(|event| event.seq), Some(4));
    assert!(store.inbox("e-1").await.unwrap().is_empty());
}

/// Once terminal, an execution never changes, even with the right version.
pub async fn terminal_execution_refuses_commits<S: Store>(store: S) {
    let v1 = start(&store, "e-1", "order", t(1)).await;
    let done = finish(&store, &v1, Status::Cancelled).await;
    let mut revive = Commit::on(&done, t(9));
    revive.status = Status::Running;
    let error = store.commit(revive).await.unwrap_err();
    assert!(matches!(&error, StoreError::Terminal(id) if id == "e-1"), "{error:?}");
    assert_eq!(store.load("e-1").await.unwrap(), Some(done));
}

/// In a batch, each commit is checked alone: a failing one does not stop the others.
pub async fn batch_failures_are_isolated<S: Store>(store: S) {
    let a = start(&store, "a", "order", t(1)).await;
    let b = start(&store, "b", "order", t(1)).await;
    let c = start(&store, "c", "order", t(1)).await;
    let b2 = suspend(&store, &b, Some(t(50)), None).await;

    let mut a_commit = Commit::on(&a, t(2));
    a_commit.events.push(HistoryEvent::new(t(2), EventKind::StepStarted));
    let a_again = Commit { expected_version: 2, ..Commit::on(&a, t(3)) };
    let mut b_stale = Commit::on(&b, t(2));
    b_stale.status = Status::Failed;
    let c_done = Commit { status: Status::Succeeded, ..Commit::on(&c, t(2)) };
    let unknown = Commit { id: "nope".into(), ..Commit::on(&a, t(2)) };
    let batch = vec![a_commit, b_stale, c_done, unknown, a_again];
    let results = store.commit_batch(batch).await.expect("batch");

    assert_eq!(results.len(), 5);
    assert_eq!(results[0].as_ref().map(|record| record.version).ok(), Some(2));
    assert!(matches!(results[1], Err(StoreError::Conflict { expected: 1, actual: 2, .. })));
    assert_eq!(results[2].as_ref().map(|record| record.status).ok(), Some(Status::Succeeded));
    assert!(matches!(results[3], Err(StoreError::NotFound(_))));
    assert_eq!(results[4].as_ref().map(|record| record.version).ok(), Some(3), "applied in order");
    assert_eq!(store.load("b").await.unwrap(), Some(b2));
    assert_eq!(store.load("a").await.unwrap().map(|record| record.version), Some(3));
    assert_eq!(store.history("a").await.unwrap().len(), 2);
    assert!(store.commit_batch(Vec::new()).await.unwrap().is_empty());
}

/// Events go to existing, unfinished executions only, and get increasing seqs.
pub async fn send_event_rules<S: Store>(store: S) {
    let error = store.send_event("nope", "payment", "{}", t(1)).await.unwrap_err();
    assert!(matches!(&error, StoreError::NotFound(id) if id == "nope"), "{error:?}");
    let record = start(&store, "e-1", "order", t(1)).await;
    assert_eq!(store.send_event("e-1", "a", r#"{"n":1}"#, t(2)).await.unwrap(), 1);
    assert_eq!(store.send_event("e-1", "b", r#"{"n":2}"#, t(3)).await.unwrap(), 2);
    let inbox = store.inbox("e-1").await.unwrap();
    let names: Vec<(u64, &str)> = inbox.iter().map(|e| (e.seq, e.name.as_str())).collect();
    assert_eq!(names, [(1, "a"), (2, "b")]);
    assert_eq!(store.load("e-1").await.unwrap(), Some(record.clone()), "the record is unchanged");

    finish(&store, &record, Status::Succeeded).await;
    let error = store.send_event("e-1", "a", "{}", t(4)).await.unwrap_err();
    assert!(matches!(&error, StoreError::Terminal(id) if id == "e-1"), "{error:?}");
    assert_eq!(store.inbox("e-1").await.unwrap().len(), 2);
    assert!(matches!(store.inbox("nope").await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.history("nope").await, Err(StoreError::NotFound(_))));
}

/// `list` filters by workflow and status, orders by creation time then id, and honours `limit`.
pub async fn list_filters_and_order<S: Store>(store: S) {
    assert!(store.list(ListFilter::default()).await.unwrap().is_empty());
    start(&store, "c", "order", t(2)).await;
    start(&store, "b", "refund", t(2)).await;
    let a = start(&store, "a", "order", t(3)).await;
    start(&store, "d", "order", t(1)).await;
    finish(&store, &a, Status::Failed).await;

    let ids = |records: Vec<ExecutionRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list(ListFilter::default()).await.unwrap()), ["d", "b", "c", "a"]);
    let orders = ListFilter { workflow: Some("order".into()), ..ListFilter::default() };
    assert_eq!(ids(store.list(orders.clone()).await.unwrap()), ["d", "c", "a"]);
    let running = ListFilter { status: Some(Status::Running), ..orders.clone() };
    assert_eq!(ids(store.list(running).await.unwrap()), ["d", "c"]);
    let failed = ListFilter { status: Some(Status::Failed), ..ListFilter::default() };
    assert_eq!(ids(store.list(failed).await.unwrap()), ["a"]);
    let limited = ListFilter { limit: Some(2), ..ListFilter::default() };
    assert_eq!(ids(store.list(limited).await.unwrap()), ["d", "b"]);
    let none = ListFilter { workflow: Some("nope".into()), ..ListFilter::default() };
    assert!(store.list(none).await.unwrap().is_empty());
}

/// History comes back in seq order with every field as written, across many commits.
pub async fn history_keeps_order_and_fields<S: Store>(store: S) {
    let mut record = start(&store, "e-1", "order", t(1)).await;
    let mut written = Vec::new();
    for i in 0..12u32 {
        let event = HistoryEvent::new(t(u64::from(i) + 2), EventKind::ALL[i as usize % EventKind::ALL.len()])
            .with_point(format!("p{i}"), "src/order.rs", 10 + i)
            .with_attempt(i + 1)
            .with_detail(format!("detail {i}"))
            .with_error_kind((i % 2 == 0).then_some("io"))
            .with_worker(format!("w-{}", i % 3))
            .with_state(format!("{{\"i\":{i}}}"));
        let mut commit = Commit::on(&record, event.at);
        commit.events = vec![event.clone(), HistoryEvent::new(event.at, EventKind::Resumed)];
        record = store.commit(commit).await.unwrap();
        written.push(event);
        written.push(HistoryEvent::new(t(u64::from(i) + 2), EventKind::Resumed));
    }
    let history = store.history("e-1").await.unwrap();
    assert_eq!(history.len(), 25);
    for (index, (stored, sent)) in history[1..].iter().zip(&written).enumerate() {
        assert_eq!(stored, &HistoryEvent { seq: index as u64 + 2, ..sent.clone() });
    }
    assert_eq!(record.version, 13);
}

/// One registration per workflow build: the latest is found by name, any build by fingerprint,
/// and registering a build again replaces its facts and makes it the latest.
pub async fn workflow_registrations<S: Store>(store: S) {
    let info = |name: &str, fingerprint: &str, version: u32| WorkflowInfo {
        name: name.to_owned(),
        fingerprint: fingerprint.to_owned(),
        facts_json: format!("{{\"version\":{version}}}"),
    };
    assert_eq!(store.workflow("order", None).await.unwrap(), None);
    store.register_workflow(info("order", "fp-1", 1)).await.unwrap();
    store.register_workflow(info("order", "fp-2", 2)).await.unwrap();
    store.register_workflow(info("refund", "fp-1", 3)).await.unwrap();
    assert_eq!(store.workflow("order", None).await.unwrap(), Some(info("order", "fp-2", 2)));
    assert_eq!(store.workflow("order", Some("fp-1")).await.unwrap(), Some(info("order", "fp-1", 1)));
    assert_eq!(store.workflow("order", Some("fp-3")).await.unwrap(), None);
    assert_eq!(store.workflow("refund", None).await.unwrap(), Some(info("refund", "fp-1", 3)));
    assert_eq!(store.workflow("nope", None).await.unwrap(), None);

    store.register_workflow(info("order", "fp-1", 4)).await.unwrap();
    assert_eq!(store.workflow("order", None).await.unwrap(), Some(info("order", "fp-1", 4)), "the latest");
    assert_eq!(store.workflow("order", Some("fp-2")).await.unwrap(), Some(info("order", "fp-2", 2)), "kept");
}

/// An event sent with an idempotency key is stored once: a repeat changes nothing and names
/// the first event's seq, also after that event was consumed. Keys belong to one execution.
pub async fn keyed_events_are_stored_once<S: Store>(store: S) {
    let v1 = start(&store, "e-1", "order", t(1)).await;
    start(&store, "e-2", "order", t(1)).await;
    let first = store.send_keyed_event("e-1", "payment", "1", Some("k"), t(2)).await.unwrap();
    assert_eq!(first, Sent::New(1));
    assert_eq!(store.send_keyed_event("e-1", "payment", "2", Some("k"), t(3)).await.unwrap(), Sent::Duplicate(1));
    assert_eq!(store.send_keyed_event("e-2", "payment", "3", Some("k"), t(3)).await.unwrap(), Sent::New(1));
    assert_eq!(store.send_keyed_event("e-1", "payment", "4", None, t(4)).await.unwrap(), Sent::New(2));
    let inbox = store.inbox("e-1").await.unwrap();
    assert_eq!(inbox.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>(), ["1", "4"]);

    let consumed = Commit { consume: vec![1], ..Commit::on(&v1, t(5)) };
    store.commit(consumed).await.unwrap();
    let repeat = store.send_keyed_event("e-1", "payment", "5", Some("k"), t(6)).await.unwrap();
    assert_eq!(repeat, Sent::Duplicate(1), "the key outlives the consumed event");
    assert_eq!(store.inbox("e-1").await.unwrap().len(), 1);
    assert!(matches!(store.send_keyed_event("nope", "x", "1", Some("k"), t(6)).await, Err(StoreError::NotFound(_))));
}

/// `create_batch` creates each execution as `create` would, in order: an id that exists, or
/// that comes twice in the batch, is found rather than created again.
pub async fn create_batch_creates_each_as_create_does<S: Store>(store: S) {
    let existing = start(&store, "e-old", "order", t(1)).await;
    let new = |id: &str| NewExecution::new(id, "order", format!("{{\"id\":\"{id}\"}}"), t(2));
    let created = store.create_batch(vec![new("e-1"), new("e-old"), new("e-2"), new("e-1")]).await.unwrap();
    let kinds: Vec<(bool, &str)> = created.iter().map(|c| (c.is_new(), c.record().id.as_str())).collect();
    assert_eq!(kinds, [(true, "e-1"), (false, "e-old"), (true, "e-2"), (false, "e-1")]);
    assert_eq!(created[1].record(), &existing);
    assert_eq!(created[3].record(), created[0].record(), "the second e-1 finds the first");
    for id in ["e-1", "e-2"] {
        let history = store.history(id).await.unwrap();
        assert_eq!(history.len(), 1, "{id} started once");
        assert_eq!(history[0].kind, EventKind::ExecutionStarted);
    }
    assert!(store.create_batch(Vec::new()).await.unwrap().is_empty());
}
