//! Bad input: unknown ids, corrupt and incompatible states, databases that cannot be written.

use std::sync::{Arc, Mutex};

use durable_core::store::{Commit, Status, Store, StoreError};
use durable_core::{Clock, EngineError, MemoryStore, SqliteStore};
use tracing::field::{Field, Visit};

use crate::support::{Payment, YEAR, both, clock, count, engine, greet, nap, pay, without_lease};

both!(a_corrupt_state_is_left_untouched, an_incompatible_state_is_left_untouched);

/// Suspends a `nap` at its timer, then rewrites its stored snapshot with `edit` (as a bad
/// deployment or a hand edit would), and lets the timer come due.
async fn broken_nap<S: Store>(
    store: S,
    tag: &str,
    edit: fn(&mut durable_core::store::Snapshot),
) -> durable_core::Engine<S> {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(nap, "n-1", tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let record = engine.store().load("n-1").await.unwrap().unwrap();
    let mut commit = Commit::on(&record, clock.now());
    edit(commit.snapshot.as_mut().unwrap());
    engine.store().commit(commit).await.unwrap();
    clock.advance(YEAR);
    engine
}

/// Runs the broken execution and checks that it is reported and left exactly as it was.
async fn refused_and_unchanged<S: Store>(engine: &durable_core::Engine<S>, problem: &str) {
    let before = engine.store().load("n-1").await.unwrap().unwrap();
    let history = engine.history("n-1").await.unwrap();
    let worker = engine.worker("w-1");
    assert_eq!(worker.run_until_idle().await.unwrap(), 1, "claimed once, then set aside");
    assert_eq!(worker.run_until_idle().await.unwrap(), 0, "no worker spins on it");

    let after = engine.store().load("n-1").await.unwrap().unwrap();
    assert_eq!(after.version, before.version);
    assert_eq!(without_lease(after.clone()), before, "the stored execution is unchanged");
    assert_eq!(after.lease.map(|lease| lease.owner), Some("w-1".to_owned()), "held aside by the worker");
    assert_eq!(engine.history("n-1").await.unwrap(), history);
    let status = engine.status("n-1").await.unwrap();
    assert_eq!(status.status, Status::Suspended);
    let reported = status.problem.expect("the status reports the problem");
    assert!(reported.contains(problem), "{reported}");
    assert!(reported.contains("was left untouched"), "{reported}");
    assert_eq!(engine.stats().running, 0);
}

async fn a_corrupt_state_is_left_untouched<S: Store>(store: S, tag: &str) {
    let engine = broken_nap(store, tag, |snapshot| snapshot.state = "{\"nap\": {\"__wake_at\": ".to_owned()).await;
    refused_and_unchanged(&engine, "is corrupt").await;
}

/// A state written by another build is not claimed at all: it is left, unleased, for a
/// worker of the build that wrote it, and `durable show` says so.
async fn an_incompatible_state_is_left_untouched<S: Store>(store: S, tag: &str) {
    let engine = broken_nap(store, tag, |snapshot| snapshot.fingerprint = "0000000000000000".to_owned()).await;
    let before = engine.store().load("n-1").await.unwrap().unwrap();
    assert_eq!(engine.worker("w-1").run_until_idle().await.unwrap(), 0, "not claimed by this build");
    assert_eq!(engine.store().load("n-1").await.unwrap().unwrap(), before, "unchanged and unleased");
    let view = durable_core::render::ExecutionView::load(engine.store(), "n-1").await.unwrap().unwrap();
    let shown = durable_core::render::show(&view, 3);
    assert!(shown.contains("layout:       0000000000000000 written by an earlier build"), "{shown}");
}

#[tokio::test]
async fn unknown_execution_ids_get_a_clear_error() {
    let clock = clock();
    let engine = engine(MemoryStore::new(), &clock);
    let unknown = |error: EngineError| matches!(&error, EngineError::UnknownExecution(id) if id == "ghost");
    assert!(unknown(engine.status("ghost").await.unwrap_err()));
    assert!(unknown(engine.cancel("ghost").await.unwrap_err()));
    assert!(unknown(engine.send_event("ghost", "payment", &1).await.unwrap_err()));
    assert!(unknown(engine.history("ghost").await.unwrap_err()));
    assert!(unknown(engine.result(greet, "ghost").await.unwrap_err()));
}

#[tokio::test]
async fn a_read_only_database_refuses_writes_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let clock = clock();
    {
        let engine = engine(SqliteStore::create(&path).unwrap(), &clock);
        engine.start(nap, "n-1", "read-only".to_owned()).await.unwrap();
        engine.worker("w-1").run_until_idle().await.unwrap();
    }
    let writer = SqliteStore::open(&path).unwrap();
    let before = writer.load("n-1").await.unwrap().unwrap();
    let engine = engine(SqliteStore::open_read_only(&path).unwrap(), &clock);

    let start = engine.start(greet, "g-1", "x".to_owned()).await.unwrap_err();
    assert!(matches!(&start, EngineError::Store(StoreError::Backend(_))), "{start}");
    assert!(start.to_string().contains("is open read-only"), "{start}");
    assert!(!start.is_retryable());
    clock.advance(YEAR);
    let claim = engine.worker("w-1").run_until_idle().await.unwrap_err();
    assert!(claim.to_string().contains("cannot claim due executions"), "{claim}");
    let event = engine.store().send_event("n-1", "payment", "1", clock.now()).await.unwrap_err();
    assert!(event.to_string().contains("is open read-only"), "{event}");
    assert!(engine.cancel("n-1").await.unwrap_err().to_string().contains("is open read-only"));
    assert_eq!(engine.status("n-1").await.unwrap().status, Status::Suspended, "reading still works");
    assert_eq!(writer.load("n-1").await.unwrap().unwrap(), before, "nothing changed");
}

