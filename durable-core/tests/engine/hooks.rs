//! Hooks: what they are told, in what order, and that they cannot break an execution.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_core::engine::{Hooks, RunCause, RunInfo};
use durable_core::store::{HistoryEvent, MemoryStore, Store};
use durable_core::{Engine, ManualClock};
use serde_json::json;

use crate::support::{LEASE, Payment, YEAR, arm_hang, clock, flaky_fixed, nap, pay, two_steps};

/// Records every call as a line.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Hooks for Recorder {
    fn run_started(&self, run: &RunInfo<'_>, cause: RunCause) {
        self.0.lock().unwrap().push(format!("run {cause:?} by {}", run.worker.unwrap_or("-")));
    }

    fn attempt_starting(&self, _: &RunInfo<'_>, step: &str, attempt: u32) {
        self.0.lock().unwrap().push(format!("attempt {step} {attempt}"));
    }

    fn event(&self, _: &RunInfo<'_>, event: &HistoryEvent) {
        let point = event.point.as_deref().map(|point| format!(" {point}")).unwrap_or_default();
        self.0.lock().unwrap().push(format!("{}{point}", event.kind));
    }
}

/// Panics at every call.
struct Panicker;

impl Hooks for Panicker {
    fn event(&self, _: &RunInfo<'_>, _: &HistoryEvent) {
        panic!("a broken hook");
    }

    fn attempt_starting(&self, _: &RunInfo<'_>, _: &str, _: u32) {
        panic!("a broken hook");
    }
}

fn engine_with<S: Store>(store: S, clock: &ManualClock, hooks: impl Hooks) -> Engine<S> {
    Engine::builder(store)
        .clock(Arc::new(clock.clone()))
        .lease(LEASE)
        .register(flaky_fixed)
        .register(nap)
        .register(pay)
        .register(two_steps)
        .hooks(hooks)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_step_that_fails_then_succeeds() {
    let (clock, recorder) = (clock(), Arc::new(Recorder::default()));
    let engine = engine_with(MemoryStore::new(), &clock, Arc::clone(&recorder));
    engine.start(flaky_fixed, "f-1", ("hooks-flaky".to_owned(), 1)).await.unwrap();
    engine.worker("w").run_until_idle().await.unwrap();
    clock.advance(Duration::from_secs(10));
    engine.worker("w").run_until_idle().await.unwrap();
    assert_eq!(
        recorder.take(),
        [
            "ExecutionStarted",
            "run Started by w",
            "attempt call 1",
            "StepFailed call",
            "Suspended call",
            "run Retry by w",
            "attempt call 2",
            "Resumed",
            "StepSucceeded call",
            "ExecutionSucceeded",
        ]
    );
}

#[tokio::test]
async fn a_timer_and_an_event() {
    let (clock, recorder) = (clock(), Arc::new(Recorder::default()));
    let engine = engine_with(MemoryStore::new(), &clock, Arc::clone(&recorder));
    engine.start(nap, "n-1", "hooks-nap".to_owned()).await.unwrap();
    engine.worker("w").run_until_idle().await.unwrap();
    clock.advance(YEAR);
    engine.worker("w").run_until_idle().await.unwrap();
    let timer = recorder.take();
    assert_eq!(
        timer,
        [
            "ExecutionStarted",
            "run Started by w",
            "attempt before 1",
            "StepSucceeded before",
            "WaitStarted nap",
            "Suspended nap",
            "run Timer by w",
            // Events arrive as they are committed: that the run resumed and that the timer
            // fired are committed with the next checkpoint, after step `after` ran.
            "attempt after 1",
            "Resumed nap",
            "WaitSucceeded nap",
            "StepSucceeded after",
            "ExecutionSucceeded",
        ]
    );

    engine.start(pay, "p-1", "hooks-pay".to_owned()).await.unwrap();
    engine.worker("w").run_until_idle().await.unwrap();
    recorder.take();
    engine.send_event("p-1", "payment", &Payment { amount: 3 }).await.unwrap();
    engine.worker("w").run_until_idle().await.unwrap();
    let event = recorder.take();
    assert!(event[0].starts_with("run Event by engine-"), "the sender's engine runs it at once: {event:?}");
    assert!(event.contains(&"EventReceived payment".to_owned()), "{event:?}");
    assert_eq!(event.last().map(String::as_str), Some("ExecutionSucceeded"), "{event:?}");
}

#[tokio::test]
async fn a_crash_and_a_resume() {
    let (clock, recorder) = (clock(), Arc::new(Recorder::default()));
    let store = MemoryStore::new();
    let first = engine_with(store.clone(), &clock, Arc::clone(&recorder));
    first.start(two_steps, "x-1", "hooks-crash".to_owned()).await.unwrap();
    let hung = arm_hang("hooks-crash");
    let worker = first.worker("doomed");
    let run = tokio::spawn(async move { worker.run_until_idle().await });
    hung.notified().await;
    run.abort();
    let _ = run.await;
    assert_eq!(
        recorder.take(),
        ["ExecutionStarted", "run Started by doomed", "attempt a 1", "StepSucceeded a", "attempt b 1"],
        "the crash cut the run inside b: no event of b was committed"
    );
    let second = engine_with(store, &clock, Arc::clone(&recorder));
    clock.advance(LEASE);
    second.worker("rescuer").run_until_idle().await.unwrap();
    assert_eq!(
        recorder.take(),
        ["run Continued by rescuer", "attempt b 1", "Resumed a", "StepSucceeded b", "ExecutionSucceeded"]
    );
}

/// A hook that panics is skipped where it panics; the execution and the hooks after it go on.
#[tokio::test]
async fn a_panicking_hook_breaks_nothing() {
    let (clock, recorder) = (clock(), Arc::new(Recorder::default()));
    let engine = Engine::builder(MemoryStore::new())
        .clock(Arc::new(clock.clone()))
        .register(pay)
        .hooks(Panicker)
        .hooks(Arc::clone(&recorder))
        .build()
        .unwrap();
    engine.start(pay, "p-1", "hooks-panic".to_owned()).await.unwrap();
    engine.worker("w").run_until_idle().await.unwrap();
    engine.send_event_json("p-1", "payment", &json!({"amount": 4}).to_string()).await.unwrap();
    engine.worker("w").run_until_idle().await.unwrap();
    assert_eq!(engine.result(pay, "p-1").await.unwrap(), Ok("hooks-panic: paid 4 of 30".to_owned()));
    let seen = recorder.take();
    assert_eq!(seen.last().map(String::as_str), Some("ExecutionSucceeded"), "later hooks still run: {seen:?}");
}
