//! What a store keeps: execution records, history events, inbox events, and the inputs of
//! [`Store`](super::Store) methods.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::ParseNameError;
use crate::facts::FactsRecord;
use crate::time::Timestamp;
use crate::workflow::WorkflowFacts;

/// The id of an execution, chosen by whoever starts it (an order id, say).
pub type ExecutionId = String;

/// Where an execution is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Runnable now, or being run by the worker that holds its lease.
    Running,
    /// Waiting for a timer, a retry delay or an event (see `wake_at` and `waiting_for`).
    Suspended,
    /// Finished; its function returned `Ok`.
    Succeeded,
    /// Finished; its function returned `Err`, or it could not go on.
    Failed,
    /// Finished; it was cancelled.
    Cancelled,
}

impl Status {
    /// Every status, in declaration order.
    pub const ALL: [Status; 5] =
        [Status::Running, Status::Suspended, Status::Succeeded, Status::Failed, Status::Cancelled];

    /// Whether the execution has finished for good: it never runs or changes again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }

    /// The stored name: `running`, `suspended`, `succeeded`, `failed` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Suspended => "suspended",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = ParseNameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
            .ok_or_else(|| ParseNameError::new("status", name))
    }
}

/// What a history event records; the vocabulary of AWS durable executions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// The execution was created, with its input.
    ExecutionStarted,
    /// A step's attempt started.
    StepStarted,
    /// A step's attempt succeeded; its result was checkpointed.
    StepSucceeded,
    /// A step's attempt failed (with the attempt and the delay before the next one, if any).
    StepFailed,
    /// A durable timer started.
    WaitStarted,
    /// A durable timer fired.
    WaitSucceeded,
    /// An awaited event was received and consumed.
    EventReceived,
    /// An event was refused (its payload did not decode); the execution keeps waiting.
    EventRejected,
    /// An event wait's timeout passed before the event arrived.
    EventTimedOut,
    /// The execution left memory to wait.
    Suspended,
    /// The execution was picked up again (with how long it slept).
    Resumed,
    /// The function returned `Ok`.
    ExecutionSucceeded,
    /// The function returned `Err`, or the execution could not go on.
    ExecutionFailed,
    /// The execution was cancelled (the detail says who asked and why).
    ExecutionCancelled,
    /// A child workflow was started (with its workflow and id).
    ChildStarted,
    /// A child workflow the execution waited for ended (with its id and how it ended).
    ChildEnded,
    /// A branch of a `map!`/`parallel!` ended (with its index and outcome).
    BranchEnded,
    /// A failed or cancelled execution was run again from a checkpoint (the detail says who
    /// asked and why; `point` and `state` are the checkpoint it goes on from).
    ExecutionRedriven,
    /// A suspended execution was woken before its timer or retry delay was due (the detail says
    /// who asked and why).
    ExecutionWoken,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 19] = [
        EventKind::ExecutionStarted,
        EventKind::StepStarted,
        EventKind::StepSucceeded,
        EventKind::StepFailed,
        EventKind::WaitStarted,
        EventKind::WaitSucceeded,
        EventKind::EventReceived,
        EventKind::EventRejected,
        EventKind::EventTimedOut,
        EventKind::Suspended,
        EventKind::Resumed,
        EventKind::ExecutionSucceeded,
        EventKind::ExecutionFailed,
        EventKind::ExecutionCancelled,
        EventKind::ChildStarted,
        EventKind::ChildEnded,
        EventKind::BranchEnded,
        EventKind::ExecutionRedriven,
        EventKind::ExecutionWoken,
    ];

    /// The stored name, the variant's name (`StepSucceeded`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ExecutionStarted => "ExecutionStarted",
            EventKind::StepStarted => "StepStarted",
            EventKind::StepSucceeded => "StepSucceeded",
            EventKind::StepFailed => "StepFailed",
            EventKind::WaitStarted => "WaitStarted",
            EventKind::WaitSucceeded => "WaitSucceeded",
            EventKind::EventReceived => "EventReceived",
            EventKind::EventRejected => "EventRejected",
            EventKind::EventTimedOut => "EventTimedOut",
            EventKind::Suspended => "Suspended",
            EventKind::Resumed => "Resumed",
            EventKind::ExecutionSucceeded => "ExecutionSucceeded",
            EventKind::ExecutionFailed => "ExecutionFailed",
            EventKind::ExecutionCancelled => "ExecutionCancelled",
            EventKind::ChildStarted => "ChildStarted",
            EventKind::ChildEnded => "ChildEnded",
            EventKind::BranchEnded => "BranchEnded",
            EventKind::ExecutionRedriven => "ExecutionRedriven",
            EventKind::ExecutionWoken => "ExecutionWoken",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = ParseNameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| ParseNameError::new("event kind", name))
    }
}

