//! Hooks: user code that watches executions run (for metrics, tracing, custom logs).
//!
//! One mechanism carries everything the engine reports: the engine's own `tracing` events are
//! the first hook ([`TracingHooks`], always installed), and hooks registered with
//! [`EngineBuilder::hooks`](super::EngineBuilder::hooks) are called after it, at the same points
//! and in the same order:
//!
//! - [`Hooks::execution_started`] once an execution is created (its `ExecutionStarted` committed);
//! - [`Hooks::run_started`] when a run of an execution begins on this engine, with why;
//! - [`Hooks::attempt_starting`] just before a step's body runs (its lease confirmed), and
//!   [`Hooks::attempt_finished`] as soon as the body returned, with its outcome and how long it
//!   took (before that outcome is committed: if the process dies first, the attempt runs again);
//! - [`Hooks::wait_started`] and [`Hooks::wait_ended`] for timers and event waits, once
//!   committed; a wait's end carries how long it lasted, across any suspension;
//! - [`Hooks::suspended`] when an execution leaves memory to wait (a timer, an event, a retry
//!   delay), and [`Hooks::resumed`] when a later run picks it up again, with how late it was;
//! - [`Hooks::finished`] once it succeeded, failed or was cancelled;
//! - [`Hooks::committed`] for each group commit the engine wrote (how many checkpoints, how long);
//! - [`Hooks::event`] for every history event, once the commit that wrote it has applied (the
//!   typed methods above are called right after it for the same event).
//!
//! Hooks cannot break an execution. Except for `run_started`, `attempt_starting` and
//! `attempt_finished`, which report what the run is doing, they are called after the commit
//! they report; nothing a hook does changes what is stored. A hook that panics is caught,
//! reported once (at `ERROR`), and skipped, and the other hooks and the run go on.
//!
//! **Hooks run inline**, on the task of the run they report (`committed`: on the engine's commit
//! task). A slow hook delays that run, or every run waiting on the next group commit, never what
//! they commit: keep hooks quick (a counter, a log line) and hand heavy work to a channel read
//! by a task of your own.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use durable_core::prelude::*;
//! use durable_core::engine::{Hooks, RunInfo};
//! use durable_core::store::HistoryEvent;
//! use durable_core::{Engine, MemoryStore};
//!
//! #[derive(Default)]
//! struct Count(Mutex<Vec<String>>);
//!
//! impl Hooks for Count {
//!     fn event(&self, run: &RunInfo<'_>, event: &HistoryEvent) {
//!         self.0.lock().unwrap().push(format!("{} {}", run.execution_id, event.kind));
//!     }
//! }
//!
//! #[durable]
//! async fn hello(name: String) -> Result<String, WorkflowError> {
//!     let greeting = step!("greet", greet(&name).await)?;
//!     Ok(greeting)
//! }
//! # async fn greet(name: &str) -> Result<String, std::io::Error> { Ok(format!("hi {name}")) }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let seen = Arc::new(Count::default());
//! let engine = Engine::builder(MemoryStore::new()).register(hello).hooks(Arc::clone(&seen)).build()?;
//! engine.start(hello, "h-1", "Ada".to_owned()).await?;
//! engine.worker("w").run_until_idle().await?;
//! let seen = seen.0.lock().unwrap().clone();
//! assert_eq!(seen, ["h-1 ExecutionStarted", "h-1 StepSucceeded", "h-1 ExecutionSucceeded"]);
//! # Ok::<(), durable_core::EngineError>(())
//! # }).unwrap();
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::trace;
use crate::store::{EventKind, HistoryEvent};
use crate::time::Timestamp;

/// The execution a hook is told about.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RunInfo<'a> {
    /// The workflow's name.
    pub workflow: &'a str,
    /// The execution's id.
    pub execution_id: &'a str,
    /// How logs name the execution: `order_workflow o-42`, with its business keys when they
    /// say more than the id.
    pub name: &'a str,
    /// The worker running it (the lease owner), or `None` for what the engine itself does
    /// outside a run (a start, a cancel).
    pub worker: Option<&'a str>,
}

