use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::{SqliteOptions, SqliteStore, Synchronous};
use crate::store::{
    Commit, EventKind, HistoryEvent, Lease, ListFilter, NewExecution, Snapshot, Status, StepRecord, Store, StoreError,
    WorkflowInfo,
};
use crate::time::{ManualClock, Timestamp};

fn fresh() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::create(dir.path().join("durable.db")).expect("create");
    (store, dir)
}

crate::store::conformance::conformance_tests!(fresh);

fn t(secs: u64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + secs * 1_000)
}

/// Runs one statement on the file through a connection of its own, as a stray tool would.
fn raw(path: &Path, statement: &str) {
    let conn = Connection::open(path).expect("raw connection");
    conn.execute_batch(statement).expect("raw statement");
}

async fn create(store: &SqliteStore, id: &str) {
    let new = NewExecution::new(id, "order", format!("\"{id}\""), t(1));
    assert!(store.create(new).await.unwrap().is_new());
}

fn assert_backend(error: &StoreError, needles: &[&str]) {
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    assert!(!error.is_retryable(), "{error}");
    let message = error.to_string();
    for needle in needles {
        assert!(message.contains(needle), "`{message}` should mention `{needle}`");
    }
}

/// A full record, history and inbox, written and then read back.
async fn populate(store: &SqliteStore) -> Commit {
    create(store, "e-1").await;
    store.send_event("e-1", "payment", r#"{"amount":3}"#, t(2)).await.unwrap();
    store.send_event("e-1", "other", "null", t(3)).await.unwrap();
    let claimed = store.claim_due("w-1", &ManualClock::shared(t(4)), Duration::from_secs(60), 1).await.unwrap();
    let mut commit = Commit::on(&claimed[0], t(5));
    commit.lease = claimed[0].lease.as_ref().map(Lease::token);
    commit.status = Status::Suspended;
    commit.snapshot = Some(Snapshot {
        point: "payment".into(),
        fingerprint: "fp".into(),
        state: r#"{"payment":{"order":"o-1"}}"#.into(),
    });
    commit.step = Some(StepRecord { point: "ship".into(), attempt: 3, started: false, retry_at: None });
    commit.wake_at = Some(Timestamp::from_millis(u64::MAX));
    commit.waiting_for = Some("approval".into());
    commit.events = vec![
        HistoryEvent::new(t(5), EventKind::EventReceived)
            .with_point("payment", "src/order.rs", 12)
            .with_state(r#"{"payment":{"order":"o-1"}}"#),
        HistoryEvent::new(t(5), EventKind::Suspended).with_detail("waiting for approval"),
    ];
    commit.consume = vec![1];
    store.commit(commit.clone()).await.unwrap();
    commit
}

#[tokio::test]
async fn reopening_finds_everything() {
    let (store, dir) = fresh();
    let written = populate(&store).await;
    let record = store.load("e-1").await.unwrap().unwrap();
    let history = store.history("e-1").await.unwrap();
    let inbox = store.inbox("e-1").await.unwrap();
    drop(store);

    let store = SqliteStore::open(dir.path().join("durable.db")).unwrap();
    let reloaded = store.load("e-1").await.unwrap().unwrap();
    assert_eq!(reloaded, record);
    assert_eq!((reloaded.snapshot, reloaded.step), (written.snapshot, written.step));
    assert_eq!(reloaded.wake_at, Some(Timestamp::from_millis(i64::MAX as u64)), "clamped");
    assert_eq!(reloaded.lease.map(|lease| lease.owner), Some("w-1".to_owned()));
    assert_eq!(store.history("e-1").await.unwrap(), history);
    assert_eq!(history.len(), 3);
    assert_eq!(store.inbox("e-1").await.unwrap(), inbox);
    assert_eq!(inbox.len(), 1);
    assert_eq!(store.list(ListFilter::default()).await.unwrap().len(), 1);
    let seq = store.send_event("e-1", "payment", "{}", t(9)).await.unwrap();
    assert_eq!(seq, 3, "inbox seqs continue after a reopen");
    assert!(
        store.claim_due("w-2", &ManualClock::shared(t(1_000)), Duration::from_secs(1), 9).await.unwrap().is_empty()
    );
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
async fn corrupted() -> (SqliteStore, tempfile::TempDir) {
    let (store, dir) = fresh();
    for id in ["bad-status", "bad-time", "bad-snapshot", "bad-history", "good"] {
        create(&store, id).await;
    }
    let damage = "UPDATE executions SET status = 'bogus' WHERE id = 'bad-status';
        UPDATE executions SET wake_at = -5 WHERE id = 'bad-time';
        UPDATE executions SET snapshot_point = 'p' WHERE id = 'bad-snapshot';
        UPDATE history SET kind = 'Exploded' WHERE execution_id = 'bad-history';";
    raw(&dir.path().join("durable.db"), damage);
    (store, dir)
}

#[tokio::test]
async fn corrupt_rows_give_corrupt_errors() {
    let (store, _dir) = corrupted().await;
    assert_corrupt(store.load("bad-status").await, "bad-status", "unknown status `bogus`");
    assert_corrupt(store.load("bad-time").await, "bad-time", "wake_at");
    assert_corrupt(store.load("bad-snapshot").await, "bad-snapshot", "snapshot");
    assert_corrupt(store.history("bad-history").await, "bad-history", "Exploded");
    assert_corrupt(store.list(ListFilter::default()).await, "bad-snapshot", "snapshot");
    let sent = store.send_event("bad-status", "x", "{}", t(2)).await;
    assert_corrupt(sent, "bad-status", "status");
    assert!(store.load("good").await.unwrap().is_some());
}

#[tokio::test]
async fn corrupt_rows_do_not_block_the_others() {
    let (store, _dir) = corrupted().await;
    let good = Commit::on(&store.load("good").await.unwrap().unwrap(), t(3));
    let bad = Commit { id: "bad-time".into(), ..good.clone() };
    let mut results = store.commit_batch(vec![bad, good]).await.unwrap().into_iter();
    assert_corrupt(results.next().unwrap(), "bad-time", "wake_at");
    assert_eq!(results.next().unwrap().unwrap().version, 2);

    // Claiming skips what it cannot decode and hands out the rest.
    let claimed = store.claim_due("w", &ManualClock::shared(t(10)), Duration::from_secs(60), 10).await.unwrap();
    let ids: Vec<String> = claimed.into_iter().map(|record| record.id).collect();
    assert_eq!(ids, ["bad-history", "good"]);
}

#[tokio::test]
async fn a_missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("durable.db");
    let error = SqliteStore::open(&path).unwrap_err();
    assert_backend(&error, &["sqlite", &path.display().to_string(), "does not exist"]);
    let error = SqliteStore::open_read_only(&path).unwrap_err();
    assert_backend(&error, &["sqlite", "read-only", "unable to open database file"]);
}

#[tokio::test]
async fn read_only_refuses_writes_and_keeps_data() {
    let (store, dir) = fresh();
    let path = dir.path().join("durable.db");
    populate(&store).await;
    let before = store.load("e-1").await.unwrap().unwrap();
    drop(store);

    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(reader.load("e-1").await.unwrap().as_ref(), Some(&before));
    assert_eq!(reader.history("e-1").await.unwrap().len(), 3);
    let new = NewExecution::new("e-2", "order", "null", t(9));
    assert_backend(&reader.create(new).await.unwrap_err(), &["read-only", "create"]);
    let commit = Commit { status: Status::Cancelled, ..Commit::on(&before, t(9)) };
    assert_backend(&reader.commit(commit).await.unwrap_err(), &["read-only"]);
    assert_backend(&reader.send_event("e-1", "a", "1", t(9)).await.unwrap_err(), &["read-only"]);
    let claim = reader.claim_due("w", &ManualClock::shared(t(9)), Duration::from_secs(1), 5).await;
    assert_backend(&claim.unwrap_err(), &["read-only"]);
    // Even a raw write through the read-only connection is refused by SQLite itself.
    let raw_write = reader.call(|conn| Ok(conn.execute("DELETE FROM history", []).is_err())).await;
    assert!(raw_write.unwrap(), "the connection itself is read-only");
    drop(reader);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.load("e-1").await.unwrap(), Some(before));
    assert_eq!(store.history("e-1").await.unwrap().len(), 3);
    assert_eq!(store.load("e-2").await.unwrap(), None);
}

#[tokio::test]
async fn newer_or_foreign_files_are_refused() {
    let (store, dir) = fresh();
    drop(store);
    let path = dir.path().join("durable.db");
    raw(&path, "PRAGMA user_version = 7;");
    let error = SqliteStore::open(&path).unwrap_err();
    assert_backend(&error, &["schema version 7", "newer"]);
    assert_backend(&SqliteStore::open_read_only(&path).unwrap_err(), &["schema version 7"]);

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, b"this is not a database, just some text that is long enough").unwrap();
    assert_backend(&SqliteStore::open(&garbage).unwrap_err(), &["sqlite", "garbage.db"]);

    let empty = dir.path().join("empty.db");
    raw(&empty, "CREATE TABLE unrelated (x INTEGER);");
    assert_backend(&SqliteStore::open_read_only(&empty).unwrap_err(), &["not a durable store"]);
}