/// The last checkpoint of an execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The point it was written after.
    pub point: String,
    /// The layout fingerprint of the workflow build that wrote it.
    pub fingerprint: String,
    /// The state, as JSON.
    pub state: String,
}

/// The attempts of the step in progress since the last checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's point name.
    pub point: String,
    /// The current (or last failed) attempt, from 1.
    pub attempt: u32,
    /// An at-most-once attempt that started and has not finished.
    pub started: bool,
    /// When the next attempt is due, if one was scheduled.
    pub retry_at: Option<Timestamp>,
}

/// A worker's claim on an execution: nobody else runs it until `until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The worker holding the lease.
    pub owner: String,
    /// Which claim of the execution this is: every claim takes the next number (1, 2, ...),
    /// whoever makes it, and the number never goes back. A lease token names a claim by it.
    pub epoch: u64,
    /// When the lease expires (it is valid while `now < until`).
    pub until: Timestamp,
}

impl Lease {
    /// The token that names this claim in commits, renewals and releases.
    pub fn token(&self) -> LeaseToken {
        LeaseToken { owner: self.owner.clone(), epoch: self.epoch }
    }
}

/// Names one claim of an execution: the worker that made it and its [`Lease::epoch`].
///
/// A commit, a renewal or a release that carries a token applies only while the execution is
/// still leased under that very claim. Once anyone (the same worker included) has claimed the
/// execution again, an older token is refused: a run that lost its lease is fenced out even if
/// its worker's name is on the new lease.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseToken {
    /// The worker that made the claim.
    pub owner: String,
    /// The claim's epoch.
    pub epoch: u64,
}

impl LeaseToken {
    /// Whether `lease` is the claim this token names.
    pub fn holds(&self, lease: Option<&Lease>) -> bool {
        lease.is_some_and(|lease| lease.owner == self.owner && lease.epoch == self.epoch)
    }
}

/// The stored state of one execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// The execution's id.
    pub id: ExecutionId,
    /// The name of its workflow.
    pub workflow: String,
    /// Where it is in its life.
    pub status: Status,
    /// Its input, as JSON.
    pub input: String,
    /// Its last checkpoint; `None` before the first.
    pub snapshot: Option<Snapshot>,
    /// Once finished, its result: the JSON of the function's `Result<T, E>`.
    pub output: Option<String>,
    /// When a suspended execution is due again (a timer, a retry, an event's timeout).
    pub wake_at: Option<Timestamp>,
    /// The step in progress since the last checkpoint, if any.
    pub step: Option<StepRecord>,
    /// The name of the event a suspended execution waits for, if any.
    pub waiting_for: Option<String>,
    /// Starts at 1 and grows by one with every commit.
    pub version: u64,
    /// The worker running it, if any.
    pub lease: Option<Lease>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last committed.
    pub updated_at: Timestamp,
    /// The execution that started this one as a child workflow, which is told when it ends.
    pub parent: Option<ExecutionId>,
    /// The name of the event that tells the parent this child ended, when it is not the
    /// usual `child:<id>` (the children of a `map!` share one, so that any of them wakes it).
    pub parent_event: Option<String>,
}

/// One entry of an execution's history.
///
/// To append events, put them in [`Commit::events`] (built with [`HistoryEvent::new`] and the
/// `with_*` methods): the store assigns `seq` and ignores the value passed in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// Its position in the execution's history: 1, 2, 3, ... assigned by the store.
    pub seq: u64,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// The name of the point it concerns, if any.
    pub point: Option<String>,
    /// The source file of that point.
    pub file: Option<String>,
    /// The source line of that point.
    pub line: Option<u32>,
    /// The step attempt it concerns, from 1.
    pub attempt: Option<u32>,
    /// A human-readable detail: an error message, a delay, how long the execution slept.
    pub detail: Option<String>,
    /// The JSON state stored at a checkpoint (for `ExecutionStarted`, the input).
    pub state: Option<String>,
    /// For a failure, the kind of error ([`StepError::kind`](crate::StepError::kind)).
    pub error_kind: Option<String>,
    /// The worker whose run wrote it (its lease owner name), if a worker's run did.
    pub worker: Option<String>,
}

impl HistoryEvent {
    /// An event of `kind` at `at`, with no other detail (and `seq` 0, to be assigned).
    pub fn new(at: Timestamp, kind: EventKind) -> Self {
        HistoryEvent {
            seq: 0,
            at,
            kind,
            point: None,
            file: None,
            line: None,
            attempt: None,
            detail: None,
            state: None,
            error_kind: None,
            worker: None,
        }
    }

    /// This event, about the point `name` at `file:line`.
    pub fn with_point(mut self, name: impl Into<String>, file: impl Into<String>, line: u32) -> Self {
        self.point = Some(name.into());
        self.file = Some(file.into());
        self.line = Some(line);
        self
    }