/// Why a run of an execution began; see [`Hooks::run_started`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunCause {
    /// The execution is new: its first run.
    Started,
    /// Its timer fired.
    Timer,
    /// An event it waits for arrived (or its wait timed out).
    Event,
    /// A failed step's retry delay passed.
    Retry,
    /// It was running and is picked up again: its previous run stopped (a shutdown, a handed-over
    /// event) or its worker died and the lease expired.
    Continued,
}

/// A step attempt whose body returned; see [`Hooks::attempt_finished`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Attempt<'a> {
    /// The step's name.
    pub step: &'a str,
    /// The attempt, from 1.
    pub attempt: u32,
    /// How long the body ran (wall time on this process, not the engine's clock).
    pub took: Duration,
    /// How it went.
    pub outcome: AttemptOutcome<'a>,
}

/// How a step attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome<'a> {
    /// The body returned `Ok`.
    Succeeded,
    /// The body returned an error, panicked, or (at most once) was found interrupted.
    Failed {
        /// The error's message.
        error: &'a str,
        /// When another attempt runs, or `None` if none will (no attempt left, or a terminal
        /// error): the step then hands its error to the workflow.
        retry_in: Option<Duration>,
    },
}

/// What a wait waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitKind {
    /// A durable timer (`wait!(name, duration)`).
    Timer,
    /// An event delivered by name (`wait!(name, event)`).
    Event,
}

/// A wait that started; see [`Hooks::wait_started`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct WaitStart<'a> {
    /// The wait's point.
    pub point: &'a str,
    /// A timer or an event.
    pub kind: WaitKind,
    /// When the timer fires, or the event wait times out (`None`: no timeout).
    pub until: Option<Timestamp>,
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitOutcome {
    /// The timer fired.
    Fired,
    /// The event arrived.
    Received,
    /// The event did not arrive before the wait's timeout.
    TimedOut,
}

/// A wait that ended; see [`Hooks::wait_ended`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct WaitEnd<'a> {
    /// The wait's point.
    pub point: &'a str,
    /// A timer or an event.
    pub kind: WaitKind,
    /// How it ended.
    pub outcome: WaitOutcome,
    /// How long it lasted, on the engine's clock, from the start of the wait (or from the
    /// suspension, for a wait resumed by another run) to its end.
    pub waited: Duration,
}

/// Why an execution suspended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SuspendReason {
    /// It waits on a timer.
    Timer,
    /// It waits for an event (maybe with a timeout).
    Event,
    /// A step failed and waits for its retry delay.
    Retry,
    /// Its code panicked outside a step body; it goes on from its last checkpoint later.
    Panicked,
}

/// An execution that suspended; see [`Hooks::suspended`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Suspension<'a> {
    /// The point it waits at (the wait, or the step that retries); `None` after a panic.
    pub point: Option<&'a str>,
    /// Why.
    pub reason: SuspendReason,
    /// When a worker picks it up again (`None`: when its event arrives).
    pub until: Option<Timestamp>,
}

/// An execution picked up again; see [`Hooks::resumed`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Resumption<'a> {
    /// Why this run began.
    pub cause: RunCause,
    /// Where it was suspended, as [`Suspension::point`] said (`None` if it was not suspended,
    /// only left running, or after a panic outside a step).
    pub point: Option<&'a str>,
    /// How long it was out of memory (since its last commit), on the engine's clock.
    pub slept: Duration,
    /// How long after it was due this run picked it up: after its timer, retry delay or
    /// timeout passed, or after the event it waited for arrived. `None` when not known (it
    /// was left running).
    pub late: Option<Duration>,
}

/// How an execution ended; see [`Hooks::finished`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// It returned `Ok`.
    Succeeded,
    /// It returned an error.
    Failed,
    /// It was cancelled.
    Cancelled,
}

