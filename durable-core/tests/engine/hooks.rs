//! Hooks: what they are told, in what order, and that they cannot break an execution.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_core::engine::{
    Attempt, AttemptOutcome, CommitBatch, Hooks, Outcome, Resumption, RunCause, RunInfo, Suspension, WaitEnd, WaitStart,
};
use durable_core::store::{HistoryEvent, MemoryStore, Store};
use durable_core::{Engine, ManualClock};
use serde_json::json;

use crate::support::{LEASE, Payment, YEAR, arm_hang, bump, clock, flaky_fixed, nap, pay, pay_strictly, two_steps};

/// Records every call as a line: history events as their kind (`StepFailed call`), the other
/// hooks in lower case (`attempt call 1`).
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
}

/// Seconds, for durations on the tests' manual clock (exact).
fn secs(duration: Duration) -> u64 {
    duration.as_secs()
}

impl Hooks for Recorder {
    fn execution_started(&self, run: &RunInfo<'_>) {
        self.push(format!("execution started {}", run.execution_id));
    }

    fn attempt_finished(&self, _: &RunInfo<'_>, attempt: &Attempt<'_>) {
        let outcome = match attempt.outcome {
            AttemptOutcome::Succeeded => "succeeded".to_owned(),
            AttemptOutcome::Failed { error, retry_in } => {
                format!("failed ({error}), retry in {:?}", retry_in.map(secs))
            }
            _ => "?".to_owned(),
        };
        self.push(format!("attempt {} {} {outcome}", attempt.step, attempt.attempt));
    }

    fn wait_started(&self, _: &RunInfo<'_>, wait: &WaitStart<'_>) {
        self.push(format!("wait {} {:?} started, deadline {}", wait.point, wait.kind, wait.until.is_some()));
    }

    fn wait_ended(&self, _: &RunInfo<'_>, wait: &WaitEnd<'_>) {
        self.push(format!(
            "wait {} {:?} ended: {:?} after {}s",
            wait.point,
            wait.kind,
            wait.outcome,
            secs(wait.waited)
        ));
    }

    fn suspended(&self, _: &RunInfo<'_>, suspension: &Suspension<'_>) {
        self.push(format!("suspended at {:?} ({:?})", suspension.point, suspension.reason));
    }

    fn resumed(&self, _: &RunInfo<'_>, resumption: &Resumption<'_>) {
        self.push(format!(
            "resumed ({:?}) at {:?} after {}s, late {:?}",
            resumption.cause,
            resumption.point,
            secs(resumption.slept),
            resumption.late.map(secs)
        ));
    }

    fn finished(&self, _: &RunInfo<'_>, outcome: Outcome) {
        self.push(format!("finished {}", outcome.as_str()));
    }

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

    fn attempt_finished(&self, _: &RunInfo<'_>, _: &Attempt<'_>) {
        panic!("a broken hook");
    }

    fn suspended(&self, _: &RunInfo<'_>, _: &Suspension<'_>) {
        panic!("a broken hook");
    }

    fn resumed(&self, _: &RunInfo<'_>, _: &Resumption<'_>) {
        panic!("a broken hook");
    }

    fn wait_ended(&self, _: &RunInfo<'_>, _: &WaitEnd<'_>) {
        panic!("a broken hook");
    }

    fn finished(&self, _: &RunInfo<'_>, _: Outcome) {
        panic!("a broken hook");
    }

