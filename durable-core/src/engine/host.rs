//! The engine's [`Host`]: one run of one execution, against the store.
//!
//! The host keeps the record as last committed and a draft of the next [`Commit`]: every call
//! of the generated code updates the draft (the step record, the wake-up time, history events,
//! inbox events to consume), and the draft is written through the group committer at each
//! checkpoint, before an at-most-once step body, and when the run ends. Its semantics are those
//! of [`TestRun`](crate::testing::TestRun), with the store as the record.
//!
//! The checkpoint written when a timer or an event wait starts is held back and written with
//! whatever follows (the suspension, or the checkpoint after the event): one commit instead of
//! two per wait. If the process dies in between, the run resumes from the previous checkpoint
//! and reaches the wait again, which computes its wake-up time anew.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::children::{ended_notice, ended_words, returned};
use super::commit::Committer;
use super::hooks::{
    Attempt, AttemptOutcome, Observers, Resumption, RunCause, RunInfo, SuspendReason, Suspension, WaitEnd, WaitKind,
    WaitOutcome, WaitStart,
};
use super::lease::HeldLease;
use super::trace::{Subject, human};
use crate::callback::{self, CallbackPoll, CallbackWait};
use crate::child::{child_id, notice_name};
use crate::host::{BoxFuture, EventPoll, Gate, Host, Pause};
use crate::step::{Retry, Semantics, StepError, StepPolicy};
use crate::store::{
    Commit, EventKind, ExecutionRecord, HistoryEvent, InboxEvent, NewExecution, Notice, Snapshot, Status, StepRecord,
    Store, StoreError,
};
use crate::time::{SharedClock, Timestamp};
use crate::workflow::{PointFacts, PointKind, WorkflowFacts};

/// What a run needs from the engine.
pub(crate) struct Env<S> {
    pub(crate) store: Arc<S>,
    pub(crate) committer: Committer,
    pub(crate) clock: SharedClock,
    /// The lease the run commits under.
    pub(crate) lease: Arc<HeldLease>,
    /// How long a lease lasts.
    pub(crate) lease_length: Duration,
    /// Set when the worker shuts down: the run stops after its next checkpoint.
    pub(crate) stop: Arc<AtomicBool>,
    /// The retry policy of a step given none, for this run's workflow.
    pub(crate) default_retry: Retry,
    /// What watches the run.
    pub(crate) observers: Arc<Observers>,
}

impl<S> Env<S> {
    /// The retry policy that applies to a step with `policy`.
    fn retry<'a>(&'a self, policy: &'a StepPolicy) -> &'a Retry {
        if policy.retry.is_inherited() { &self.default_retry } else { &policy.retry }
    }
}

/// An event handed to the run by its sender rather than through the inbox.
pub(crate) struct Staged {
    pub(crate) name: String,
    pub(crate) payload: String,
}

/// What the run did that its driver must know.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// The staged event decoded and was committed.
    pub(crate) delivered: bool,
    /// The staged event did not decode: what the decoder said. Nothing was stored.
    pub(crate) rejected: Option<String>,
    /// The host stopped the run on purpose after a commit that released the lease.
    pub(crate) released: bool,
    /// The commit that failed, if one did.
    pub(crate) failure: Option<StoreError>,
}

/// A timer or event wait started since the last checkpoint.
enum Waiting {
    Timer(Timestamp),
    Event(Option<Timestamp>),
    /// A wait for child execution `.0`.
    Child(String),
    /// A wait for a condition until its next poll: when, after which poll, and the delay.
    Poll(Timestamp, u32, Duration),
    /// A `map!` of child workflows waiting for the children's ends, reported as event `.0`.
    Batch(String),
}