impl Outcome {
    /// `succeeded`, `failed` or `cancelled`: for labels and fields.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// One group commit of the engine; see [`Hooks::committed`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct CommitBatch {
    /// The checkpoints it held (one store transaction for all of them).
    pub commits: usize,
    /// How long the store took to write it (wall time).
    pub took: Duration,
    /// Whether it failed (none of its commits applied).
    pub failed: bool,
}

/// Watches executions run. Every method has an empty default: implement those you need.
pub trait Hooks: Send + Sync + 'static {
    /// Execution `run` was created (its `ExecutionStarted` is committed).
    fn execution_started(&self, run: &RunInfo<'_>) {
        let _ = run;
    }

    /// A run of `run`'s execution begins on this engine, because of `cause`.
    fn run_started(&self, run: &RunInfo<'_>, cause: RunCause) {
        let _ = (run, cause);
    }

    /// Attempt `attempt` (from 1) of step `step` is about to run its body.
    fn attempt_starting(&self, run: &RunInfo<'_>, step: &str, attempt: u32) {
        let _ = (run, step, attempt);
    }

    /// A step attempt's body returned (or panicked); called before its outcome is committed.
    fn attempt_finished(&self, run: &RunInfo<'_>, attempt: &Attempt<'_>) {
        let _ = (run, attempt);
    }

    /// A timer or event wait started (committed).
    fn wait_started(&self, run: &RunInfo<'_>, wait: &WaitStart<'_>) {
        let _ = (run, wait);
    }

    /// A timer fired, an event arrived or a wait timed out (committed).
    fn wait_ended(&self, run: &RunInfo<'_>, wait: &WaitEnd<'_>) {
        let _ = (run, wait);
    }

    /// The execution suspended: it is persisted and leaves memory (committed).
    fn suspended(&self, run: &RunInfo<'_>, suspension: &Suspension<'_>) {
        let _ = (run, suspension);
    }

    /// A run picked the execution up again after it suspended or was left running; called when
    /// its `Resumed` is committed (with the run's next checkpoint).
    fn resumed(&self, run: &RunInfo<'_>, resumption: &Resumption<'_>) {
        let _ = (run, resumption);
    }

    /// The execution ended (committed).
    fn finished(&self, run: &RunInfo<'_>, outcome: Outcome) {
        let _ = (run, outcome);
    }

    /// The engine wrote a group commit (or failed to). Called on the engine's commit task.
    fn committed(&self, batch: &CommitBatch) {
        let _ = batch;
    }

    /// `event` was committed to the execution's history (its `state` is left out).
    fn event(&self, run: &RunInfo<'_>, event: &HistoryEvent) {
        let _ = (run, event);
    }
}

impl<H: Hooks + ?Sized> Hooks for Arc<H> {
    fn execution_started(&self, run: &RunInfo<'_>) {
        (**self).execution_started(run);
    }

    fn run_started(&self, run: &RunInfo<'_>, cause: RunCause) {
        (**self).run_started(run, cause);
    }

    fn attempt_starting(&self, run: &RunInfo<'_>, step: &str, attempt: u32) {
        (**self).attempt_starting(run, step, attempt);
    }

    fn attempt_finished(&self, run: &RunInfo<'_>, attempt: &Attempt<'_>) {
        (**self).attempt_finished(run, attempt);
    }

    fn wait_started(&self, run: &RunInfo<'_>, wait: &WaitStart<'_>) {
        (**self).wait_started(run, wait);
    }

    fn wait_ended(&self, run: &RunInfo<'_>, wait: &WaitEnd<'_>) {
        (**self).wait_ended(run, wait);
    }

    fn suspended(&self, run: &RunInfo<'_>, suspension: &Suspension<'_>) {
        (**self).suspended(run, suspension);
    }

    fn resumed(&self, run: &RunInfo<'_>, resumption: &Resumption<'_>) {
        (**self).resumed(run, resumption);
    }

