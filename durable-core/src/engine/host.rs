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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::commit::Committer;
use super::hooks::{Observers, RunCause, RunInfo};
use super::lease::HeldLease;
use super::trace::{Subject, human};
use crate::host::{BoxFuture, EventPoll, Gate, Host, Pause};
use crate::step::{Retry, Semantics, StepError, StepPolicy};
use crate::store::{
    Commit, EventKind, ExecutionRecord, HistoryEvent, InboxEvent, Snapshot, Status, StepRecord, Store, StoreError,
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
}

/// What the last event poll found, until the next checkpoint records it.
enum Polled {
    Inbox(u64),
    Staged,
    /// The wait at this point timed out.
    TimedOut(&'static PointFacts),
}

/// Why the run is about to suspend.
enum Suspend {
    Timer(&'static PointFacts, Timestamp),
    Retry(&'static PointFacts, Timestamp),
    Event(&'static PointFacts, Option<Timestamp>),
    /// The workflow's own code panicked: try again from the last checkpoint at this time.
    Panicked(String, Timestamp),
}

/// The step whose body ran since the last checkpoint.
struct StepRun {
    attempt: u32,
    began: Timestamp,
    failed: bool,
    /// The body has returned (a panic before that was the body's).
    ended: bool,
    policy: StepPolicy,
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
    /// How logs name the execution.
    who: String,
    /// The worker running it.
    worker: String,
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
        let who = Subject::new(&record.workflow, &record.id, Some(facts), &record.input).name();
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
            who,
            worker,
            woken,
            report: Report::default(),
        }
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
        let record = &self.record;
        let cause = match record.status {
            _ if self.staged.is_some() => RunCause::Event,
            Status::Suspended if record.step.as_ref().is_some_and(|step| step.retry_at.is_some()) => RunCause::Retry,
            Status::Suspended if record.waiting_for.is_some() => RunCause::Event,
            Status::Suspended => RunCause::Timer,
            _ if record.version == 1 && record.snapshot.is_none() => RunCause::Started,
            _ => RunCause::Continued,
        };
        self.env.observers.run_started(&self.info(), cause);
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
        let at_event = self.record.waiting_for.is_some() || point.is_some_and(|p| p.kind == PointKind::Event);
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
                for event in &logged {
                    self.env.observers.event(&self.info(), event);
                }
                self.next = Commit::on(&record, now);
                self.record = record;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "{}: stopping the run, its commit failed", self.who);
                self.report.failure = Some(error);
                Err(Pause::Interrupt)
            }
        }
    }

    /// Records the history event of the checkpoint after `point`; `Some(staged)` unless the
    /// checkpoint is held back (a wait started), where `staged` says it consumes a staged event.
    fn record_checkpoint(&mut self, point: &'static PointFacts, state: &str) -> Option<bool> {
        let now = self.now();
        if let Some(wait) = self.wait.take() {
            let detail = match wait {
                Waiting::Timer(until) => {
                    (self.next.wake_at, self.next.waiting_for) = (Some(until), None);
                    format!("on timer {} for {}", point.name, human(until.saturating_since(now)))
                }
                Waiting::Event(deadline) => {
                    (self.next.wake_at, self.next.waiting_for) = (deadline, Some(point.name.to_owned()));
                    match deadline {
                        Some(at) => {
                            format!("for event {} (timeout in {})", point.name, human(at.saturating_since(now)))
                        }
                        None => format!("for event {}", point.name),
                    }
                }
            };
            let started = self.event(EventKind::WaitStarted, point).with_detail(detail).with_state(state);
            self.next.events.push(started);
            return None;
        }
        (self.next.wake_at, self.next.waiting_for) = (None, None);
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
                };
                (self.event(kind, point), false)
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
            if point.kind == PointKind::Event && self.inbox.is_none() && self.staged.is_none() {
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
        match retry.delay_after(attempt, rand::random::<f64>()) {
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
                self.step = Some(StepRun { attempt, began: now, failed: true, ended: true, policy: policy.clone() });
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
        self.step = Some(StepRun { attempt, began: now, failed: false, ended: false, policy: policy.clone() });
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
        if let Some(step) = self.step.as_mut() {
            step.ended = true;
        }
        let error = match outcome {
            Ok(()) => return Ok(Ok(())),
            Err(error) => error,
        };
        let retry = self.env.retry(policy);
        let max = retry.max_attempts();
        let delay = if error.is_terminal() { None } else { retry.delay_after(attempt, rand::random::<f64>()) };
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
            self.step = Some(StepRun { attempt, began: now, failed: true, ended: true, policy: policy.clone() });
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
        // A timeout the workflow returned on (`wait!(..)?`) without a checkpoint after it.
        if let Some(Polled::TimedOut(point)) = self.polled.take() {
            let timed_out = self.event(EventKind::EventTimedOut, point).with_detail("timeout passed");
            self.next.events.push(timed_out);
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
        let result = self.step_end_sync(point, policy, outcome);
        Box::pin(async move { result })
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

    fn event_rejected(&mut self, point: &'static PointFacts, error: String) {
        self.suspend = Some(Suspend::Event(point, self.poll_deadline));
        match self.polled.take() {
            Some(Polled::Staged) => self.report.rejected = Some(error),
            Some(Polled::Inbox(seq)) => {
                self.refused.push(seq);
                self.next.consume.push(seq);
                let rejected = self.event(EventKind::EventRejected, point).with_detail(error);
                self.next.events.push(rejected);
            }
            Some(Polled::TimedOut(_)) | None => {}
        }
    }
}