    /// This event, about attempt `attempt`.
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt);
        self
    }

    /// This event, with a human-readable detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// This event, about an error of kind `kind` (if it has one).
    pub fn with_error_kind(mut self, kind: Option<&str>) -> Self {
        self.error_kind = kind.map(str::to_owned);
        self
    }

    /// This event, written by the run of worker `worker`.
    pub fn with_worker(mut self, worker: impl Into<String>) -> Self {
        self.worker = Some(worker.into());
        self
    }

    /// This event, with the JSON state of a checkpoint.
    pub fn with_state(mut self, state: impl Into<String>) -> Self {
        self.state = Some(state.into());
        self
    }
}

/// An external event delivered to an execution and not yet consumed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxEvent {
    /// Its position in the execution's inbox: 1-based, increasing, never reused.
    pub seq: u64,
    /// The event's name (what a `wait!` waits for).
    pub name: String,
    /// Its payload, as JSON.
    pub payload: String,
    /// When it was delivered.
    pub at: Timestamp,
}

/// What [`Store::send_keyed_event`](super::Store::send_keyed_event) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// The event was appended to the inbox with this seq.
    New(u64),
    /// An event with the same idempotency key was sent before, with this seq; nothing changed.
    Duplicate(u64),
}

/// What [`Store::create`](super::Store::create) needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewExecution {
    /// The execution's id.
    pub id: ExecutionId,
    /// The name of its workflow.
    pub workflow: String,
    /// Its input, as JSON.
    pub input: String,
    /// The creation time.
    pub now: Timestamp,
    /// The execution starting this one as its child, if any.
    pub parent: Option<ExecutionId>,
    /// The event its end is reported to the parent as, if not the usual one; see
    /// [`ExecutionRecord::parent_event`].
    pub parent_event: Option<String>,
    /// Its business keys, `(name, value)`: what [`ListFilter::key`] finds it by.
    pub keys: Vec<(String, String)>,
}

impl NewExecution {
    /// An execution `id` of `workflow` with `input` (JSON), created at `now`.
    pub fn new(
        id: impl Into<ExecutionId>,
        workflow: impl Into<String>,
        input: impl Into<String>,
        now: Timestamp,
    ) -> Self {
        NewExecution {
            id: id.into(),
            workflow: workflow.into(),
            input: input.into(),
            now,
            parent: None,
            parent_event: None,
            keys: Vec::new(),
        }
    }

    /// This execution, started as a child of execution `parent`.
    pub fn child_of(mut self, parent: impl Into<ExecutionId>) -> Self {
        self.parent = Some(parent.into());
        self
    }

    /// This execution, found by these business keys.
    pub fn with_keys(mut self, keys: Vec<(String, String)>) -> Self {
        self.keys = keys;
        self
    }

    /// This execution's end, reported to its parent as event `name`.
    pub fn reported_as(mut self, name: impl Into<String>) -> Self {
        self.parent_event = Some(name.into());
        self
    }
}

/// An event a [`Commit`] delivers to another execution's inbox in its own transaction, as by
/// [`Store::send_keyed_event`](super::Store::send_keyed_event): how a child workflow that ends
/// tells its parent, so that the end and the news of it are written together or not at all.
///
/// A notice to an execution that does not exist or has finished is dropped: nobody waits for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The execution to deliver to.
    pub to: ExecutionId,
    /// The event's name.
    pub name: String,
    /// Its payload, as JSON.
    pub payload: String,
    /// Its idempotency key: a notice with a key delivered before is not delivered again.
    pub key: Option<String>,
}

/// What [`Store::create`](super::Store::create) found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// A new execution was inserted.
    New(ExecutionRecord),
    /// An execution with this id existed; it was left unchanged.
    Existing(ExecutionRecord),
}

impl Created {
    /// Whether the execution was inserted by this call.
    pub fn is_new(&self) -> bool {
        matches!(self, Created::New(_))
    }

    /// The record, new or existing.
    pub fn record(&self) -> &ExecutionRecord {
        match self {
            Created::New(record) | Created::Existing(record) => record,
        }
    }

    /// The record, new or existing.
    pub fn into_record(self) -> ExecutionRecord {
        match self {
            Created::New(record) | Created::Existing(record) => record,
        }
    }
}