    fn finished(&self, run: &RunInfo<'_>, outcome: Outcome) {
        (**self).finished(run, outcome);
    }

    fn committed(&self, batch: &CommitBatch) {
        (**self).committed(batch);
    }

    fn event(&self, run: &RunInfo<'_>, event: &HistoryEvent) {
        (**self).event(run, event);
    }
}

/// The engine's `tracing` events, as a hook: one per history event, in business terms (see
/// the [engine's docs](super)). Always the first hook of an engine.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingHooks;

impl Hooks for TracingHooks {
    fn event(&self, run: &RunInfo<'_>, event: &HistoryEvent) {
        trace::history(run.name, event);
    }
}

/// One registered hook, and whether its panic was reported already.
struct Registered {
    hooks: Box<dyn Hooks>,
    panicked: AtomicBool,
}

/// The hooks of an engine, called in order, each contained.
pub(crate) struct Observers(Vec<Registered>);

impl Default for Observers {
    fn default() -> Self {
        Observers(vec![Registered { hooks: Box::new(TracingHooks), panicked: AtomicBool::new(false) }])
    }
}

impl Observers {
    pub(crate) fn add(&mut self, hooks: impl Hooks) {
        self.0.push(Registered { hooks: Box::new(hooks), panicked: AtomicBool::new(false) });
    }

    fn each(&self, call: impl Fn(&dyn Hooks)) {
        for registered in &self.0 {
            if catch_unwind(AssertUnwindSafe(|| call(&*registered.hooks))).is_err()
                && !registered.panicked.swap(true, Ordering::Relaxed)
            {
                tracing::error!("a durable hook panicked; it is skipped where it panics, and this is reported once");
            }
        }
    }

    pub(crate) fn run_started(&self, run: &RunInfo<'_>, cause: RunCause) {
        self.each(|hooks| hooks.run_started(run, cause));
    }

    pub(crate) fn attempt_starting(&self, run: &RunInfo<'_>, step: &str, attempt: u32) {
        self.each(|hooks| hooks.attempt_starting(run, step, attempt));
    }

    pub(crate) fn attempt_finished(&self, run: &RunInfo<'_>, attempt: &Attempt<'_>) {
        self.each(|hooks| hooks.attempt_finished(run, attempt));
    }

    pub(crate) fn wait_started(&self, run: &RunInfo<'_>, wait: &WaitStart<'_>) {
        self.each(|hooks| hooks.wait_started(run, wait));
    }

    pub(crate) fn wait_ended(&self, run: &RunInfo<'_>, wait: &WaitEnd<'_>) {
        self.each(|hooks| hooks.wait_ended(run, wait));
    }

    pub(crate) fn suspended(&self, run: &RunInfo<'_>, suspension: &Suspension<'_>) {
        self.each(|hooks| hooks.suspended(run, suspension));
    }

    pub(crate) fn resumed(&self, run: &RunInfo<'_>, resumption: &Resumption<'_>) {
        self.each(|hooks| hooks.resumed(run, resumption));
    }

    pub(crate) fn committed(&self, batch: &CommitBatch) {
        self.each(|hooks| hooks.committed(batch));
    }

    /// `event` was committed: [`Hooks::event`], then the typed method that needs nothing but the
    /// event (an execution started or finished); the host calls the others.
    pub(crate) fn event(&self, run: &RunInfo<'_>, event: &HistoryEvent) {
        self.each(|hooks| hooks.event(run, event));
        let outcome = match event.kind {
            EventKind::ExecutionStarted => {
                self.each(|hooks| hooks.execution_started(run));
                return;
            }
            EventKind::ExecutionSucceeded => Outcome::Succeeded,
            EventKind::ExecutionFailed => Outcome::Failed,
            EventKind::ExecutionCancelled => Outcome::Cancelled,
            _ => return,
        };
        self.each(|hooks| hooks.finished(run, outcome));
    }
}
