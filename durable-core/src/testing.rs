//! Run one execution in memory, on a virtual clock, with crashes where you want them.
//!
//! [`TestRun`] drives a workflow the way the engine does, but keeps the stored record in a plain
//! struct ([`Stored`]) that a test can inspect, clone, and hand to a fresh [`TestRun`] to
//! simulate a crash: everything but the stored record is dropped.
//!
//! [`Harness`] runs the real engine and worker on a `MemoryStore` and the same virtual clock,
//! crashes the process at a chosen checkpoint and resumes it from the store alone, and renders
//! an execution's log deterministically for `insta::assert_snapshot!`.
//!
//! ```
//! use durable_core::prelude::*;
//! use durable_core::testing::{Outcome, TestRun};
//!
//! #[durable]
//! async fn double(x: u64) -> Result<u64, StepError> {
//!     let y = step!("double", Ok::<_, StepError>(x * 2))?;
//!     let z = step!("add_one", Ok::<_, StepError>(y + 1))?;
//!     Ok(z)
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut run = TestRun::start(double, "d-1", 20);
//! run.crash_after(1);
//! assert!(matches!(run.run_once().await, Outcome::Crashed));
//! let stored = run.crash();
//! assert_eq!(stored.snapshot.as_ref().unwrap().state, r#"{"double":{"y":40}}"#);
//!
//! let mut resumed = TestRun::resume(double, stored);
//! assert_eq!(resumed.run_to_end().await.unwrap(), Ok(41));
//! # });
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::host::{BoxFuture, Ctx, EventPoll, Gate, Host, Pause};
use crate::step::{Semantics, StepError, StepPolicy};
use crate::time::{Clock, ManualClock, Timestamp};
use crate::workflow::{Entry, Exit, PointFacts, Snapshot, StateError, Workflow};

mod golden;
mod harness;
#[cfg(all(feature = "postgres", any(test, feature = "testing")))]
pub mod postgres;
mod process;

pub use self::golden::{GoldenError, GoldenState, check_golden_states};
pub use self::harness::Harness;
pub use self::process::{CrashAt, HarnessStore};

/// The stored record of one execution: all that survives a crash.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stored {
    /// The execution's id.
    pub execution_id: String,
    /// The input, as JSON.
    pub input: String,
    /// The last checkpoint, if any.
    pub snapshot: Option<StoredState>,
    /// Every checkpoint written, oldest first.
    pub checkpoints: Vec<StoredState>,
    /// When the execution wants to run again (a timer, a retry, an event's timeout).
    pub wake_at: Option<Timestamp>,
    /// The step in progress since the last checkpoint.
    pub step: Option<StepRecord>,
    /// Events delivered and not yet consumed: `(name, payload)`.
    pub inbox: VecDeque<(String, String)>,
    /// Events refused because their payload did not decode: `(name, error)`.
    pub rejected: Vec<(String, String)>,
    /// The clock's reading when the record was last written.
    pub now: Timestamp,
    /// The child workflows started, in order. A test plays their part: it puts what a child's
    /// end tells into the inbox (see [`Stored::child_returned`]).
    pub children: Vec<StoredChild>,
}

impl Stored {
    /// Tells the execution that its child `child` returned `result`, as the engine does when a
    /// child ends.
    pub fn child_returned<T: serde::Serialize, E: serde::Serialize>(&mut self, child: &str, result: &Result<T, E>) {
        let output = serde_json::to_string(result).unwrap_or_default();
        let id = serde_json::to_string(child).unwrap_or_default();
        let payload = format!("{{\"child\":{id},\"end\":{{\"Returned\":{output}}}}}");
        self.inbox.push_back((crate::child::notice_name(child), payload));
    }
}

/// A child workflow started by the execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredChild {
    /// Its workflow's name.
    pub workflow: &'static str,
    /// Its execution id.
    pub id: String,
    /// Its input, as JSON.
    pub input: String,
}