/// What the last event poll found, until the next checkpoint records it.
enum Polled {
    Inbox(u64),
    Staged,
    /// The wait at this point timed out.
    TimedOut(&'static PointFacts),
    /// The end of a child: its inbox seq, the history's words for it, and the wait's point.
    Child(u64, String, &'static PointFacts),
}

/// Why the run is about to suspend.
#[derive(Clone)]
enum Suspend {
    Timer(&'static PointFacts, Timestamp),
    Retry(&'static PointFacts, Timestamp),
    Event(&'static PointFacts, Option<Timestamp>),
    /// Waiting for child execution `.1` to end.
    Child(&'static PointFacts, String),
    /// A `map!` waiting for its children's ends, reported as event `.1`.
    Batch(&'static PointFacts, String),
    /// Waiting for the callback completed by event `.1`, until `.2` (a timeout or heartbeat).
    Callback(&'static PointFacts, String, Option<Timestamp>),
    /// The workflow's own code panicked: try again from the last checkpoint at this time.
    Panicked(String, Timestamp),
}

/// The span of the step attempt whose body is running, shared with the run's driver, which
/// enters it at each poll of the run: the body's own log lines nest under it.
pub(crate) type StepSpan = Arc<Mutex<Option<tracing::Span>>>;

/// A resumption, told to the hooks once its `Resumed` is committed.
struct Resuming {
    cause: RunCause,
    point: Option<String>,
    slept: Duration,
    late: Option<Duration>,
}

/// The step whose body ran since the last checkpoint.
struct StepRun {
    attempt: u32,
    began: Timestamp,
    /// When the body began, in wall time (for [`Attempt::took`]).
    clock: Instant,
    failed: bool,
    /// The body has returned (a panic before that was the body's).
    ended: bool,
    policy: StepPolicy,
}

/// The name of the self-notices that hold the outcomes of the batch at `point`, before the
/// branch's index.
fn branch_prefix(point: &PointFacts) -> String {
    format!("branch:{}:", point.name)
}

/// The event the children of the `map!` at `point` report their ends as.
fn batch_event(point: &PointFacts) -> String {
    format!("batch:{}", point.name)
}

/// The [`Host`] of one run. See the [module docs](self).
pub(crate) struct RunHost<S> {
    env: Env<S>,
    facts: &'static WorkflowFacts,
    record: ExecutionRecord,
    next: Commit,
    inbox: Option<Vec<InboxEvent>>,
    refused: Vec<u64>,
    staged: Option<Staged>,
    wait: Option<Waiting>,
    polled: Option<Polled>,
    poll_deadline: Option<Timestamp>,
    step: Option<StepRun>,
    suspend: Option<Suspend>,
    /// The child started since the last checkpoint: its workflow and id.
    spawned: Option<(&'static str, String)>,
    /// A callback or batch begun since the last checkpoint: the event that checkpoint records.
    opened: Option<(EventKind, String)>,
    /// The event that completes the callback created since the last checkpoint.
    callback_name: Option<String>,
    /// How the run suspends if the payload just polled is refused, when that is not the
    /// event wait's usual way.
    on_rejected: Option<Suspend>,
    /// How logs name the execution.
    who: String,
    /// The worker running it.
    worker: String,
    /// The `keys` and `business_key` fields of its spans.
    keys: (Option<String>, Option<String>),
    /// The span of the step attempt running now.
    step_span: StepSpan,
    /// Why this run resumed, until its `Resumed` is committed.
    resuming: Option<Resuming>,
    /// When the wait at hand began (its start, or the suspension this run resumed from).
    wait_began: Option<Timestamp>,
    /// The deadline of the wait started since the last commit.
    wait_until: Option<Timestamp>,
    /// An operator woke the execution before its timer was due ([`Engine::wake`](super::Engine::wake)
    /// moved the suspended record's wake-up time before the timer's): the first timer this run
    /// meets counts as fired.
    woken: bool,
    pub(crate) report: Report,
}

impl<S: Store> RunHost<S> {
    /// A host for a run of `record` (leased to `env.owner`), with `staged` handed in by a sender.
    pub(crate) fn new(
        env: Env<S>,
        facts: &'static WorkflowFacts,
        record: ExecutionRecord,
        staged: Option<Staged>,
    ) -> Self {
        let next = Commit::on(&record, env.clock.now());
        let subject = Subject::new(&record.workflow, &record.id, Some(facts), &record.input);
        let who = subject.name();
        let (keys, business_key) = subject.key_fields();
        let keys = (keys, business_key.map(str::to_owned));
        let worker = env.lease.token().owner;
        let woken = record.status == Status::Suspended && record.waiting_for.is_none() && record.step.is_none();
        RunHost {
            env,
            facts,
            record,
            next,
            inbox: None,
            refused: Vec::new(),
            staged,
            wait: None,
            polled: None,
            poll_deadline: None,
            step: None,
            suspend: None,
            spawned: None,
            opened: None,
            callback_name: None,
            on_rejected: None,
            who,
            worker,
            keys,
            step_span: StepSpan::default(),
            resuming: None,
            wait_began: None,
            wait_until: None,
            woken,
            report: Report::default(),
        }
    }

    /// The span of the step attempt running now, for the run's driver.
    pub(crate) fn step_span(&self) -> StepSpan {
        Arc::clone(&self.step_span)
    }

    /// The execution, for hooks.
    fn info(&self) -> RunInfo<'_> {
        RunInfo {
            workflow: &self.record.workflow,
            execution_id: &self.record.id,
            name: &self.who,
            worker: Some(&self.worker),
        }
    }

    /// Tells the hooks that the run begins, and why.
    pub(crate) fn started(&self) {
        self.env.observers.run_started(&self.info(), self.cause());
    }

    /// Why the run begins.
    fn cause(&self) -> RunCause {
        let record = &self.record;
        match record.status {
            _ if self.staged.is_some() => RunCause::Event,
            Status::Suspended if record.step.as_ref().is_some_and(|step| step.retry_at.is_some()) => RunCause::Retry,
            Status::Suspended if record.waiting_for.is_some() => RunCause::Event,
            Status::Suspended => RunCause::Timer,
            _ if record.version == 1 && record.snapshot.is_none() => RunCause::Started,
            _ => RunCause::Continued,
        }
    }

    /// How this run resumes: why, where the execution was suspended, for how long, and how
    /// late. Called once the inbox is loaded.
    fn resuming(&self) -> Resuming {
        let (record, now) = (&self.record, self.now());
        let cause = self.cause();
        let slept = now.saturating_since(record.updated_at);
        if record.status != Status::Suspended {
            return Resuming { cause, point: None, slept, late: None };
        }
        let retry = record.step.as_ref().filter(|step| step.retry_at.is_some());
        let point = match (retry, &record.waiting_for) {
            (Some(step), _) => Some(step.point.clone()),
            (None, Some(name)) => Some(name.clone()),
            // A timer's: its checkpoint is the last one. Any other suspension without a retry or
            // an event is a panic's, which suspended at no point.
            (None, None) => record
                .snapshot
                .as_ref()
                .filter(|snapshot| self.facts.point(&snapshot.point).is_some_and(|p| p.kind == PointKind::Sleep))
                .map(|snapshot| snapshot.point.clone()),
        };
        let arrived = match (&self.staged, &record.waiting_for) {
            (Some(_), _) => Some(now),
            (None, Some(name)) => self.inbox.iter().flatten().filter(|event| &event.name == name).map(|e| e.at).min(),
            (None, None) => None,
        };
        let due = match (arrived, retry.and_then(|step| step.retry_at).or(record.wake_at)) {
            (Some(arrived), Some(at)) => Some(arrived.min(at)),
            (arrived, at) => arrived.or(at),
        };
        let late = due.filter(|due| *due <= now).map(|due| now.saturating_since(due));
        Resuming { cause, point, slept, late }
    }

    /// The record as last committed.
    pub(crate) fn record(&self) -> &ExecutionRecord {
        &self.record
    }

    fn now(&self) -> Timestamp {
        self.env.clock.now()
    }

    fn event(&self, kind: EventKind, point: &PointFacts) -> HistoryEvent {
        HistoryEvent::new(self.now(), kind).with_point(point.name, point.file, point.line)
    }

    /// Before the run: loads the inbox if the execution resumes at an event wait, and records
    /// that it resumed.
    pub(crate) async fn prepare(&mut self) -> Result<(), StoreError> {
        let point = self.record.snapshot.as_ref().and_then(|s| self.facts.point(&s.point));
        let at_event = self.record.waiting_for.is_some()
            || point.is_some_and(|p| matches!(p.kind, PointKind::Event | PointKind::Child | PointKind::Map));
        if at_event && self.staged.is_none() {
            self.inbox = Some(self.env.store.inbox(&self.record.id).await?);
        }
        let since = human(self.now().saturating_since(self.record.updated_at));
        let retry = self.record.step.as_ref().filter(|step| step.retry_at.is_some());
        let detail = match self.record.status {
            Status::Suspended => match retry {
                Some(step) => format!("after {since}, to retry step {} (attempt {})", step.point, step.attempt + 1),
                None => format!("after {since}"),
            },
            // A run that stopped on purpose (a sender's run handing over after its event, a
            // worker shutting down) or died: this run goes on from what was committed.
            _ if self.record.version > 1 => match self.record.snapshot {
                Some(_) => format!("from its last checkpoint, committed {since} ago"),
                None => format!("from its start (last commit {since} ago)"),
            },
            _ => return Ok(()),
        };
        if self.record.status == Status::Suspended {
            self.wait_began = Some(self.record.updated_at);
        }
        self.resuming = Some(self.resuming());
        let mut resumed = HistoryEvent::new(self.now(), EventKind::Resumed).with_detail(detail);
        if let Some(point) = point {
            resumed = resumed.with_point(point.name, point.file, point.line);
        }
        self.next.events.push(resumed);
        Ok(())
    }

    /// Writes the draft through the group committer; on failure the run must stop.
    async fn flush(&mut self) -> Result<(), Pause> {
        let now = self.now();
        let mut commit = std::mem::replace(&mut self.next, Commit::on(&self.record, now));
        commit.now = now;
        let token = self.env.lease.token();
        for event in commit.events.iter_mut().filter(|event| event.worker.is_none()) {
            event.worker = Some(token.owner.clone());
        }
        commit.lease = Some(token);
        let logged: Vec<HistoryEvent> =
            commit.events.iter().map(|event| HistoryEvent { state: None, ..event.clone() }).collect();
        match self.env.committer.commit(commit).await {
            Ok(record) => {
                self.next = Commit::on(&record, now);
                self.record = record;
                for event in &logged {
                    self.observe(event);
                }
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "{}: stopping the run, its commit failed", self.who);
                self.report.failure = Some(error);
                Err(Pause::Interrupt)
            }
        }
    }

    /// Tells the hooks about committed `event`: [`Hooks::event`](super::Hooks::event), then the
    /// typed method it means. The end of a wait is reported inside a span `wait` of its own,
    /// with how long the wait lasted.
    fn observe(&mut self, event: &HistoryEvent) {
        let observers = Arc::clone(&self.env.observers);
        let point = event.point.as_deref();
        let kind = |point: Option<&str>| match point.and_then(|point| self.facts.point(point)).map(|p| p.kind) {
            Some(PointKind::Sleep) => WaitKind::Timer,
            _ => WaitKind::Event,
        };
        let ended = match event.kind {
            EventKind::WaitSucceeded => Some(WaitOutcome::Fired),
            EventKind::EventReceived => Some(WaitOutcome::Received),
            EventKind::EventTimedOut => Some(WaitOutcome::TimedOut),
            _ => None,
        };
        if let (Some(outcome), Some(point)) = (ended, point) {
            let waited = event.at.saturating_since(self.wait_began.take().unwrap_or(event.at));
            let end = WaitEnd { point, kind: kind(Some(point)), outcome, waited };
            let span = tracing::info_span!(
                "wait",
                otel.name = point,
                point,
                kind = ?end.kind,
                outcome = ?outcome,
                waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                worker = %self.worker,
            );
            span.in_scope(|| {
                observers.event(&self.info(), event);
                observers.wait_ended(&self.info(), &end);
            });
            return;
        }
        observers.event(&self.info(), event);
        match event.kind {
            EventKind::WaitStarted => {
                let Some(point) = point else { return };
                self.wait_began = Some(event.at);
                let start = WaitStart { point, kind: kind(Some(point)), until: self.wait_until.take() };
                observers.wait_started(&self.info(), &start);
            }
            EventKind::Suspended => {
                let record = &self.record;
                let reason = if record.step.as_ref().is_some_and(|step| step.retry_at.is_some()) {
                    SuspendReason::Retry
                } else if record.waiting_for.is_some() {
                    SuspendReason::Event
                } else if point.is_none() {
                    SuspendReason::Panicked
                } else {
                    SuspendReason::Timer
                };
                let suspension = Suspension { point, reason, until: record.wake_at };
                observers.suspended(&self.info(), &suspension);
            }
            EventKind::Resumed => {
                if let Some(resuming) = self.resuming.take() {
                    let resumption = Resumption {
                        cause: resuming.cause,
                        point: resuming.point.as_deref(),
                        slept: resuming.slept,
                        late: resuming.late,
                    };
                    observers.resumed(&self.info(), &resumption);
                }
            }
            _ => {}
        }
    }

    /// Ends the span of the running step attempt (if any) with its outcome and how long its
    /// body took.
    fn end_step_span(&self, error: Option<&str>, took: Duration) {
        let Some(span) = self.step_span.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
        span.record("outcome", if error.is_some() { "failed" } else { "succeeded" });
        span.record("took_ms", u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
        if let Some(error) = error {
            span.record("error", error);
        }
    }

    /// Reports an attempt that ended to the hooks and to its span.
    fn attempt_finished(&self, point: &PointFacts, attempt: u32, took: Duration, outcome: AttemptOutcome<'_>) {
        let error = match outcome {
            AttemptOutcome::Failed { error, .. } => Some(error),
            _ => None,
        };
        self.end_step_span(error, took);
        let attempt = Attempt { step: point.name, attempt, took, outcome };
        self.env.observers.attempt_finished(&self.info(), &attempt);
    }

    /// Records the history event of the checkpoint after `point`; `Some(staged)` unless the
    /// checkpoint is held back (a wait started), where `staged` says it consumes a staged event.
    fn record_checkpoint(&mut self, point: &'static PointFacts, state: &str) -> Option<bool> {
        let now = self.now();
        if let Some(Waiting::Batch(name)) = self.wait.take_if(|wait| matches!(wait, Waiting::Batch(_))) {
            // The branches' own events (a child started, a branch ended) carry the state.
            (self.next.wake_at, self.next.waiting_for) = (None, Some(name));
            let noted = |e: &HistoryEvent| matches!(e.kind, EventKind::BranchEnded | EventKind::ChildStarted);
            match self.next.events.iter_mut().rev().find(|e| noted(e)) {
                Some(last) => last.state = Some(state.to_owned()),
                None => {
                    let waiting = self.event(EventKind::WaitStarted, point).with_detail("for its children");
                    self.next.events.push(waiting.with_state(state));
                }
            }
            return None;
        }
        if let Some(wait) = self.wait.take() {
            let detail = match wait {
                Waiting::Timer(until) => {
                    self.wait_until = Some(until);
                    (self.next.wake_at, self.next.waiting_for) = (Some(until), None);
                    format!("on timer {} for {}", point.name, human(until.saturating_since(now)))
                }
                Waiting::Event(deadline) => {
                    self.wait_until = deadline;
                    (self.next.wake_at, self.next.waiting_for) = (deadline, Some(point.name.to_owned()));
                    match deadline {
                        Some(at) => {
                            format!("for event {} (timeout in {})", point.name, human(at.saturating_since(now)))
                        }
                        None => format!("for event {}", point.name),
                    }
                }
                // Taken above.
                Waiting::Batch(name) => {
                    (self.next.wake_at, self.next.waiting_for) = (None, Some(name));
                    "for its children".to_owned()
                }
                Waiting::Poll(until, polls, delay) => {
                    (self.next.wake_at, self.next.waiting_for) = (Some(until), None);
                    format!("poll {polls} found {} not done; next poll in {}", point.name, human(delay))
                }
                Waiting::Child(child) => {
                    (self.next.wake_at, self.next.waiting_for) = (None, Some(notice_name(&child)));
                    if let Some((workflow, id)) = self.spawned.take() {
                        let started =
                            self.event(EventKind::ChildStarted, point).with_detail(format!("{workflow} {id}"));
                        self.next.events.push(started);
                    }
                    format!("for child workflow {child}")
                }
            };
            let started = self.event(EventKind::WaitStarted, point).with_detail(detail).with_state(state);
            self.next.events.push(started);
            return None;
        }
        // A callback is awaited from the moment its token is stored: a system that completes it
        // while the submitter still runs is not turned away.
        let awaited = self.record.waiting_for.as_ref().filter(|name| name.starts_with("callback:"));
        let callback = match (&self.opened, self.polled.is_some()) {
            (_, true) => None,
            (Some(_), false) if point.kind == PointKind::Callback => self.callback_name.take(),
            (Some(_), false) => None,
            (None, false) => awaited.cloned().filter(|_| point.kind == PointKind::Callback),
        };
        (self.next.wake_at, self.next.waiting_for) = (None, callback);
        let (event, staged) = match (self.polled.take(), self.step.take()) {
            (Some(Polled::Inbox(seq)), _) => {
                self.next.consume.push(seq);
                // Consumed: a later wait of this run (a loop's next round) must not see it again.
                if let Some(inbox) = self.inbox.as_mut() {
                    inbox.retain(|event| event.seq != seq);
                }
                (self.event(EventKind::EventReceived, point).with_detail("from the inbox"), false)
            }
            (Some(Polled::Staged), _) => {
                (self.event(EventKind::EventReceived, point).with_detail("from its sender"), true)
            }
            (Some(Polled::TimedOut(_)), _) => {
                (self.event(EventKind::EventTimedOut, point).with_detail("timeout passed"), false)
            }
            (Some(Polled::Child(seq, ended, _)), _) => {
                self.next.consume.push(seq);
                if let Some(inbox) = self.inbox.as_mut() {
                    inbox.retain(|event| event.seq != seq);
                }
                (self.event(EventKind::ChildEnded, point).with_detail(ended), false)
            }
            (None, Some(step)) if step.failed => {
                // The step gave up; its `StepFailed` carries the state the workflow went on with.
                if let Some(failed) = self.next.events.iter_mut().rev().find(|e| e.kind == EventKind::StepFailed) {
                    failed.state = Some(state.to_owned());
                    return Some(false);
                }
                (self.event(EventKind::StepFailed, point).with_attempt(step.attempt), false)
            }
            (None, Some(step)) => (self.step_succeeded(point, &step), false),
            (None, None) => {
                let kind = match point.kind {
                    PointKind::Step => EventKind::StepSucceeded,
                    PointKind::Sleep => EventKind::WaitSucceeded,
                    PointKind::Event => EventKind::EventReceived,
                    PointKind::Child => EventKind::ChildEnded,
                    PointKind::Spawn => EventKind::ChildStarted,
                    PointKind::Callback => EventKind::EventReceived,
                    PointKind::Map => EventKind::StepSucceeded,
                    PointKind::Poll => EventKind::WaitSucceeded,
                };
                let mut event = self.event(kind, point);
                if let Some((workflow, id)) = self.spawned.take() {
                    event = event.with_detail(format!("{workflow} {id}"));
                }
                if let Some((kind, detail)) = self.opened.take() {
                    event = self.event(kind, point).with_detail(detail);
                }
                (event, false)
            }
        };
        self.next.events.push(event.with_state(state));
        Some(staged)
    }

    fn step_succeeded(&self, point: &PointFacts, step: &StepRun) -> HistoryEvent {
        let took = human(self.now().saturating_since(step.began));
        let detail = format!("attempt {}, took {took}", step.attempt);
        self.event(EventKind::StepSucceeded, point).with_attempt(step.attempt).with_detail(detail)
    }

    async fn checkpoint_async(&mut self, point: &'static PointFacts, state: String) -> Result<(), Pause> {
        let recorded = self.record_checkpoint(point, &state);
        let fingerprint = self.facts.fingerprint.to_owned();
        self.next.snapshot = Some(Snapshot { point: point.name.to_owned(), fingerprint, state });
        self.next.status = Status::Running;
        self.next.step = None;
        let Some(staged) = recorded else {
            // Held back until the suspension or the next checkpoint; an event wait needs the inbox.
            // A child started earlier may have ended already; one started with this wait has not.
            let at_child = point.kind == PointKind::Child && self.next.spawn.is_empty();
            if (point.kind == PointKind::Event || at_child) && self.inbox.is_none() && self.staged.is_none() {
                match self.env.store.inbox(&self.record.id).await {
                    Ok(inbox) => self.inbox = Some(inbox),
                    Err(error) => {
                        self.report.failure = Some(error);
                        return Err(Pause::Interrupt);
                    }
                }
            }
            return Ok(());
        };
        let stop = staged || self.env.stop.load(Ordering::Relaxed);
        self.next.release_lease = stop;
        self.flush().await?;
        if stop {
            self.report.delivered |= staged;
            self.report.released = true;
            return Err(Pause::Interrupt);
        }
        Ok(())
    }

    /// Before a step body: the run must still hold its lease (see [`HeldLease::confirm`]), or it
    /// stops where it stands, as a crash would, without running the body.
    async fn confirm_lease(&mut self) -> Result<(), Pause> {
        let env = &self.env;
        match env.lease.confirm(&*env.store, &self.record.id, &env.clock, env.lease_length).await {
            Ok(()) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, "{}: cannot confirm its lease before a step; stopping the run", self.who);
                self.report.failure = Some(error);
                Err(Pause::Interrupt)
            }
        }
    }

    /// An at-most-once attempt was found started: it counts as failed.
    fn interrupted_attempt(&mut self, point: &'static PointFacts, policy: &StepPolicy) -> Result<Gate, Pause> {
        let now = self.now();
        let failed = self.event(EventKind::StepFailed, point);
        let Some(record) = self.next.step.as_mut() else { return Ok(Gate::Run { attempt: 1 }) };
        record.started = false;
        let attempt = record.attempt;
        let failed = failed.with_attempt(attempt);
        let retry = self.env.retry(policy);
        let max = retry.max_attempts();
        let message = "the attempt was interrupted before it finished and may not run twice (at most once)";
        let delay = retry.delay_after(attempt, rand::random::<f64>());
        self.attempt_finished(
            point,
            attempt,
            Duration::ZERO,
            AttemptOutcome::Failed { error: message, retry_in: delay },
        );
        let Some(record) = self.next.step.as_mut() else { return Ok(Gate::Run { attempt: 1 }) };
        match delay {
            Some(delay) => {
                let at = now.saturating_add(delay);
                record.retry_at = Some(at);
                let detail = format!("attempt {attempt} of {max}: {message}; next attempt in {}", human(delay));
                self.next.events.push(failed.with_detail(detail));
                self.suspend = Some(Suspend::Retry(point, at));
                Err(Pause::Suspend)
            }
            None => {
                let detail = format!("attempt {attempt} of {max}: {message}; no attempt left");
                self.next.events.push(failed.with_detail(detail));
                let clock = Instant::now();
                self.step =
                    Some(StepRun { attempt, began: now, clock, failed: true, ended: true, policy: policy.clone() });
                Ok(Gate::Fail(StepError::retryable(message).with_step(point.name, attempt)))
            }
        }
    }

    async fn step_begin_async(&mut self, point: &'static PointFacts, policy: &StepPolicy) -> Result<Gate, Pause> {
        let now = self.now();
        let current = self.next.step.as_mut().filter(|step| step.point == point.name);
        let attempt = match current {
            Some(step) if step.retry_at.is_some_and(|at| at > now) => {
                let at = step.retry_at.unwrap_or(now);
                self.suspend = Some(Suspend::Retry(point, at));
                return Err(Pause::Suspend);
            }
            Some(step) if step.started => return self.interrupted_attempt(point, policy),
            Some(step) => {
                step.attempt += 1;
                step.retry_at = None;
                step.attempt
            }
            None => {
                self.next.step =
                    Some(StepRecord { point: point.name.to_owned(), attempt: 1, started: false, retry_at: None });
                1
            }
        };
        self.confirm_lease().await?;
        self.env.observers.attempt_starting(&self.info(), point.name, attempt);
        let clock = Instant::now();
        self.step = Some(StepRun { attempt, began: now, clock, failed: false, ended: false, policy: policy.clone() });
        if policy.semantics == Semantics::AtMostOncePerAttempt {
            if let Some(step) = self.next.step.as_mut() {
                step.started = true;
            }
            let started = self.event(EventKind::StepStarted, point).with_attempt(attempt);
            self.next.events.push(started);
            // The run is past any timer or wait it resumed from: what is committed now must say
            // it runs, or a crash before the next checkpoint would leave it suspended with
            // nothing to wake it.
            self.next.status = Status::Running;
            (self.next.wake_at, self.next.waiting_for) = (None, None);
            self.flush().await?;
        }
        let semantics = match policy.semantics {
            Semantics::AtLeastOncePerAttempt => "at_least_once",
            Semantics::AtMostOncePerAttempt => "at_most_once",
        };
        let span = tracing::info_span!(
            "step",
            otel.name = point.name,
            workflow = %self.record.workflow,
            execution_id = %self.record.id,
            step = point.name,
            attempt,
            semantics,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
            took_ms = tracing::field::Empty,
            file = point.file,
            line = point.line,
            keys = self.keys.0.as_deref(),
            business_key = self.keys.1.as_deref(),
            worker = %self.worker,
        );
        if !span.is_disabled() {
            *self.step_span.lock().unwrap_or_else(PoisonError::into_inner) = Some(span);
            // The driver enters the span when it polls the run: the body must begin on a poll
            // of its own, inside it.
            tokio::task::yield_now().await;
        }
        Ok(Gate::Run { attempt })
    }

    fn step_end_sync(
        &mut self,
        point: &'static PointFacts,
        policy: &StepPolicy,
        outcome: Result<(), StepError>,
    ) -> Result<Result<(), StepError>, Pause> {
        let now = self.now();
        let blank = StepRecord { point: point.name.to_owned(), attempt: 1, started: false, retry_at: None };
        let record = self.next.step.get_or_insert(blank);
        record.started = false;
        let attempt = record.attempt;
        let took = self.step.as_mut().map_or(Duration::ZERO, |step| {
            step.ended = true;
            step.clock.elapsed()
        });
        let error = match outcome {
            Ok(()) => {
                self.attempt_finished(point, attempt, took, AttemptOutcome::Succeeded);
                return Ok(Ok(()));
            }
            Err(error) => error,
        };
        let retry = self.env.retry(policy);
        let max = retry.max_attempts();
        let delay = if error.is_terminal() { None } else { retry.delay_after(attempt, rand::random::<f64>()) };
        let failed = AttemptOutcome::Failed { error: error.message(), retry_in: delay };
        self.attempt_finished(point, attempt, took, failed);
        let Some(record) = self.next.step.as_mut() else { return Ok(Err(error.with_step(point.name, attempt))) };
        let (detail, result) = match delay {
            Some(delay) => {
                let at = now.saturating_add(delay);
                record.retry_at = Some(at);
                self.suspend = Some(Suspend::Retry(point, at));
                (format!("next attempt in {}", human(delay)), Err(Pause::Suspend))
            }
            None => {
                let why = if error.is_terminal() { "terminal error, not retried" } else { "no attempt left" };
                (why.to_owned(), Ok(Err(error.clone().with_step(point.name, attempt))))
            }
        };
        if result.is_ok() {
            let clock = Instant::now();
            self.step = Some(StepRun { attempt, began: now, clock, failed: true, ended: true, policy: policy.clone() });
        }
        let detail = format!("attempt {attempt} of {max}: {}; {detail}", error.message());
        let failed = self.event(EventKind::StepFailed, point).with_attempt(attempt).with_detail(detail);
        self.next.events.push(failed.with_error_kind(error.kind()));
        result
    }

    /// The run returned: commits the result and releases the lease. Returns the final status,
    /// or `None` if the commit failed.
    pub(crate) async fn complete(&mut self, output: String, error: Option<String>) -> Option<Status> {
        // The step that ran last, if no checkpoint followed it: its value was returned, or its
        // error ended the execution (which then failed at that step).
        let last = self.step.take().zip(self.next.step.as_ref().and_then(|s| self.facts.point(&s.point)));
        if let Some((step, point)) = &last
            && !step.failed
        {
            let succeeded = self.step_succeeded(point, step);
            self.next.events.push(succeeded);
        }
        // A timeout or a child's end the workflow returned on (`wait!(..)?`, `call!(..)?`)
        // without a checkpoint after it.
        match self.polled.take() {
            Some(Polled::TimedOut(point)) => {
                let timed_out = self.event(EventKind::EventTimedOut, point).with_detail("timeout passed");
                self.next.events.push(timed_out);
            }
            Some(Polled::Child(seq, ended, point)) => {
                self.next.consume.push(seq);
                self.next.events.push(self.event(EventKind::ChildEnded, point).with_detail(ended));
            }
            _ => {}
        }
        let (status, event) = match &error {
            None => (Status::Succeeded, HistoryEvent::new(self.now(), EventKind::ExecutionSucceeded)),
            Some(message) => {
                let mut failed = HistoryEvent::new(self.now(), EventKind::ExecutionFailed).with_detail(message.clone());
                if let Some((step, point)) = last.filter(|(step, _)| step.failed) {
                    failed = failed.with_point(point.name, point.file, point.line).with_attempt(step.attempt);
                }
                (Status::Failed, failed)
            }
        };
        self.next.events.push(event);
        self.next.status = status;
        self.next.notify.extend(ended_notice(&self.record, returned(&output)));
        self.next.output = Some(output);
        (self.next.wake_at, self.next.step, self.next.waiting_for) = (None, None, None);
        self.next.release_lease = true;
        self.flush().await.ok().map(|()| status)
    }

    /// The run panicked (its future is gone): commits how it goes on, and releases the lease.
    /// Returns whether that commit succeeded.
    ///
    /// A panic in a step's body is a failed attempt, retried as the step's policy says; once no
    /// attempt is left the step is still tried again every `park`, since a panic cannot be handed
    /// to the workflow as an error. A panic anywhere else leaves the execution suspended until
    /// `park` has passed, to go on from its last checkpoint then.
    pub(crate) async fn panicked(&mut self, message: &str, park: impl FnOnce() -> Duration) -> bool {
        let now = self.now();
        let in_body = self.step.take_if(|step| !step.ended);
        let point = self.next.step.as_ref().and_then(|step| self.facts.point(&step.point));
        match (in_body, point) {
            (Some(step), Some(point)) => {
                let policy = step.policy.clone();
                self.step = Some(step);
                let error = StepError::retryable(format!("the step panicked: {message}"));
                if self.step_end_sync(point, &policy, Err(error)).is_ok() {
                    // No attempt left: the failure was recorded for the workflow to take, which it
                    // cannot; the step waits and is tried again instead.
                    self.step = None;
                    let park = park();
                    let at = now.saturating_add(park);
                    if let Some(record) = self.next.step.as_mut() {
                        record.retry_at = Some(at);
                    }
                    if let Some(failed) = self.next.events.iter_mut().rev().find(|e| e.kind == EventKind::StepFailed)
                        && let Some(detail) = failed.detail.as_mut()
                    {
                        let kept = detail.rsplit_once("; ").map_or(detail.as_str(), |(kept, _)| kept).to_owned();
                        *detail = format!(
                            "{kept}; no attempt left, but a panic cannot be handed to the workflow: trying \
                             again in {} until its code is fixed",
                            human(park)
                        );
                    }
                    self.suspend = Some(Suspend::Retry(point, at));
                }
            }
            _ => self.suspend = Some(Suspend::Panicked(message.to_owned(), now.saturating_add(park()))),
        }
        self.suspend().await
    }

    /// The run suspended: commits why and until when, and releases the lease. A run that only
    /// refused its staged event stores nothing at all.
    pub(crate) async fn suspend(&mut self) -> bool {
        if self.report.rejected.is_some() {
            self.release().await;
            return true;
        }
        let now = self.now();
        let (point, detail) = match self.suspend.take() {
            Some(Suspend::Timer(point, at)) => {
                (self.next.wake_at, self.next.waiting_for) = (Some(at), None);
                (Some(point), format!("timer {} fires in {}", point.name, human(at.saturating_since(now))))
            }
            Some(Suspend::Retry(point, at)) => {
                (self.next.wake_at, self.next.waiting_for) = (Some(at), None);
                (Some(point), format!("step {} retries in {}", point.name, human(at.saturating_since(now))))
            }
            Some(Suspend::Event(point, deadline)) => {
                (self.next.wake_at, self.next.waiting_for) = (deadline, Some(point.name.to_owned()));
                let timeout = deadline.map(|at| format!(" (timeout in {})", human(at.saturating_since(now))));
                (Some(point), format!("waiting for event {}{}", point.name, timeout.unwrap_or_default()))
            }
            Some(Suspend::Child(point, child)) => {
                (self.next.wake_at, self.next.waiting_for) = (None, Some(notice_name(&child)));
                (Some(point), format!("waiting for child workflow {child}"))
            }
            Some(Suspend::Batch(point, name)) => {
                (self.next.wake_at, self.next.waiting_for) = (None, Some(name));
                (Some(point), format!("{} waiting for its child workflows", point.name))
            }
            Some(Suspend::Callback(point, name, wake)) => {
                (self.next.wake_at, self.next.waiting_for) = (wake, Some(name));
                let until = wake.map(|at| format!(" (times out in {})", human(at.saturating_since(now))));
                (Some(point), format!("waiting for callback {}{}", point.name, until.unwrap_or_default()))
            }
            Some(Suspend::Panicked(message, at)) => {
                (self.next.wake_at, self.next.waiting_for) = (Some(at), None);
                let again = human(at.saturating_since(now));
                (None, format!("the run panicked: {message}; trying again in {again} from the last checkpoint"))
            }
            None => (None, "waiting".to_owned()),
        };
        let mut event = HistoryEvent::new(now, EventKind::Suspended).with_detail(detail);
        if let Some(point) = point {
            event = event.with_point(point.name, point.file, point.line);
        }
        self.next.events.push(event);
        self.next.status = Status::Suspended;
        self.next.release_lease = true;
        self.flush().await.is_ok()
    }

    /// Gives the lease up (best effort: after a failed commit it may be gone already).
    pub(crate) async fn release(&self) {
        if let Err(error) = self.env.store.release_lease(&self.record.id, &self.env.lease.token()).await {
            tracing::debug!(%error, "could not release the lease on {}", self.record.id);
        }
    }
}

impl<S: Store> Host for RunHost<S> {
    fn checkpoint<'a>(&'a mut self, point: &'static PointFacts, state: String) -> BoxFuture<'a, Result<(), Pause>> {
        Box::pin(self.checkpoint_async(point, state))
    }

    fn step_begin<'a>(
        &'a mut self,
        point: &'static PointFacts,
        policy: &'a StepPolicy,
    ) -> BoxFuture<'a, Result<Gate, Pause>> {
        Box::pin(self.step_begin_async(point, policy))
    }

    fn step_end<'a>(
        &'a mut self,
        point: &'static PointFacts,
        policy: &'a StepPolicy,
        outcome: Result<(), StepError>,
    ) -> BoxFuture<'a, Result<Result<(), StepError>, Pause>> {
        let spanned = self.step_span.lock().unwrap_or_else(PoisonError::into_inner).is_some();
        let result = self.step_end_sync(point, policy, outcome);
        Box::pin(async move {
            if spanned {
                // What follows the step runs on a poll of its own, outside the step's span.
                tokio::task::yield_now().await;
            }
            result
        })
    }

    fn sleep_start(&mut self, _point: &'static PointFacts, duration: Duration) -> Timestamp {
        let until = self.now().saturating_add(duration);
        self.wait = Some(Waiting::Timer(until));
        until
    }

    fn sleep_due(&mut self, point: &'static PointFacts, wake_at: Timestamp) -> bool {
        let now = self.now();
        let woken = std::mem::take(&mut self.woken) && self.record.wake_at.is_some_and(|at| at < wake_at);
        // A step record means a step after this timer began, so the timer fired (early, if an
        // operator woke it: its deadline in the state is still ahead).
        let fired = self.record.step.is_some();
        if now < wake_at && !woken && !fired {
            self.suspend = Some(Suspend::Timer(point, wake_at));
            return false;
        }
        // A step record means a commit (a retry delay, an at-most-once start) already followed
        // this timer, and with it its WaitSucceeded: record it once.
        if self.record.step.is_none() {
            let detail = if now < wake_at {
                format!("woken {} before it was due", human(wake_at.saturating_since(now)))
            } else {
                format!("{} after it was due", human(now.saturating_since(wake_at)))
            };
            let fired = self.event(EventKind::WaitSucceeded, point).with_detail(detail);
            self.next.events.push(fired);
        }
        self.next.wake_at = None;
        true
    }

    fn event_start(&mut self, _point: &'static PointFacts, timeout: Option<Duration>) -> Option<Timestamp> {
        let deadline = timeout.map(|timeout| self.now().saturating_add(timeout));
        self.wait = Some(Waiting::Event(deadline));
        deadline
    }

    fn event_poll(&mut self, point: &'static PointFacts, deadline: Option<Timestamp>) -> EventPoll {
        self.poll_deadline = deadline;
        if let Some(staged) = self.staged.take_if(|staged| staged.name == point.name) {
            self.polled = Some(Polled::Staged);
            return EventPoll::Received(staged.payload);
        }
        // The deadline decides: an event that arrived at or after it is not this wait's.
        let before_deadline = |at: Timestamp| deadline.is_none_or(|deadline| at < deadline);
        let inbox = self.inbox.iter().flatten();
        let mut candidates = inbox.filter(|e| e.name == point.name && before_deadline(e.at));
        if let Some(event) = candidates.find(|e| !self.refused.contains(&e.seq)) {
            self.polled = Some(Polled::Inbox(event.seq));
            return EventPoll::Received(event.payload.clone());
        }
        if deadline.is_some_and(|at| self.now() >= at) {
            self.polled = Some(Polled::TimedOut(point));
            return EventPoll::TimedOut;
        }
        self.suspend = Some(Suspend::Event(point, deadline));
        EventPoll::Pending
    }

    fn child_start(
        &mut self,
        point: &'static PointFacts,
        workflow: &'static str,
        key: Option<String>,
        input: String,
        keys: Vec<(String, String)>,
    ) -> String {
        let id = child_id(&self.record.id, point.name, key.as_deref());
        let new =
            NewExecution::new(id.clone(), workflow, input, self.now()).child_of(self.record.id.clone()).with_keys(keys);
        self.next.spawn.push(new);
        self.spawned = Some((workflow, id.clone()));
        if point.kind == PointKind::Child {
            self.wait = Some(Waiting::Child(id.clone()));
        }
        id
    }

    fn callback_start(
        &mut self,
        _point: &'static PointFacts,
        timeout: Option<Duration>,
        heartbeat: Option<Duration>,
    ) -> CallbackWait {
        let now = self.now();
        let deadline = timeout.map(|timeout| now.saturating_add(timeout));
        let mut detail = "for a callback".to_owned();
        if let Some(timeout) = timeout {
            detail.push_str(&format!(" (timeout in {})", human(timeout)));
        }
        if let Some(heartbeat) = heartbeat {
            detail.push_str(&format!(", a heartbeat at least every {}", human(heartbeat)));
        }
        self.opened = Some((EventKind::WaitStarted, detail));
        let token = callback::mint(&self.record.id);
        self.callback_name = Some(callback::completion_name(&token));
        CallbackWait { token, created: now, deadline, heartbeat, submit_failed: None }
    }

    fn callback_poll(&mut self, point: &'static PointFacts, wait: &CallbackWait) -> CallbackPoll {
        let name = callback::completion_name(&wait.token);
        let beat_name = callback::heartbeat_name(&wait.token);
        let now = self.now();
        let beats: Vec<(u64, Timestamp)> =
            self.inbox.iter().flatten().filter(|e| e.name == beat_name).map(|e| (e.seq, e.at)).collect();
        // The heartbeat window as of time `at`: from the last beat before it.
        let window_end = |at: Timestamp| {
            let last = beats.iter().map(|&(_, beat)| beat).filter(|&beat| beat <= at).max();
            wait.heartbeat.map(|window| last.unwrap_or(wait.created).max(wait.created).saturating_add(window))
        };
        // The deadlines decide, not which worker gets there first.
        let in_time = |at: Timestamp| {
            wait.deadline.is_none_or(|deadline| at < deadline) && window_end(at).is_none_or(|end| at < end)
        };
        let beat_end = window_end(now);
        let wake = match (wait.deadline, beat_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let resume = Suspend::Callback(point, name.clone(), wake);
        // Heartbeats are consumed with whatever ends the wait.
        let consume_beats = |host: &mut Self| host.next.consume.extend(beats.iter().map(|&(seq, _)| seq));
        if in_time(now)
            && let Some(staged) = self.staged.take_if(|staged| staged.name == name)
        {
            consume_beats(self);
            self.polled = Some(Polled::Staged);
            self.on_rejected = Some(resume);
            return CallbackPoll::Received(staged.payload);
        }
        let inbox = self.inbox.iter().flatten();
        let mut candidates = inbox.filter(|e| e.name == name && in_time(e.at));
        if let Some(event) = candidates.find(|e| !self.refused.contains(&e.seq)) {
            let (seq, payload) = (event.seq, event.payload.clone());
            consume_beats(self);
            self.polled = Some(Polled::Inbox(seq));
            self.on_rejected = Some(resume);
            return CallbackPoll::Received(payload);
        }
        if wait.deadline.is_some_and(|deadline| now >= deadline) {
            consume_beats(self);
            self.polled = Some(Polled::TimedOut(point));
            return CallbackPoll::TimedOut;
        }
        if beat_end.is_some_and(|end| now >= end) {
            consume_beats(self);
            self.polled = Some(Polled::TimedOut(point));
            return CallbackPoll::HeartbeatTimedOut;
        }
        self.suspend = Some(resume);
        CallbackPoll::Pending
    }

    fn poll_scheduled(&mut self, _point: &'static PointFacts, polls: u32, delay: Duration) -> Timestamp {
        let at = self.now().saturating_add(delay);
        self.wait = Some(Waiting::Poll(at, polls, delay));
        at
    }

    fn poll_due(&mut self, point: &'static PointFacts, at: Timestamp) -> bool {
        if self.now() < at {
            self.suspend = Some(Suspend::Timer(point, at));
            return false;
        }
        self.next.wake_at = None;
        true
    }

    fn batch_start(&mut self, _point: &'static PointFacts, _branches: usize, detail: String) {
        self.opened = Some((EventKind::StepStarted, detail));
    }

    fn branch_results(&mut self, point: &'static PointFacts) -> Vec<(usize, String)> {
        let prefix = branch_prefix(point);
        let inbox = self.inbox.iter().flatten();
        let results = inbox.filter_map(|event| Some((event.name.strip_prefix(&prefix)?.parse().ok()?, event)));
        results.map(|(index, event)| (index, event.payload.clone())).collect()
    }

    fn branches_end<'a>(
        &'a mut self,
        point: &'static PointFacts,
        ended: Vec<(usize, String, String)>,
    ) -> BoxFuture<'a, Result<(), Pause>> {
        Box::pin(async move {
            // An outcome waits in the execution's own inbox until the batch is decided: stored
            // apart from the state, so a branch's commit does not rewrite the others'. No key:
            // the commit's version check already makes it apply once.
            for (index, outcome, words) in ended {
                let name = format!("{}{index}", branch_prefix(point));
                self.next.notify.push(Notice { to: self.record.id.clone(), key: None, name, payload: outcome });
                self.next.events.push(self.event(EventKind::BranchEnded, point).with_detail(words));
            }
            self.flush().await
        })
    }

    fn batch_end<'a>(&'a mut self, point: &'static PointFacts) -> BoxFuture<'a, Result<(), Pause>> {
        Box::pin(async move {
            let inbox = match self.env.store.inbox(&self.record.id).await {
                Ok(inbox) => inbox,
                Err(error) => {
                    self.report.failure = Some(error);
                    return Err(Pause::Interrupt);
                }
            };
            let prefix = branch_prefix(point);
            self.next.consume.extend(inbox.iter().filter(|e| e.name.starts_with(&prefix)).map(|e| e.seq));
            self.inbox = Some(inbox.into_iter().filter(|e| !e.name.starts_with(&prefix)).collect());
            Ok(())
        })
    }

    fn batch_child_start(
        &mut self,
        point: &'static PointFacts,
        workflow: &'static str,
        index: usize,
        input: String,
        keys: Vec<(String, String)>,
    ) {
        let id = child_id(&self.record.id, point.name, Some(&index.to_string()));
        let new = NewExecution::new(id.clone(), workflow, input, self.now())
            .child_of(self.record.id.clone())
            .reported_as(batch_event(point))
            .with_keys(keys);
        self.next.spawn.push(new);
        self.next.events.push(self.event(EventKind::ChildStarted, point).with_detail(format!("{workflow} {id}")));
        self.wait = Some(Waiting::Batch(batch_event(point)));
    }

    fn batch_children_ended(&mut self, point: &'static PointFacts) -> Vec<(String, String)> {
        let name = batch_event(point);
        let Some(inbox) = self.inbox.as_mut() else { return Vec::new() };
        let (ended, kept): (Vec<InboxEvent>, Vec<InboxEvent>) = inbox.drain(..).partition(|e| e.name == name);
        *inbox = kept;
        self.next.consume.extend(ended.iter().map(|e| e.seq));
        let children = ended.into_iter().filter_map(|event| {
            let notice: crate::child::ChildNotice<serde_json::Value> = serde_json::from_str(&event.payload).ok()?;
            Some((notice.child, event.payload))
        });
        children.collect()
    }

    fn batch_note(&mut self, point: &'static PointFacts, words: String) {
        self.next.events.push(self.event(EventKind::BranchEnded, point).with_detail(words));
        self.wait = Some(Waiting::Batch(batch_event(point)));
    }

    fn batch_wait(&mut self, point: &'static PointFacts) {
        self.suspend = Some(Suspend::Batch(point, batch_event(point)));
    }

    fn child_wait(&mut self, _point: &'static PointFacts, child: &str) {
        self.wait = Some(Waiting::Child(child.to_owned()));
    }

    fn child_poll(&mut self, point: &'static PointFacts, child: &str) -> EventPoll {
        let name = notice_name(child);
        if let Some(event) = self.inbox.iter().flatten().find(|event| event.name == name) {
            let ended = format!("{child} {}", ended_words(&event.payload));
            self.polled = Some(Polled::Child(event.seq, ended, point));
            return EventPoll::Received(event.payload.clone());
        }
        self.suspend = Some(Suspend::Child(point, child.to_owned()));
        EventPoll::Pending
    }

    fn event_rejected(&mut self, point: &'static PointFacts, error: String) {
        self.suspend = Some(self.on_rejected.take().unwrap_or(Suspend::Event(point, self.poll_deadline)));
        match self.polled.take() {
            Some(Polled::Staged) => self.report.rejected = Some(error),
            Some(Polled::Inbox(seq)) => {
                self.refused.push(seq);
                self.next.consume.push(seq);
                let rejected = self.event(EventKind::EventRejected, point).with_detail(error);
                self.next.events.push(rejected);
            }
            Some(Polled::TimedOut(_) | Polled::Child(..)) | None => {}
        }
    }
}
