//! The worker's own loop: waking on new work, stopping gracefully, renewing leases; and a
//! cancel that lands while a worker runs the execution.

use std::sync::Arc;
use std::time::Duration;

use durable_core::store::{EventKind, Status, Store};
use durable_core::{Engine, MemoryStore};
use tokio::sync::oneshot;

use crate::support::{Payment, TokioClock, YEAR, arm_gate, clock, count, engine, greet, nap, pay, slow, two_steps};

#[tokio::test]
async fn the_loop_runs_new_work_events_and_timers_until_shutdown() {
    let clock = clock();
    let engine = engine(MemoryStore::new(), &clock);
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = engine.worker("w-1");
    let running = tokio::spawn(async move { worker.run(async { stopped.await.unwrap_or(()) }).await });

    engine.start(greet, "g-1", "loop".to_owned()).await.unwrap();
    assert_eq!(engine.result(greet, "g-1").await.unwrap(), Ok("hello, loop".to_owned()), "woken by the start");

    engine.start(pay, "p-1", "loop".to_owned()).await.unwrap();
    while engine.status("p-1").await.unwrap().status != Status::Suspended {
        tokio::task::yield_now().await;
    }
    engine.send_event("p-1", "payment", &Payment { amount: 3 }).await.unwrap();
    assert_eq!(engine.result(pay, "p-1").await.unwrap(), Ok("loop: paid 3 of 30".to_owned()));

    engine.start(nap, "n-1", "loop".to_owned()).await.unwrap();
    while engine.status("n-1").await.unwrap().status != Status::Suspended {
        tokio::task::yield_now().await;
    }
    clock.advance(YEAR);
    assert_eq!(engine.result(nap, "n-1").await.unwrap(), Ok("loop rested".to_owned()), "found by polling");

    stop.send(()).unwrap();
    running.await.unwrap();
}

#[tokio::test]
async fn shutdown_stops_a_run_at_its_next_checkpoint() {
    let clock = clock();
    let engine = engine(MemoryStore::new(), &clock);
    engine.start(two_steps, "x-1", "shutdown".to_owned()).await.unwrap();
    let gate = arm_gate("shutdown");
    // Shut down while step `b` runs, then let it finish: on a current-thread runtime the
    // worker sees the shutdown before the step's task runs again.
    let shutdown = async {
        gate.entered.notified().await;
        gate.release.notify_one();
    };
    engine.worker("w-1").run(shutdown).await;

    let record = engine.store().load("x-1").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Running);
    assert_eq!(record.snapshot.map(|s| s.point), Some("b".to_owned()), "step b was checkpointed");
    assert_eq!(record.lease, None, "and the lease given up for another worker");
    assert_eq!(engine.worker("w-2").run_until_idle().await.unwrap(), 1);
    assert_eq!(engine.result(two_steps, "x-1").await.unwrap(), Ok("shutdown: 1 2".to_owned()));
    assert_eq!((count("shutdown/a"), count("shutdown/b")), (1, 1));
}