/// A persisted checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredState {
    /// The point it was written after.
    pub point: &'static str,
    /// The layout fingerprint of the workflow that wrote it.
    pub fingerprint: String,
    /// The state, as JSON.
    pub state: String,
}

/// The attempts of the step in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRecord {
    /// The step's point name.
    pub point: &'static str,
    /// The current (or last failed) attempt, from 1.
    pub attempt: u32,
    /// An at-most-once attempt that started and has not finished.
    pub started: bool,
    /// When the next attempt is due, if one was scheduled.
    pub retry_at: Option<Timestamp>,
}

/// How one [`TestRun::run_once`] ended.
#[derive(Debug)]
pub enum Outcome<T> {
    /// The function returned.
    Done(T),
    /// The execution waits; `until` is when it wants to run again (`None`: only an event wakes
    /// it).
    Suspended {
        /// The wake-up time.
        until: Option<Timestamp>,
    },
    /// The injected crash happened.
    Crashed,
    /// The stored state cannot be resumed.
    BadState(StateError),
}

/// Why [`TestRun::run_to_end`] could not finish.
#[derive(Debug, thiserror::Error)]
pub enum TestRunError {
    /// The execution waits for an event nobody sent.
    #[error("the execution waits for an event that was not sent")]
    WaitingForEvent,
    /// The injected crash happened.
    #[error("the execution crashed as injected")]
    Crashed,
    /// The stored state cannot be resumed.
    #[error(transparent)]
    BadState(#[from] StateError),
}

/// One execution driven in memory. See the [module docs](self).
pub struct TestRun<W: Workflow> {
    workflow: W,
    clock: ManualClock,
    stored: Stored,
    crash_after: Option<usize>,
    written: usize,
}

impl<W: Workflow> TestRun<W> {
    /// A new execution of `workflow` with `input`, on a virtual clock at time zero.
    pub fn start(workflow: W, execution_id: &str, input: W::Input) -> Self {
        let input = serde_json::to_string(&input).unwrap_or_else(|e| format!("\"{e}\""));
        let stored = Stored { execution_id: execution_id.to_owned(), input, ..Stored::default() };
        Self::resume(workflow, stored)
    }

    /// A fresh instance that continues from `stored`, as a new process would.
    pub fn resume(workflow: W, stored: Stored) -> Self {
        let clock = ManualClock::new(stored.now);
        TestRun { workflow, clock, stored, crash_after: None, written: 0 }
    }

    /// Makes this instance stop ("crash") right after the `n`-th checkpoint it persists,
    /// counting over all its runs.
    pub fn crash_after(&mut self, n: usize) {
        self.crash_after = Some(n);
    }

    /// The stored record.
    pub fn stored(&self) -> &Stored {
        &self.stored
    }

    /// The stored record, which may be edited (to corrupt a state, say).
    pub fn stored_mut(&mut self) -> &mut Stored {
        &mut self.stored
    }

    /// The virtual clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// Delivers an event to the execution's inbox.
    pub fn send_event(&mut self, name: &str, payload: impl Into<String>) {
        self.stored.inbox.push_back((name.to_owned(), payload.into()));
    }

    /// Drops everything but the stored record, as a crash would.
    pub fn crash(mut self) -> Stored {
        self.stored.now = self.clock.now();
        self.stored
    }