#[tokio::test]
async fn options_set_wal_and_synchronous() {
    let dir = tempfile::tempdir().unwrap();
    let pragmas = |store: SqliteStore| async move {
        store
            .call(|conn| {
                let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
                let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
                let stable = conn.db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG).unwrap();
                Ok((mode, sync, stable))
            })
            .await
            .unwrap()
    };
    let full = SqliteStore::create(dir.path().join("full.db")).unwrap();
    assert_eq!(pragmas(full).await, ("wal".to_owned(), 2, true), "WAL, FULL, stable query plans");
    let options = SqliteOptions { synchronous: Synchronous::Normal, ..SqliteOptions::default() };
    let normal = SqliteStore::create_with(dir.path().join("normal.db"), options).unwrap();
    assert_eq!(pragmas(normal).await, ("wal".to_owned(), 1, true));
}

/// Two stores on one file act like two processes: SQLite's locks keep their claims apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_never_share_a_claim() {
    let (first, dir) = fresh();
    let second = SqliteStore::open(dir.path().join("durable.db")).unwrap();
    for i in 0..30 {
        create(&first, &format!("e-{i:02}")).await;
    }
    let claim_all = |store: SqliteStore, owner: &'static str| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim_due(owner, &ManualClock::shared(t(5)), Duration::from_secs(60), 2).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|record| record.id));
            }
        })
    };
    let (a, b) = (claim_all(first, "w-a"), claim_all(second, "w-b"));
    let (mut all, b) = (a.await.unwrap(), b.await.unwrap());
    all.extend(b);
    all.sort();
    let claimed = all.len();
    all.dedup();
    assert_eq!((claimed, all.len()), (30, 30), "each execution claimed exactly once");
}

