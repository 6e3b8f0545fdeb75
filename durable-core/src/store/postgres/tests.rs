//! Tests of `PostgresStore` against a real server; see `harness` for which one, and for how
//! they are skipped without one.

use std::time::Duration;

use self::harness::{SchemaGuard, admin, fresh, options, server, unique_schema};
use super::schema::SCHEMA_VERSION;
use super::{PostgresOptions, PostgresStore};
use crate::store::{
    Commit, EventKind, ExecutionRecord, HistoryEvent, Lease, ListFilter, NewExecution, Snapshot, Status, StepRecord,
    Store, StoreError, WorkflowInfo,
};
use crate::time::{ManualClock, Timestamp};

mod harness;
mod workers;

/// One test per conformance check, each on a fresh schema; skipped (with a message) without a
/// server.
mod conformance {
    crate::store::conformance::conformance_tests!(async super::fresh);
}

pub(super) fn t(secs: u64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + secs * 1_000)
}

pub(super) async fn create(store: &PostgresStore, id: &str) {
    let new = NewExecution::new(id, "order", format!("\"{id}\""), t(1));
    assert!(store.create(new).await.unwrap().is_new());
}

fn assert_error(error: &StoreError, retryable: bool, needles: &[&str]) {
    assert_eq!(error.is_retryable(), retryable, "{error:?}");
    let message = error.to_string();
    for needle in needles {
        assert!(message.contains(needle), "`{message}` should mention `{needle}`");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_safe_concurrently() {
    let Some(url) = server().await else { return };
    let schema = unique_schema();
    let _guard = SchemaGuard::new(&url, &schema);
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let (url, options) = (url.clone(), options(&schema));
            tokio::spawn(async move { PostgresStore::connect_with(&url, options).await })
        })
        .collect();
    let mut stores = Vec::new();
    for connect in connects {
        stores.push(connect.await.unwrap().expect("every concurrent connect succeeds"));
    }
    let again = PostgresStore::connect_with(&url, options(&schema)).await.expect("an up-to-date schema");
    let query = format!("SELECT version FROM \"{schema}\".durable_migrations ORDER BY version");
    let versions: Vec<i32> = admin(&url).await.query(&query, &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>(), "each migration applied once");
    assert_eq!(again.schema(), schema);

    create(&stores[0], "e-1").await;
    for store in stores.iter().chain([&again]) {
        assert_eq!(store.load("e-1").await.unwrap().map(|r| r.version), Some(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_schema_is_migrated_and_keeps_its_data() {
    let Some((store, _guard)) = fresh().await else { return };
    create(&store, "e-1").await;
    let url = server().await.unwrap();
    let schema = store.schema().to_owned();
    let downgrade = format!(
        "DROP TABLE \"{schema}\".workflows; DROP SEQUENCE \"{schema}\".workflow_registrations; \
         DROP TABLE \"{schema}\".event_keys; ALTER TABLE \"{schema}\".executions DROP COLUMN lease_epoch; \
         ALTER TABLE \"{schema}\".history DROP COLUMN error_kind; \
         ALTER TABLE \"{schema}\".history DROP COLUMN worker; \
         ALTER TABLE \"{schema}\".executions DROP COLUMN parent_id; \
         ALTER TABLE \"{schema}\".executions DROP COLUMN parent_event; \
         DROP TABLE \"{schema}\".execution_keys; DROP TABLE \"{schema}\".paused_workflows; \
         DELETE FROM \"{schema}\".durable_migrations WHERE version > 1"
    );
    admin(&url).await.batch_execute(&downgrade).await.unwrap();
    drop(store);
    let store = PostgresStore::connect_with(&url, options(&schema)).await.unwrap();
    let info = WorkflowInfo { name: "order".into(), fingerprint: "fp".into(), facts_json: "{}".into() };
    store.register_workflow(info.clone()).await.unwrap();
    assert_eq!(store.workflow("order", None).await.unwrap(), Some(info));
    assert_eq!(store.load("e-1").await.unwrap().map(|record| record.version), Some(1), "the data is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let Some((store, _guard)) = fresh().await else { return };
    create(&store, "e-1").await;
    let url = server().await.unwrap();
    let newer = SCHEMA_VERSION + 1;
    let insert = format!("INSERT INTO \"{}\".durable_migrations (version) VALUES ({newer})", store.schema());
    admin(&url).await.batch_execute(&insert).await.unwrap();
    let error = PostgresStore::connect_with(&url, options(store.schema())).await.unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    assert_error(&error, false, &[&format!("has version {newer}"), "newer than this build", store.schema()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_clear_errors() {
    let Some(url) = server().await else { return };
    let bad_schema = PostgresOptions { schema: "Bad-Name".into(), ..PostgresOptions::default() };
    let error = PostgresStore::connect_with(&url, bad_schema).await.unwrap_err();
    assert_error(&error, false, &["invalid schema name `Bad-Name`"]);
    let error = PostgresStore::connect("nonsense://").await.unwrap_err();
    assert_error(&error, false, &["postgres: invalid database url"]);

    let timeout = Duration::from_secs(3);
    let closed_port = PostgresOptions { connect_timeout: timeout, ..PostgresOptions::default() };
    let error = PostgresStore::connect_with("postgres://postgres@127.0.0.1:1/test", closed_port).await.unwrap_err();
    assert_error(&error, true, &["postgres: cannot connect to the database"]);

    let separator = if url.contains('?') { '&' } else { '?' };
    let missing = format!("{url}{separator}dbname=durable_no_such_database");
    let error = PostgresStore::connect(&missing).await.unwrap_err();
    assert_error(&error, false, &["durable_no_such_database", "does not exist"]);
}

/// A record with every field set, some history and an inbox, written and read back by a second
/// store on the same schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_round_trips() {
    let Some((store, _guard)) = fresh().await else { return };
    create(&store, "e-1").await;
    store.send_event("e-1", "payment", r#"{"amount":3}"#, t(2)).await.unwrap();
    store.send_event("e-1", "other", "null", t(3)).await.unwrap();
    let claimed = store.claim_due("w-1", &ManualClock::shared(t(4)), Duration::from_secs(60), 1).await.unwrap();
    let mut commit = Commit::on(&claimed[0], t(5));
    commit.lease = claimed[0].lease.as_ref().map(Lease::token);
    commit.status = Status::Suspended;
    let state = r#"{"payment":{"order":"o-1","note":"ünïcødé ✓"}}"#;
    commit.snapshot = Some(Snapshot { point: "payment".into(), fingerprint: "fp".into(), state: state.into() });
    commit.step = Some(StepRecord { point: "ship".into(), attempt: u32::MAX, started: false, retry_at: Some(t(9)) });
    commit.wake_at = Some(Timestamp::from_millis(u64::MAX));
    commit.waiting_for = Some("approval".into());
    commit.events = vec![
        HistoryEvent::new(t(5), EventKind::EventReceived).with_point("payment", "src/order.rs", 12).with_state(state),
        HistoryEvent::new(t(5), EventKind::Suspended).with_detail("waiting for approval").with_attempt(u32::MAX),
    ];
    commit.consume = vec![1];
    let written = store.commit(commit.clone()).await.unwrap();

    let url = server().await.unwrap();
    let other = PostgresStore::connect_with(&url, options(store.schema())).await.unwrap();
    let reloaded = other.load("e-1").await.unwrap().unwrap();
    let clamped = Some(Timestamp::from_millis(i64::MAX as u64));
    assert_eq!(reloaded, ExecutionRecord { wake_at: clamped, ..written }, "a wake-up at the end of time is clamped");
    assert_eq!((reloaded.snapshot, reloaded.step), (commit.snapshot, commit.step));
    let history = other.history("e-1").await.unwrap();
    assert_eq!(history, store.history("e-1").await.unwrap());
    assert_eq!(history[1], HistoryEvent { seq: 2, ..commit.events[0].clone() });
    assert_eq!(history[2], HistoryEvent { seq: 3, ..commit.events[1].clone() });
    let inbox = other.inbox("e-1").await.unwrap();
    assert_eq!(inbox.iter().map(|e| (e.seq, e.name.as_str(), e.at)).collect::<Vec<_>>(), [(2, "other", t(3))]);
    assert_eq!(other.list(ListFilter::default()).await.unwrap().len(), 1);
    assert_eq!(other.send_event("e-1", "payment", "{}", t(9)).await.unwrap(), 3, "seqs continue");
}

fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>, id: &str, needle: &str) {
    match result {
        Err(StoreError::Corrupt { id: found, what }) => {
            assert_eq!(found, id);
            assert!(what.contains(needle), "`{what}` should mention `{needle}`");
        }
        other => panic!("expected a corrupt {id}, got {other:?}"),
    }
}

/// A store with four executions damaged behind its back, and a good one.
async fn corrupted() -> Option<(PostgresStore, SchemaGuard)> {
    let (store, guard) = fresh().await?;
    for id in ["bad-status", "bad-time", "bad-snapshot", "bad-history", "good"] {
        create(&store, id).await;
    }
    let damage = "UPDATE {s}.executions SET status = 'bogus' WHERE id = 'bad-status';
        UPDATE {s}.executions SET wake_at = -5 WHERE id = 'bad-time';
        UPDATE {s}.executions SET snapshot_point = 'p' WHERE id = 'bad-snapshot';
        UPDATE {s}.history SET kind = 'Exploded' WHERE execution_id = 'bad-history';";
    let url = server().await?;
    admin(&url).await.batch_execute(&super::schema::in_schema(damage, store.schema())).await.unwrap();
    Some((store, guard))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_give_corrupt_errors() {
    let Some((store, _guard)) = corrupted().await else { return };
    assert_corrupt(store.load("bad-status").await, "bad-status", "unknown status `bogus`");
    assert_corrupt(store.load("bad-time").await, "bad-time", "wake_at");
    assert_corrupt(store.load("bad-snapshot").await, "bad-snapshot", "snapshot");
    assert_corrupt(store.history("bad-history").await, "bad-history", "Exploded");
    assert_corrupt(store.list(ListFilter::default()).await, "bad-snapshot", "snapshot");
    assert_corrupt(store.send_event("bad-status", "x", "{}", t(2)).await, "bad-status", "status");
    assert_corrupt(
        store.claim("bad-time", "w", &ManualClock::shared(t(2)), Duration::from_secs(1)).await,
        "bad-time",
        "wake_at",
    );
    assert!(store.load("good").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_do_not_block_the_others() {
    let Some((store, _guard)) = corrupted().await else { return };
    let good = Commit::on(&store.load("good").await.unwrap().unwrap(), t(3));
    let bad = Commit { id: "bad-time".into(), ..good.clone() };
    let mut results = store.commit_batch(vec![bad.clone(), good, bad]).await.unwrap().into_iter();
    assert_corrupt(results.next().unwrap(), "bad-time", "wake_at");
    assert_eq!(results.next().unwrap().unwrap().version, 2);
    assert_corrupt(results.next().unwrap(), "bad-time", "wake_at");

    // Claiming skips what it cannot decode (without leasing it) and hands out the rest.
    let claimed = store.claim_due("w", &ManualClock::shared(t(10)), Duration::from_secs(60), 10).await.unwrap();
    let ids: Vec<String> = claimed.into_iter().map(|record| record.id).collect();
    assert_eq!(ids, ["bad-history", "good"]);
}

/// Callers that stop awaiting half-way (a timeout, a cancelled task) leave no connection stuck
/// inside a transaction, and no lock behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_calls_leave_no_open_transaction() {
    let Some((store, _guard)) = fresh().await else { return };
    create(&store, "e-1").await;
    for round in 0..40u64 {
        let record = store.load("e-1").await.unwrap().unwrap();
        let mut commit = Commit::on(&record, t(2 + round));
        commit.events.push(HistoryEvent::new(t(2), EventKind::StepStarted));
        let cut_after = Duration::from_micros(50 * round);
        let _ = tokio::time::timeout(cut_after, store.commit(commit)).await;
        let _ = tokio::time::timeout(cut_after, store.send_event("e-1", "x", "{}", t(2))).await;
    }
    let record = store.load("e-1").await.unwrap().unwrap();
    let done = store.commit(Commit { status: Status::Succeeded, ..Commit::on(&record, t(99)) }).await.unwrap();
    assert_eq!(done.version, record.version + 1, "no lock left behind");
    assert_eq!(store.history("e-1").await.unwrap().len() as u64, record.version, "one event per applied commit");
    let url = server().await.unwrap();
    let query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in%'";
    let stuck: i64 = admin(&url).await.query_one(query, &[&store.schema()]).await.unwrap().get(0);
    assert_eq!(stuck, 0, "no pooled connection idles inside a transaction");
}