/// A compare-and-swap of one execution's state; see [`Store::commit`](super::Store::commit).
///
/// Build it with [`Commit::on`], which copies the record's current values, then change what
/// the checkpoint changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The execution.
    pub id: ExecutionId,
    /// The version the caller last read; the commit applies only if it is still the stored one.
    pub expected_version: u64,
    /// If `Some`, the commit applies only while the execution is still leased under this claim
    /// (nobody has claimed it since, whether or not the lease's time has run out).
    pub lease: Option<LeaseToken>,
    /// The new status.
    pub status: Status,
    /// The new last checkpoint.
    pub snapshot: Option<Snapshot>,
    /// The new output.
    pub output: Option<String>,
    /// The new wake-up time.
    pub wake_at: Option<Timestamp>,
    /// The new step in progress.
    pub step: Option<StepRecord>,
    /// The new awaited event name.
    pub waiting_for: Option<String>,
    /// History events to append, in order (their `seq` is ignored and assigned by the store).
    pub events: Vec<HistoryEvent>,
    /// Inbox seqs of this execution's events to delete (consumed or rejected).
    pub consume: Vec<u64>,
    /// Clear the lease as well, so that any worker may claim the execution when it is due.
    pub release_lease: bool,
    /// The commit time: the new `updated_at`, and when the lease must still be valid.
    pub now: Timestamp,
    /// Executions to create in the same transaction, each as by
    /// [`Store::create`](super::Store::create) (an existing id is left as it is): the child
    /// workflows this checkpoint starts.
    pub spawn: Vec<NewExecution>,
    /// Events to deliver to other executions in the same transaction.
    pub notify: Vec<Notice>,
}

impl Commit {
    /// A commit at `now` that expects `record`'s version and keeps all its values; it checks no
    /// lease, appends no event, consumes nothing and keeps the lease.
    pub fn on(record: &ExecutionRecord, now: Timestamp) -> Self {
        Commit {
            id: record.id.clone(),
            expected_version: record.version,
            lease: None,
            status: record.status,
            snapshot: record.snapshot.clone(),
            output: record.output.clone(),
            wake_at: record.wake_at,
            step: record.step.clone(),
            waiting_for: record.waiting_for.clone(),
            events: Vec::new(),
            consume: Vec::new(),
            release_lease: false,
            now,
            spawn: Vec::new(),
            notify: Vec::new(),
        }
    }
}

/// Reopens a failed or cancelled execution; see [`Store::reopen`](super::Store::reopen).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reopen {
    /// The execution.
    pub id: ExecutionId,
    /// The version the caller last read; the reopen applies only if it is still the stored one.
    pub expected_version: u64,
    /// The checkpoint it goes on from: its last one, or an earlier one (`None`: from the start).
    pub snapshot: Option<Snapshot>,
    /// The history event that records the reopen (its `seq` is assigned by the store).
    pub event: HistoryEvent,
    /// The time of the reopen: the new `updated_at`.
    pub now: Timestamp,
}

/// Which finished executions [`Store::purge`](super::Store::purge) deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purge {
    /// Only executions that finished (were last committed) strictly before this time.
    pub finished_before: Timestamp,
    /// Only executions of this workflow.
    pub workflow: Option<String>,
    /// Only executions with this status, which must be a finished one; `None`: any finished.
    pub status: Option<Status>,
    /// At most this many in this call (the longest finished first): a bounded batch.
    pub limit: usize,
}

/// Which executions [`Store::list`](super::Store::list) returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only executions of this workflow.
    pub workflow: Option<String>,
    /// Only executions with this status.
    pub status: Option<Status>,
    /// Only the child workflows of this execution.
    pub parent: Option<ExecutionId>,
    /// Only the executions with this business key, `(name, value)` (`order_id`, `o-42`).
    pub key: Option<(String, String)>,
    /// At most this many (the oldest).
    pub limit: Option<usize>,
}

/// The static facts of one build of a workflow, as the engine registers them so that tools can
/// draw the workflow and read an execution's business keys without its code; see
/// [`Store::register_workflow`](super::Store::register_workflow).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowInfo {
    /// The workflow's name.
    pub name: String,
    /// The build's layout fingerprint.
    pub fingerprint: String,
    /// The facts as JSON: a [`FactsRecord`].
    pub facts_json: String,
}

impl WorkflowInfo {
    /// The registration of `facts`.
    pub fn new(facts: &WorkflowFacts) -> Self {
        let record = FactsRecord::from(facts);
        // Strings, numbers and unit enums: encoding cannot fail.
        let facts_json = serde_json::to_string(&record).unwrap_or_default();
        WorkflowInfo { name: record.name, fingerprint: record.fingerprint, facts_json }
    }

    /// The facts, decoded.
    pub fn facts(&self) -> Result<FactsRecord, serde_json::Error> {
        serde_json::from_str(&self.facts_json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().unwrap(), status);
        }
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), kind);
        }
        let error = "bogus".parse::<Status>().unwrap_err();
        assert_eq!(error.to_string(), "unknown status `bogus`");
        assert!(Status::Failed.is_terminal() && !Status::Suspended.is_terminal());
    }
}