#[tokio::test]
async fn a_panicking_call_does_not_stop_the_store() {
    let (store, _dir) = fresh();
    let result: Result<(), StoreError> = store.call(|_| panic!("injected")).await;
    assert_backend(&result.unwrap_err(), &["no answer", "panicked"]);
    create(&store, "after").await;
    assert!(store.load("after").await.unwrap().is_some());
}

#[tokio::test]
async fn an_old_file_is_read_as_it_is_and_migrated_when_opened_for_writing() {
    let (store, dir) = fresh();
    create(&store, "e-1").await;
    drop(store);
    let path = dir.path().join("durable.db");
    raw(
        &path,
        "DROP INDEX executions_parent; ALTER TABLE executions DROP COLUMN parent_id; \
         DROP TABLE execution_keys; DROP TABLE paused_workflows; \
         ALTER TABLE executions DROP COLUMN parent_event; \
         DROP TABLE workflows; DROP TABLE event_keys; ALTER TABLE executions DROP COLUMN lease_epoch; \
         ALTER TABLE history DROP COLUMN error_kind; ALTER TABLE history DROP COLUMN worker; \
         PRAGMA user_version = 1;",
    );

    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(reader.workflow("order", None).await.unwrap(), None, "a version 1 file has no registrations");
    assert_eq!(reader.load("e-1").await.unwrap().map(|record| record.version), Some(1));
    drop(reader);

    let store = SqliteStore::open(&path).unwrap();
    let info = WorkflowInfo { name: "order".into(), fingerprint: "fp".into(), facts_json: "{}".into() };
    store.register_workflow(info.clone()).await.unwrap();
    assert_eq!(store.workflow("order", None).await.unwrap(), Some(info));
    assert_eq!(store.load("e-1").await.unwrap().map(|record| record.version), Some(1), "the data is kept");
    let version: i64 = Connection::open(&path).unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 4);
    let claimed = store.claim_due("w", &ManualClock::shared(t(2)), Duration::from_secs(60), 1).await.unwrap();
    assert_eq!(claimed[0].lease.as_ref().map(|lease| lease.epoch), Some(1), "claims count from the migration on");
}