    /// Runs until the function returns, suspends, crashes as injected, or meets a bad state.
    pub async fn run_once(&mut self) -> Outcome<Result<W::Output, W::Error>> {
        let facts = self.workflow.facts();
        let ctx = Ctx::new(self.stored.execution_id.clone(), facts.name, Arc::new(self.clock.clone()));
        let snapshot = self.stored.snapshot.clone();
        let entry = match &snapshot {
            None => match serde_json::from_str(&self.stored.input) {
                Ok(input) => Entry::Start(input),
                Err(source) => {
                    return Outcome::BadState(StateError::Corrupt { workflow: facts.name, source });
                }
            },
            Some(s) => Entry::Resume(Snapshot { fingerprint: &s.fingerprint, state: &s.state }),
        };
        let mut host = TestHost {
            stored: &mut self.stored,
            clock: &self.clock,
            fingerprint: facts.fingerprint,
            crash_after: self.crash_after,
            written: self.written,
            wake: None,
            consume: None,
            crashed: false,
        };
        let exit = self.workflow.run(&ctx, &mut host, entry).await;
        let crashed = host.crashed;
        self.written = host.written;
        if crashed {
            self.crash_after = None;
        }
        self.stored.now = self.clock.now();
        match exit {
            Exit::Done(result) => Outcome::Done(result),
            Exit::Suspended => Outcome::Suspended { until: self.stored.wake_at },
            Exit::Interrupted if crashed => Outcome::Crashed,
            Exit::Interrupted => Outcome::Suspended { until: self.stored.wake_at },
            Exit::BadState(error) => Outcome::BadState(error),
        }
    }

    /// Runs to completion, moving the virtual clock to each wake-up time instead of sleeping.
    pub async fn run_to_end(&mut self) -> Result<Result<W::Output, W::Error>, TestRunError> {
        loop {
            match self.run_once().await {
                Outcome::Done(result) => return Ok(result),
                Outcome::Suspended { until: Some(at) } => {
                    if at > self.clock.now() {
                        self.clock.set(at);
                    }
                }
                Outcome::Suspended { until: None } => return Err(TestRunError::WaitingForEvent),
                Outcome::Crashed => return Err(TestRunError::Crashed),
                Outcome::BadState(error) => return Err(error.into()),
            }
        }
    }
}

struct TestHost<'a> {
    stored: &'a mut Stored,
    clock: &'a ManualClock,
    fingerprint: &'static str,
    crash_after: Option<usize>,
    written: usize,
    /// The wake-up time the next checkpoint stores (a timer or an event deadline).
    wake: Option<Timestamp>,
    /// The inbox entry the next checkpoint consumes.
    consume: Option<usize>,
    crashed: bool,
}

impl TestHost<'_> {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

