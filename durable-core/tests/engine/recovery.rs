//! Recovery: an execution left running by a dead worker is taken over once its lease expires,
//! from its last checkpoint.

use durable_core::store::{EventKind, Status, Store};
use durable_core::{Engine, ManualClock, MemoryStore, SqliteStore};

use crate::support::{LEASE, arm_hang, clock, count, engine, two_steps};

/// Starts `two_steps` and kills its worker while step `b` runs (after `a` was checkpointed).
async fn crash_in_step_b<S: Store>(engine: &Engine<S>, key: &str) {
    engine.start(two_steps, "x-1", key.to_owned()).await.unwrap();
    let hung = arm_hang(key);
    let worker = engine.worker("doomed");
    let run = tokio::spawn(async move { worker.run_until_idle().await });
    hung.notified().await;
    run.abort();
    let _ = run.await;
    let record = engine.store().load("x-1").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Running);
    assert_eq!(record.snapshot.as_ref().map(|s| s.point.as_str()), Some("a"));
    assert_eq!(record.lease.map(|lease| lease.owner), Some("doomed".to_owned()));
}

/// A new worker (on `engine`, a fresh engine on the same store) finishes the execution.
async fn take_over<S: Store>(engine: &Engine<S>, clock: &ManualClock, key: &str) {
    let worker = engine.worker("rescuer");
    assert_eq!(worker.run_until_idle().await.unwrap(), 0, "not while the dead worker's lease is valid");
    clock.advance(LEASE);
    assert_eq!(worker.run_until_idle().await.unwrap(), 1);
    assert_eq!(engine.result(two_steps, "x-1").await.unwrap(), Ok(format!("{key}: 1 2")));
    assert_eq!(count(&format!("{key}/a")), 1, "the checkpointed step did not run again");
    assert_eq!(count(&format!("{key}/b")), 2, "the step in progress ran again (at least once)");
    let history = engine.history("x-1").await.unwrap();
    let resumed = history.iter().find(|e| e.kind == EventKind::Resumed).unwrap();
    assert!(resumed.detail.as_deref().unwrap().starts_with("from its last checkpoint, committed "), "{resumed:?}");
}

#[tokio::test]
async fn a_dead_workers_execution_is_taken_over_in_memory() {
    let clock = clock();
    let store = MemoryStore::new();
    crash_in_step_b(&engine(store.clone(), &clock), "memory-takeover").await;
    take_over(&engine(store, &clock), &clock, "memory-takeover").await;
}

#[tokio::test]
async fn a_dead_workers_execution_is_taken_over_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let clock = clock();
    {
        let engine = engine(SqliteStore::create(&path).unwrap(), &clock);
        crash_in_step_b(&engine, "sqlite-takeover").await;
    }
    take_over(&engine(SqliteStore::open(&path).unwrap(), &clock), &clock, "sqlite-takeover").await;
}