/// Every engine start registers its workflows: registering the build that is already the latest
/// writes nothing, and another build in between still makes a registration the latest again.
#[tokio::test]
async fn registering_the_latest_build_again_writes_nothing() {
    let (store, _dir) = fresh();
    let info = |fingerprint: &str| WorkflowInfo {
        name: "order".to_owned(),
        fingerprint: fingerprint.to_owned(),
        facts_json: format!("{{\"fingerprint\":\"{fingerprint}\"}}"),
    };
    store.register_workflow(info("a")).await.unwrap();
    let before = total_changes(&store).await;
    store.register_workflow(info("a")).await.unwrap();
    assert_eq!(total_changes(&store).await, before, "the latest build registered again: no write");
    store.register_workflow(info("b")).await.unwrap();
    store.register_workflow(info("a")).await.unwrap();
    assert_eq!(store.workflow("order", None).await.unwrap(), Some(info("a")), "a is the latest again");
    assert!(total_changes(&store).await > before);
}

/// Rows changed on the store's connection since it was opened.
async fn total_changes(store: &SqliteStore) -> i64 {
    store
        .call(|conn| Ok(conn.query_row("SELECT total_changes()", [], |row| row.get::<_, i64>(0)).unwrap()))
        .await
        .unwrap()
}

/// The connection's `PRAGMA synchronous`: 2 is FULL, 1 is NORMAL.
async fn synchronous_level(store: &SqliteStore) -> i64 {
    store.call(|conn| Ok(conn.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap())).await.unwrap()
}

/// With `Synchronous::Full`, lease changes commit with `synchronous = NORMAL` (no sync of
/// their own) and every other write sets FULL again before it writes.
#[tokio::test]
async fn lease_changes_are_not_synced_and_everything_else_is() {
    let (store, _dir) = fresh();
    assert_eq!(synchronous_level(&store).await, 2);
    create(&store, "e-1").await;
    let claimed = store.claim_due("w-1", &ManualClock::shared(t(2)), Duration::from_secs(60), 1).await.unwrap();
    assert_eq!(synchronous_level(&store).await, 1, "a claim is not synced");
    let token = claimed[0].lease.as_ref().map(Lease::token).expect("leased");
    let commit = Commit { lease: Some(token.clone()), ..Commit::on(&claimed[0], t(3)) };
    let committed = store.commit(commit).await.unwrap();
    assert_eq!(synchronous_level(&store).await, 2, "a commit is synced");

    store.renew_lease("e-1", &token, &ManualClock::shared(t(30)), Duration::from_secs(60)).await.unwrap();
    assert_eq!(synchronous_level(&store).await, 1, "a renewal is not synced");
    store.send_event("e-1", "payment", "1", t(4)).await.unwrap();
    assert_eq!(synchronous_level(&store).await, 2, "an event is synced");
    store.release_lease("e-1", &token).await.unwrap();
    store.claim("e-1", "w-2", &ManualClock::shared(t(5)), Duration::from_secs(60)).await.unwrap().expect("claimable");
    assert_eq!(synchronous_level(&store).await, 1, "a release and a claim are not synced");
    create(&store, "e-2").await;
    assert_eq!(synchronous_level(&store).await, 2, "a new execution is synced");
    assert_eq!(store.load("e-1").await.unwrap().map(|record| record.version), Some(committed.version));

    // With NORMAL chosen, nothing changes the level.
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions { synchronous: Synchronous::Normal, ..SqliteOptions::default() };
    let normal = SqliteStore::create_with(dir.path().join("normal.db"), options).unwrap();
    create(&normal, "e-1").await;
    normal.claim_due("w-1", &ManualClock::shared(t(2)), Duration::from_secs(60), 1).await.unwrap();
    assert_eq!(synchronous_level(&normal).await, 1);
}

mod files;
