//! Conformance checks for the operators' store operations: reopening and purging.

use super::{MINUTE, claim_ids, clock, finish, start, suspend, t};
use crate::store::{
    Commit, EventKind, HistoryEvent, Purge, Reopen, Sent, Snapshot, Status, StepRecord, Store, StoreError,
};

fn snapshot(point: &str, state: &str) -> Snapshot {
    Snapshot { point: point.to_owned(), fingerprint: "fp-1".to_owned(), state: state.to_owned() }
}

fn reopen_of(record: &crate::store::ExecutionRecord, snapshot: Option<Snapshot>, at: u64) -> Reopen {
    Reopen {
        id: record.id.clone(),
        expected_version: record.version,
        snapshot,
        event: HistoryEvent::new(t(at), EventKind::ExecutionRedriven).with_detail("by ops: bug fixed"),
        now: t(at),
    }
}

/// `reopen` turns a failed or cancelled execution into a running one from the given
/// checkpoint, clears what its end wrote, appends its event and keeps its inbox; it refuses
/// unknown ids, stale versions and every other status, changing nothing.
pub async fn reopen_rules<S: Store>(store: S) {
    let missing = Reopen {
        id: "nobody".to_owned(),
        expected_version: 1,
        snapshot: None,
        event: HistoryEvent::new(t(1), EventKind::ExecutionRedriven),
        now: t(1),
    };
    assert!(matches!(store.reopen(missing).await, Err(StoreError::NotFound(id)) if id == "nobody"));

    // Running, suspended and succeeded executions are refused.
    let running = start(&store, "running", "wf", t(1)).await;
    let suspended = suspend(&store, &start(&store, "suspended", "wf", t(1)).await, Some(t(100)), None).await;
    let succeeded = finish(&store, &start(&store, "succeeded", "wf", t(1)).await, Status::Succeeded).await;
    for record in [&running, &suspended, &succeeded] {
        let refused = store.reopen(reopen_of(record, None, 5)).await;
        assert!(
            matches!(&refused, Err(StoreError::WrongStatus { id, status, .. }) if *id == record.id && *status == record.status),
            "{}: {refused:?}",
            record.id
        );
        assert_eq!(store.load(&record.id).await.unwrap().as_ref(), Some(record), "{} changed", record.id);
    }

    // A failed execution with a checkpoint, a step record, an inbox event and past claims.
    let record = start(&store, "failed", "wf", t(1)).await;
    let claimed = store.claim("failed", "w-1", &clock(t(2)), MINUTE).await.unwrap().expect("claim");
    let epoch = claimed.lease.as_ref().map(|lease| lease.epoch).unwrap_or_default();
    let mut commit = Commit::on(&record, t(3));
    commit.snapshot = Some(snapshot("validate", r#"{"n":1}"#));
    commit.step = Some(StepRecord { point: "ship".to_owned(), attempt: 3, started: false, retry_at: None });
    commit.events.push(HistoryEvent::new(t(3), EventKind::StepSucceeded).with_state(r#"{"n":1}"#));
    let record = store.commit(commit).await.unwrap();
    store.send_event("failed", "note", "1", t(4)).await.unwrap();
    let mut fail = Commit::on(&record, t(5));
    fail.status = Status::Failed;
    fail.output = Some(r#"{"Err":"boom"}"#.to_owned());
    fail.release_lease = true;
    fail.events.push(HistoryEvent::new(t(5), EventKind::ExecutionFailed).with_detail("boom"));
    let failed = store.commit(fail).await.unwrap();
    let history_before = store.history("failed").await.unwrap();

    let mut stale = reopen_of(&failed, failed.snapshot.clone(), 6);
    stale.expected_version -= 1;
    assert!(matches!(store.reopen(stale).await, Err(StoreError::Conflict { .. })));
    assert_eq!(store.load("failed").await.unwrap().as_ref(), Some(&failed));

    let reopened = store.reopen(reopen_of(&failed, failed.snapshot.clone(), 6)).await.expect("reopen");
    assert_eq!(reopened.status, Status::Running);
    assert_eq!(reopened.snapshot, failed.snapshot);
    assert_eq!((reopened.output.as_ref(), reopened.step.as_ref()), (None, None));
    assert_eq!((reopened.wake_at, reopened.waiting_for.as_ref(), reopened.lease.as_ref()), (None, None, None));
    assert_eq!((reopened.version, reopened.updated_at), (failed.version + 1, t(6)));
    assert_eq!((reopened.created_at, &reopened.input), (failed.created_at, &failed.input));
    assert_eq!(store.load("failed").await.unwrap().as_ref(), Some(&reopened));
    let history = store.history("failed").await.unwrap();
    assert_eq!(history.len(), history_before.len() + 1);
    let last = history.last().unwrap();
    assert_eq!(
        (last.seq, last.kind, last.detail.as_deref()),
        (history.len() as u64, EventKind::ExecutionRedriven, Some("by ops: bug fixed"))
    );
    assert_eq!(store.inbox("failed").await.unwrap().len(), 1, "the inbox is kept");

    // Reopening the same version twice: the second finds it changed.
    assert!(matches!(store.reopen(reopen_of(&failed, None, 7)).await, Err(StoreError::Conflict { .. })));

    // It is due at once, claimed under a later epoch, and accepts commits again.
    assert!(claim_ids(&store, "w-2", t(6), 10).await.contains(&"failed".to_owned()));
    let claimed = store.load("failed").await.unwrap().unwrap();
    assert!(claimed.lease.as_ref().is_some_and(|lease| lease.epoch > epoch));
    let mut done = Commit::on(&claimed, t(8));
    done.lease = claimed.lease.as_ref().map(|lease| lease.token());
    done.status = Status::Succeeded;
    done.output = Some(r#"{"Ok":1}"#.to_owned());
    assert_eq!(store.commit(done).await.expect("commit after reopen").status, Status::Succeeded);

    // A cancelled execution reopened from its start (no snapshot).
    let cancelled = finish(&store, &start(&store, "cancelled", "wf", t(1)).await, Status::Cancelled).await;
    let reopened = store.reopen(reopen_of(&cancelled, None, 9)).await.expect("reopen cancelled");
    assert_eq!((reopened.status, reopened.snapshot.as_ref()), (Status::Running, None));
}

fn purge(before: u64, workflow: Option<&str>, status: Option<Status>, limit: usize) -> Purge {
    Purge { finished_before: t(before), workflow: workflow.map(str::to_owned), status, limit }
}

/// `purge` deletes finished executions that match, oldest finished first and at most `limit`,
/// with their history, inbox and event keys; it never touches an unfinished execution.
pub async fn purge_rules<S: Store>(store: S) {
    let at = |record: &crate::store::ExecutionRecord, secs: u64| {
        let mut commit = Commit::on(record, t(secs));
        commit.events.push(HistoryEvent::new(t(secs), EventKind::Resumed));
        commit
    };
    // Finished at t(10) .. t(14), of two workflows and three statuses.
    let mut finished = Vec::new();
    for (i, (workflow, status)) in [
        ("order", Status::Succeeded),
        ("order", Status::Failed),
        ("order", Status::Cancelled),
        ("mail", Status::Succeeded),
        ("order", Status::Succeeded),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("done-{i}");
        let record = start(&store, &id, workflow, t(1)).await;
        let record = store.commit(at(&record, 10 + i as u64 - 1)).await.unwrap();
        assert!(matches!(store.send_keyed_event(&id, "e", "1", Some("k"), t(5)).await, Ok(Sent::New(_))));
        let mut end = Commit::on(&record, t(10 + i as u64));
        end.status = status;
        end.output = Some(r#"{"Ok":null}"#.to_owned());
        finished.push(store.commit(end).await.unwrap());
    }
    // Old but unfinished.
    start(&store, "old-running", "order", t(0)).await;
    suspend(&store, &start(&store, "old-suspended", "order", t(0)).await, Some(t(1)), None).await;

    let refused = store.purge(purge(100, None, Some(Status::Running), 10)).await;
    assert!(matches!(refused, Err(StoreError::Invalid(_))), "{refused:?}");
    assert_eq!(store.purge(purge(100, None, None, 0)).await.unwrap(), Vec::<String>::new());

    // Strictly before: done-0 finished at t(10) is not before t(10).
    assert_eq!(store.purge(purge(10, None, None, 10)).await.unwrap(), Vec::<String>::new());
    // By workflow and status, bounded, oldest first.
    assert_eq!(store.purge(purge(100, Some("order"), Some(Status::Succeeded), 1)).await.unwrap(), ["done-0"]);
    assert_eq!(store.purge(purge(100, Some("mail"), None, 10)).await.unwrap(), ["done-3"]);
    assert_eq!(store.purge(purge(13, None, None, 10)).await.unwrap(), ["done-1", "done-2"]);
    assert_eq!(store.purge(purge(100, None, None, 10)).await.unwrap(), ["done-4"]);
    assert_eq!(store.purge(purge(100, None, None, 10)).await.unwrap(), Vec::<String>::new());

    for record in &finished {
        let id = record.id.as_str();
        assert_eq!(store.load(id).await.unwrap(), None, "{id} is gone");
        assert!(matches!(store.history(id).await, Err(StoreError::NotFound(_))), "{id}'s history is gone");
        assert!(matches!(store.inbox(id).await, Err(StoreError::NotFound(_))), "{id}'s inbox is gone");
        // Nothing of it is left: the id starts afresh, its event key too.
        let again = start(&store, id, "order", t(200)).await;
        assert_eq!((again.version, store.history(id).await.unwrap().len()), (1, 1));
        assert!(matches!(store.send_keyed_event(id, "e", "1", Some("k"), t(201)).await, Ok(Sent::New(1))));
    }
    for id in ["old-running", "old-suspended"] {
        assert!(store.load(id).await.unwrap().is_some(), "{id} was purged while unfinished");
    }
}