impl Host for TestHost<'_> {
    fn checkpoint<'a>(&'a mut self, point: &'static PointFacts, state: String) -> BoxFuture<'a, Result<(), Pause>> {
        let stored = StoredState { point: point.name, fingerprint: self.fingerprint.to_owned(), state };
        self.stored.checkpoints.push(stored.clone());
        self.stored.snapshot = Some(stored);
        self.stored.step = None;
        self.stored.wake_at = self.wake.take();
        if let Some(index) = self.consume.take() {
            self.stored.inbox.remove(index);
        }
        self.written += 1;
        let crash = self.crash_after == Some(self.written);
        self.crashed |= crash;
        Box::pin(async move { if crash { Err(Pause::Interrupt) } else { Ok(()) } })
    }

    fn step_begin<'a>(
        &'a mut self,
        point: &'static PointFacts,
        policy: &'a StepPolicy,
    ) -> BoxFuture<'a, Result<Gate, Pause>> {
        let now = self.now();
        let gate = match self.stored.step.as_mut().filter(|s| s.point == point.name) {
            Some(record) if record.retry_at.is_some_and(|at| at > now) => {
                self.stored.wake_at = record.retry_at;
                Err(Pause::Suspend)
            }
            Some(record) if record.started => {
                // An at-most-once attempt was interrupted: it counts as failed. As in the engine,
                // the next attempt waits for the retry delay like after any failed attempt.
                record.started = false;
                match policy.retry.delay_after(record.attempt, 0.5) {
                    Some(delay) => {
                        let at = now.saturating_add(delay);
                        record.retry_at = Some(at);
                        self.stored.wake_at = Some(at);
                        Err(Pause::Suspend)
                    }
                    None => {
                        let message =
                            "the attempt was interrupted before it finished and may not run twice (at most once)";
                        Ok(Gate::Fail(StepError::retryable(message).with_step(point.name, record.attempt)))
                    }
                }
            }
            Some(record) => {
                record.attempt += 1;
                record.retry_at = None;
                Ok(Gate::Run { attempt: record.attempt })
            }
            None => {
                let record = StepRecord { point: point.name, attempt: 1, started: false, retry_at: None };
                self.stored.step = Some(record);
                Ok(Gate::Run { attempt: 1 })
            }
        };
        if let (Ok(Gate::Run { .. }), Some(record)) = (&gate, self.stored.step.as_mut()) {
            record.started = policy.semantics == Semantics::AtMostOncePerAttempt;
        }
        Box::pin(async move { gate })
    }

    fn step_end<'a>(
        &'a mut self,
        point: &'static PointFacts,
        policy: &'a StepPolicy,
        outcome: Result<(), StepError>,
    ) -> BoxFuture<'a, Result<Result<(), StepError>, Pause>> {
        let now = self.now();
        let record = self.stored.step.get_or_insert(StepRecord {
            point: point.name,
            attempt: 1,
            started: false,
            retry_at: None,
        });
        record.started = false;
        let attempt = record.attempt;
        let result = match outcome {
            Ok(()) => Ok(Ok(())),
            Err(error) if error.is_terminal() => Ok(Err(error.with_step(point.name, attempt))),
            Err(error) => match policy.retry.delay_after(attempt, 0.5) {
                None => Ok(Err(error.with_step(point.name, attempt))),
                Some(delay) => {
                    let at = now.saturating_add(delay);
                    record.retry_at = Some(at);
                    self.stored.wake_at = Some(at);
                    Err(Pause::Suspend)
                }
            },
        };
        Box::pin(async move { result })
    }

    fn sleep_start(&mut self, _point: &'static PointFacts, duration: Duration) -> Timestamp {
        let wake = self.now().saturating_add(duration);
        self.wake = Some(wake);
        wake
    }

    fn sleep_due(&mut self, _point: &'static PointFacts, wake_at: Timestamp) -> bool {
        let due = self.now() >= wake_at;
        if !due {
            self.stored.wake_at = Some(wake_at);
        }
        due
    }

    fn event_start(&mut self, _point: &'static PointFacts, timeout: Option<Duration>) -> Option<Timestamp> {
        let deadline = timeout.map(|t| self.now().saturating_add(t));
        self.wake = deadline;
        deadline
    }

    fn event_poll(&mut self, point: &'static PointFacts, deadline: Option<Timestamp>) -> EventPoll {
        if let Some(index) = self.stored.inbox.iter().position(|(name, _)| name == point.name) {
            self.consume = Some(index);
            return EventPoll::Received(self.stored.inbox[index].1.clone());
        }
        if deadline.is_some_and(|at| self.now() >= at) {
            return EventPoll::TimedOut;
        }
        self.stored.wake_at = deadline;
        EventPoll::Pending
    }

    fn event_rejected(&mut self, point: &'static PointFacts, error: String) {
        if let Some(index) = self.consume.take() {
            self.stored.inbox.remove(index);
        }
        self.stored.rejected.push((point.name.to_owned(), error));
    }

    fn child_start(
        &mut self,
        point: &'static PointFacts,
        workflow: &'static str,
        key: Option<String>,
        input: String,
        _keys: Vec<(String, String)>,
    ) -> String {
        let id = crate::child::child_id(&self.stored.execution_id, point.name, key.as_deref());
        if !self.stored.children.iter().any(|child| child.id == id) {
            self.stored.children.push(StoredChild { workflow, id: id.clone(), input });
        }
        id
    }

    fn callback_start(
        &mut self,
        _point: &'static PointFacts,
        timeout: Option<Duration>,
        heartbeat: Option<Duration>,
    ) -> crate::CallbackWait {
        let now = self.now();
        let deadline = timeout.map(|timeout| now.saturating_add(timeout));
        let token = crate::callback::mint(&self.stored.execution_id);
        crate::CallbackWait { token, created: now, deadline, heartbeat, submit_failed: None }
    }

    /// Heartbeats are not simulated here: use the engine (or [`Harness`]) for them.
    fn callback_poll(&mut self, _point: &'static PointFacts, wait: &crate::CallbackWait) -> crate::CallbackPoll {
        let name = crate::callback::completion_name(&wait.token);
        if let Some(index) = self.stored.inbox.iter().position(|(event, _)| *event == name) {
            self.consume = Some(index);
            return crate::CallbackPoll::Received(self.stored.inbox[index].1.clone());
        }
        if wait.deadline.is_some_and(|at| self.now() >= at) {
            return crate::CallbackPoll::TimedOut;
        }
        self.stored.wake_at = wait.deadline;
        crate::CallbackPoll::Pending
    }

    fn poll_scheduled(&mut self, _point: &'static PointFacts, _polls: u32, delay: Duration) -> Timestamp {
        let at = self.now().saturating_add(delay);
        self.wake = Some(at);
        at
    }

    fn poll_due(&mut self, _point: &'static PointFacts, at: Timestamp) -> bool {
        let due = self.now() >= at;
        if !due {
            self.stored.wake_at = Some(at);
        }
        due
    }

    fn batch_start(&mut self, _point: &'static PointFacts, _branches: usize, _detail: String) {}

    fn branch_results(&mut self, point: &'static PointFacts) -> Vec<(usize, String)> {
        let prefix = format!("branch:{}:", point.name);
        let results = self
            .stored
            .inbox
            .iter()
            .filter_map(|(name, payload)| Some((name.strip_prefix(&prefix)?.parse().ok()?, payload.clone())));
        results.collect()
    }

    fn branches_end<'a>(
        &'a mut self,
        point: &'static PointFacts,
        ended: Vec<(usize, String, String)>,
    ) -> BoxFuture<'a, Result<(), Pause>> {
        for (index, outcome, _) in ended {
            self.stored.inbox.push_back((format!("branch:{}:{index}", point.name), outcome));
        }
        Box::pin(async { Ok(()) })
    }

    fn batch_end<'a>(&'a mut self, point: &'static PointFacts) -> BoxFuture<'a, Result<(), Pause>> {
        let prefix = format!("branch:{}:", point.name);
        self.stored.inbox.retain(|(name, _)| !name.starts_with(&prefix));
        Box::pin(async { Ok(()) })
    }

    fn batch_child_start(
        &mut self,
        point: &'static PointFacts,
        workflow: &'static str,
        index: usize,
        input: String,
        _keys: Vec<(String, String)>,
    ) {
        let id = crate::child::child_id(&self.stored.execution_id, point.name, Some(&index.to_string()));
        self.stored.children.push(StoredChild { workflow, id, input });
    }

    /// A test puts a child's end into the inbox under `batch:<point>`.
    fn batch_children_ended(&mut self, point: &'static PointFacts) -> Vec<(String, String)> {
        let name = format!("batch:{}", point.name);
        let (ended, kept): (VecDeque<_>, VecDeque<_>) =
            self.stored.inbox.drain(..).partition(|(event, _)| *event == name);
        self.stored.inbox = kept;
        let ended = ended.into_iter().filter_map(|(_, payload)| {
            let notice: crate::child::ChildNotice<serde_json::Value> = serde_json::from_str(&payload).ok()?;
            Some((notice.child, payload))
        });
        ended.collect()
    }

    fn batch_note(&mut self, _point: &'static PointFacts, _words: String) {}

    fn batch_wait(&mut self, _point: &'static PointFacts) {
        self.stored.wake_at = None;
    }

    fn child_wait(&mut self, _point: &'static PointFacts, _child: &str) {}

    fn child_poll(&mut self, _point: &'static PointFacts, child: &str) -> EventPoll {
        let name = crate::child::notice_name(child);
        if let Some(index) = self.stored.inbox.iter().position(|(event, _)| *event == name) {
            self.consume = Some(index);
            return EventPoll::Received(self.stored.inbox[index].1.clone());
        }
        self.stored.wake_at = None;
        EventPoll::Pending
    }
}