#[tokio::test]
async fn a_missing_database_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("durable.db");
    let error = SqliteStore::open(&path).unwrap_err();
    assert!(error.to_string().contains("does not exist"), "{error}");
    let read_only = SqliteStore::open_read_only(dir.path().join("absent.db")).unwrap_err();
    assert!(read_only.to_string().contains("cannot open"), "{read_only}");
    assert!(!path.exists());
}

/// A database file removed under a running engine stops it: no start is accepted, nothing
/// runs or is reported finished, and a restarted process is told the file is gone instead of
/// being handed an empty store.
#[tokio::test]
async fn a_removed_database_stops_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let clock = clock();
    let engine = engine(SqliteStore::create(&path).unwrap(), &clock);
    let worker = engine.worker("w-1");
    engine.start(pay, "p-1", "removed-db".to_owned()).await.unwrap();
    worker.run_until_idle().await.unwrap();
    assert_eq!(engine.status("p-1").await.unwrap().waiting_for.as_deref(), Some("payment"));
    engine.start(greet, "g-1", "removed-db".to_owned()).await.unwrap();
    std::fs::remove_file(&path).unwrap();

    let stopped = |error: EngineError| {
        let message = error.to_string();
        assert!(matches!(error, EngineError::Store(StoreError::Backend(_))), "{error:?}");
        assert!(message.contains("durable.db was removed while the store had it open"), "{message}");
    };
    stopped(worker.run_until_idle().await.unwrap_err());
    assert_eq!(count("removed-db/compose"), 0, "g-1 never ran");
    stopped(engine.start(greet, "g-2", "removed-db".to_owned()).await.unwrap_err());
    stopped(engine.send_event("p-1", "payment", &Payment { amount: 30 }).await.unwrap_err());
    stopped(engine.status("g-1").await.unwrap_err());
    stopped(engine.result(greet, "g-1").await.unwrap_err());
    stopped(engine.cancel("p-1").await.unwrap_err());
    let reopened = SqliteStore::open(&path).unwrap_err();
    assert!(reopened.to_string().contains("no such file"), "{reopened}");
}

/// The worker reports a state it cannot resume through `tracing`, as an error.
#[tokio::test]
async fn a_corrupt_state_is_reported_through_tracing() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let _guard = tracing::subscriber::set_default(Capture(Arc::clone(&lines)));
    let engine = broken_nap(MemoryStore::new(), "traced", |s| s.state = "[]".to_owned()).await;
    engine.worker("w-1").run_until_idle().await.unwrap();
    let lines = lines.lock().unwrap();
    let error = lines.iter().find(|(level, _)| *level == tracing::Level::ERROR).expect("an error event");
    assert!(error.1.starts_with("nap n-1 cannot run and was left untouched: the stored state"), "{}", error.1);
    assert!(error.1.ends_with("trying it again in 1m 0s"), "{}", error.1);
    let suspended = lines.iter().any(|(_, line)| line.starts_with("nap n-1 suspended: timer nap fires in 365d"));
    assert!(suspended, "history events are traced in business terms: {lines:?}");
}

/// A subscriber that keeps each event's level and message.
struct Capture(Arc<Mutex<Vec<(tracing::Level, String)>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().unwrap().push((*event.metadata().level(), message.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