#[tokio::test]
async fn a_cancel_stops_the_worker_at_its_next_commit() {
    let clock = clock();
    let engine = engine(MemoryStore::new(), &clock);
    engine.start(two_steps, "x-1", "cancel".to_owned()).await.unwrap();
    let gate = arm_gate("cancel");
    let worker = engine.worker("w-1");
    let running = tokio::spawn(async move { worker.run_until_idle().await });
    gate.entered.notified().await;
    engine.cancel("x-1").await.unwrap();
    gate.release.notify_one();
    assert_eq!(running.await.unwrap().unwrap(), 1);

    let record = engine.store().load("x-1").await.unwrap().unwrap();
    assert_eq!((record.status, record.output, record.lease), (Status::Cancelled, None, None));
    let history = engine.history("x-1").await.unwrap();
    assert_eq!(history.last().unwrap().kind, EventKind::ExecutionCancelled, "nothing was written after it");
    assert_eq!(engine.worker("w-1").run_until_idle().await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_long_step_keeps_its_lease() {
    let engine = Engine::builder(MemoryStore::new())
        .clock(Arc::new(TokioClock::new()))
        .lease(Duration::from_secs(30))
        .register(slow)
        .build()
        .unwrap();
    engine.start(slow, "s-1", 100).await.unwrap();
    let worker = engine.worker("w-1");
    let runs = tokio::time::timeout(Duration::from_secs(1_000), worker.run_until_idle()).await;
    assert_eq!(runs.expect("without renewals the checkpoint would lose its lease").unwrap(), 1);
    assert_eq!(engine.result(slow, "s-1").await.unwrap(), Ok(100));
    let history = engine.history("s-1").await.unwrap();
    let succeeded = history.iter().find(|e| e.kind == EventKind::StepSucceeded).unwrap();
    assert_eq!(succeeded.detail.as_deref(), Some("attempt 1, took 1m 40s"));
}

/// A wake source a test fires by hand.
struct Bell(Arc<tokio::sync::Notify>);

impl durable_core::engine::WakeSource for Bell {
    fn wait(&self) -> durable_core::BoxFuture<'_, ()> {
        Box::pin(self.0.notified())
    }
}

#[tokio::test]
async fn a_wake_source_brings_work_started_elsewhere_without_waiting_for_the_poll() {
    let clock = clock();
    let store = MemoryStore::new();
    // This worker would poll only once an hour.
    let engine = Engine::builder(store.clone())
        .clock(Arc::new(clock.clone()))
        .register(greet)
        .poll_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let bell = Arc::new(tokio::sync::Notify::new());
    let worker = engine.worker("w-1").wake_on(Bell(Arc::clone(&bell)));
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(async move { worker.run(async { stopped.await.unwrap_or(()) }).await });
    tokio::task::yield_now().await;

    // Another process (here: another engine on the same store) starts an execution; this
    // engine's own notification does not fire, the bell does.
    let other = engine_on(store.clone(), &clock);
    other.start(greet, "g-far", "far".to_owned()).await.unwrap();
    bell.notify_one();
    let result = tokio::time::timeout(Duration::from_secs(10), engine.result(greet, "g-far")).await;
    assert_eq!(result.expect("woken by the bell, not the hourly poll").unwrap(), Ok("hello, far".to_owned()));

    stop.send(()).unwrap();
    running.await.unwrap();
}

fn engine_on(store: MemoryStore, clock: &durable_core::ManualClock) -> Engine<MemoryStore> {
    Engine::builder(store).clock(Arc::new(clock.clone())).register(greet).build().unwrap()
}

/// A worker that shuts down gives up the executions it held aside because it could not run
/// them (here: a workflow its engine lacks), so a worker that can run them takes them at once,
/// not when the long lease of the set-aside ends.
#[tokio::test]
async fn a_worker_leaves_what_it_cannot_run_to_a_worker_that_can() {
    let clock = clock();
    let store = MemoryStore::new();
    let lacking = Engine::builder(store.clone()).clock(Arc::new(clock.clone())).register(nap).build().unwrap();
    let able = engine(store, &clock);
    able.start(greet, "g-1", "aside".to_owned()).await.unwrap();

    let (stop, stopped) = oneshot::channel::<()>();
    let worker = lacking.worker("lacking");
    let running = tokio::spawn(async move { worker.run(async { stopped.await.unwrap_or(()) }).await });
    // The lacking worker polls all along and never takes it: the able one runs it at once.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(able.store().load("g-1").await.unwrap().unwrap().lease, None, "not claimed by the lacking worker");
    assert_eq!(able.worker("able").run_until_idle().await.unwrap(), 1, "taken at once, without waiting");
    assert_eq!(able.result(greet, "g-1").await.unwrap(), Ok("hello, aside".to_owned()));
    stop.send(()).unwrap();
    running.await.unwrap();
}
