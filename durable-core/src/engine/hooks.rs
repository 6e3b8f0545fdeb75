//! Hooks: user code that watches executions run (for metrics, tracing, custom logs).
//!
//! One mechanism carries everything the engine reports: the engine's own `tracing` events are
//! the first hook ([`TracingHooks`], always installed), and hooks registered with
//! [`EngineBuilder::hooks`](super::EngineBuilder::hooks) are called after it, at the same points
//! and in the same order:
//!
//! - [`Hooks::run_started`] when a run of an execution begins on this engine, with why;
//! - [`Hooks::attempt_starting`] just before a step's body runs (its lease confirmed);
//! - [`Hooks::event`] for every history event, once the commit that wrote it has applied: the
//!   execution started, a step attempt succeeded or failed, a wait started or ended, the
//!   execution suspended, resumed, finished or was cancelled.
//!
//! Hooks cannot break an execution. They are called after the commit they report, so nothing
//! they do changes what is stored; a hook that panics is caught, reported once (at `ERROR`), and
//! skipped, and the other hooks and the run go on. Hooks run inline on the run's task: a slow
//! hook delays that run (never what it commits), so keep them quick and hand heavy work to a
//! channel.
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

use super::trace;
use crate::store::HistoryEvent;

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

/// Watches executions run. Every method has an empty default: implement those you need.
pub trait Hooks: Send + Sync + 'static {
    /// A run of `run`'s execution begins on this engine, because of `cause`.
    fn run_started(&self, run: &RunInfo<'_>, cause: RunCause) {
        let _ = (run, cause);
    }

    /// Attempt `attempt` (from 1) of step `step` is about to run its body.
    fn attempt_starting(&self, run: &RunInfo<'_>, step: &str, attempt: u32) {
        let _ = (run, step, attempt);
    }

    /// `event` was committed to the execution's history (its `state` is left out).
    fn event(&self, run: &RunInfo<'_>, event: &HistoryEvent) {
        let _ = (run, event);
    }
}

impl<H: Hooks + ?Sized> Hooks for Arc<H> {
    fn run_started(&self, run: &RunInfo<'_>, cause: RunCause) {
        (**self).run_started(run, cause);
    }

    fn attempt_starting(&self, run: &RunInfo<'_>, step: &str, attempt: u32) {
        (**self).attempt_starting(run, step, attempt);
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

    pub(crate) fn event(&self, run: &RunInfo<'_>, event: &HistoryEvent) {
        self.each(|hooks| hooks.event(run, event));
    }
}
