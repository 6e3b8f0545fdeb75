//! Recovery: an execution left running by a dead worker is taken over once its lease expires,
//! from its last checkpoint.

use std::sync::Arc;

use durable_core::prelude::*;
use durable_core::store::{EventKind, Status, Store};
use durable_core::{Engine, ManualClock, MemoryStore, SqliteStore};

use crate::support::{LEASE, arm_hang, clock, count, effect, engine, two_steps};

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

/// A worker whose own run's lease lapsed (its renewals could not keep up) and that claims the
/// execution again hands the new claim to the run in flight: the body is not started a second
/// time next to it, and the run commits under the new claim.
#[tokio::test]
async fn a_worker_never_runs_an_execution_it_is_already_running() {
    let clock = clock();
    let engine = engine(MemoryStore::new(), &clock);
    let key = "reclaimed-by-its-own-worker";
    engine.start(two_steps, "x-1", key.to_owned()).await.unwrap();
    let gate = crate::support::arm_gate(key);
    let worker = engine.worker("w-1");
    let first = tokio::spawn(async move { worker.run_until_idle().await });
    gate.entered.notified().await;
    let before = engine.store().load("x-1").await.unwrap().unwrap().lease.unwrap();

    clock.advance(LEASE * 2);
    let again = engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(again, 1, "the worker claimed its own execution again");
    let after = engine.store().load("x-1").await.unwrap().unwrap().lease.unwrap();
    assert_eq!(after.epoch, before.epoch + 1);
    assert_eq!(count(&format!("{key}/b")), 1, "step b was not started a second time");

    gate.release.notify_one();
    first.await.unwrap().unwrap();
    assert_eq!(engine.result(two_steps, "x-1").await.unwrap(), Ok(format!("{key}: 1 2")));
    assert_eq!(count(&format!("{key}/b")), 1);
}

/// Two steps with the workflow's own code between them waiting at a gate.
#[durable]
async fn pause_between(key: String) -> Result<u32, WorkflowError> {
    let a = step!("a", effect(format!("{key}/a"), 1u32).await)?;
    crate::support::gate(&key).await;
    let b = step!("b", effect(format!("{key}/b"), a + 1).await)?;
    Ok(b)
}

/// A run that lost its lease while it was paused (here: between two steps) finds out before
/// the next step body, and stops without running it: the worker that took the execution over
/// runs that body, once.
#[tokio::test]
async fn a_run_that_lost_its_lease_starts_no_further_step() {
    let clock = clock();
    let store = MemoryStore::new();
    let build = |store: MemoryStore| {
        Engine::builder(store).clock(Arc::new(clock.clone())).lease(LEASE).register(pause_between).build().unwrap()
    };
    let (paused, rescuer) = (build(store.clone()), build(store));
    let key = "lost-its-lease-between-steps";
    paused.start(pause_between, "p-1", key.to_owned()).await.unwrap();
    let gate = crate::support::arm_gate(key);
    let worker = paused.worker("paused");
    let first = tokio::spawn(async move { worker.run_until_idle().await });
    gate.entered.notified().await;

    clock.advance(LEASE * 2);
    assert_eq!(rescuer.worker("rescuer").run_until_idle().await.unwrap(), 1);
    assert_eq!(rescuer.result(pause_between, "p-1").await.unwrap(), Ok(2));
    gate.release.notify_one();
    first.await.unwrap().unwrap();
    assert_eq!(count(&format!("{key}/b")), 1, "the paused run did not start step b after losing its lease");
    assert_eq!(count(&format!("{key}/a")), 1);
}

/// Every event a run writes names the worker of that run, so an execution that moved between
/// workers shows who ran what.
#[tokio::test]
async fn the_history_names_the_worker_of_each_run() {
    let clock = clock();
    let store = MemoryStore::new();
    let (first, second) = (engine(store.clone(), &clock), engine(store, &clock));
    first.start(crate::support::nap, "n-1", "moved".to_owned()).await.unwrap();
    first.worker("w-first").run_until_idle().await.unwrap();
    clock.advance(crate::support::YEAR);
    second.worker("w-second").run_until_idle().await.unwrap();
    let history = second.history("n-1").await.unwrap();
    let by = |kind: EventKind| {
        history.iter().find(|e| e.kind == kind && e.point.as_deref() != Some("nap")).and_then(|e| e.worker.clone())
    };
    assert_eq!(by(EventKind::StepSucceeded).as_deref(), Some("w-first"), "{history:#?}");
    assert_eq!(by(EventKind::ExecutionSucceeded).as_deref(), Some("w-second"), "{history:#?}");
    let after = history.iter().find(|e| e.point.as_deref() == Some("after")).unwrap();
    assert_eq!(after.worker.as_deref(), Some("w-second"));
    let text = durable_core::render::history_by_worker(&history, history[0].at, false);
    assert!(text.contains("[by w-first]") && text.contains("[by w-second]"), "{text}");
}