    fn committed(&self, _: &CommitBatch) {
        panic!("a broken hook (on the commit task)");
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
        .register(pay_strictly)
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
            "execution started f-1",
            "run Started by w",
            "attempt call 1",
            // Told as the body returns, before the failure is committed.
            "attempt call 1 failed (connection refused (1)), retry in Some(10)",
            "StepFailed call",
            "Suspended call",
            "suspended at Some(\"call\") (Retry)",
            "run Retry by w",
            "attempt call 2",
            "attempt call 2 succeeded",
            "Resumed",
            // Picked up the moment its retry was due: not late.
            "resumed (Retry) at Some(\"call\") after 10s, late Some(0)",
            "StepSucceeded call",
            "ExecutionSucceeded",
            "finished succeeded",
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
            "execution started n-1",
            "run Started by w",
            "attempt before 1",
            "attempt before 1 succeeded",
            "StepSucceeded before",
            "WaitStarted nap",
            "wait nap Timer started, deadline true",
            "Suspended nap",
            "suspended at Some(\"nap\") (Timer)",
            "run Timer by w",
            // Events arrive as they are committed: that the run resumed and that the timer
            // fired are committed with the next checkpoint, after step `after` ran.
            "attempt after 1",
            "attempt after 1 succeeded",
            "Resumed nap",
            "resumed (Timer) at Some(\"nap\") after 31536000s, late Some(0)",
            "WaitSucceeded nap",
            "wait nap Timer ended: Fired after 31536000s",
            "StepSucceeded after",
            "ExecutionSucceeded",
            "finished succeeded",
        ]
    );

    engine.start(pay, "p-1", "hooks-pay".to_owned()).await.unwrap();
    engine.worker("w").run_until_idle().await.unwrap();
    recorder.take();
    engine.send_event("p-1", "payment", &Payment { amount: 3 }).await.unwrap();
    engine.worker("w").run_until_idle().await.unwrap();
    let mut event = recorder.take();
    assert!(event[0].starts_with("run Event by engine-"), "the sender's engine runs it at once: {event:?}");
    event.remove(0);
    assert_eq!(
        event,
        [
            "Resumed payment",
            // The event arrived as the run began: picked up on time.
            "resumed (Event) at Some(\"payment\") after 0s, late Some(0)",
            "EventReceived payment",
            "wait payment Event ended: Received after 0s",
            // The sender's run hands the execution over once the event is committed.
            "run Continued by w",
            "Resumed payment",
            "resumed (Continued) at None after 0s, late None",
            "ExecutionSucceeded",
            "finished succeeded",
        ]
    );
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
        [
            "ExecutionStarted",
            "execution started x-1",
            "run Started by doomed",
            "attempt a 1",
            "attempt a 1 succeeded",
            "StepSucceeded a",
            "attempt b 1"
        ],
        "the crash cut the run inside b: no event of b was committed"
    );
    let second = engine_with(store, &clock, Arc::clone(&recorder));
    clock.advance(LEASE);
    second.worker("rescuer").run_until_idle().await.unwrap();
    assert_eq!(
        recorder.take(),
        [
            "run Continued by rescuer",
            "attempt b 1",
            "attempt b 1 succeeded",
            "Resumed a",
            // Left running by a worker that died: a takeover, not due at any time.
            "resumed (Continued) at None after 30s, late None",
            "StepSucceeded b",
            "ExecutionSucceeded",
            "finished succeeded",
        ]
    );
}

/// A run that panics outside a step suspends at no point, and is resumed at none: a gauge of
/// executions waiting at a point goes up and down by the same label.
#[tokio::test]
async fn a_panic_outside_a_step_suspends_at_no_point() {
    let (clock, recorder) = (clock(), Arc::new(Recorder::default()));
    let engine = engine_with(MemoryStore::new(), &clock, Arc::clone(&recorder));
    engine.start(pay_strictly, "s-1", "hooks-strict".to_owned()).await.unwrap();
    engine.worker("w").run_until_idle().await.unwrap();
    // A payment of 0 makes the code after the wait panic: the last checkpoint is the wait's.
    engine.send_event("s-1", "payment", &Payment { amount: 0 }).await.unwrap();
    engine.worker("w").run_until_idle().await.unwrap();
    bump("hooks-strict/fixed");
    clock.advance(Duration::from_secs(3_600));
    engine.worker("w").run_until_idle().await.unwrap();
    let seen = recorder.take();
    let moves: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .filter(|line| line.starts_with("suspended") || line.starts_with("resumed") || line.starts_with("finished"))
        .collect();
    assert_eq!(
        moves,
        [
            "suspended at Some(\"payment\") (Event)",
            "resumed (Event) at Some(\"payment\") after 0s, late Some(0)",
            // The sender's run handed over after committing the event; the next run panicked.
            "resumed (Continued) at None after 0s, late None",
            "suspended at None (Panicked)",
            "resumed (Timer) at None after 3600s, late Some(3540)",
            "finished succeeded"
        ]
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
    assert_eq!(seen.last().map(String::as_str), Some("finished succeeded"), "later hooks still run: {seen:?}");
}
