//! What the engine reports back: handles, statuses, deliveries, counters.

use crate::store::{ExecutionId, ExecutionRecord, Status, StepRecord};
use crate::time::Timestamp;

/// An execution that [`Engine::start`](super::Engine::start) created or found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handle {
    id: ExecutionId,
    workflow: String,
    new: bool,
}

impl Handle {
    pub(super) fn new(id: ExecutionId, workflow: String, new: bool) -> Self {
        Handle { id, workflow, new }
    }

    /// The execution's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its workflow's name.
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    /// Whether this call created it (`false`: it existed and was left as it was).
    pub fn is_new(&self) -> bool {
        self.new
    }
}

/// How [`Engine::send_event`](super::Engine::send_event) delivered an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The execution was waiting for it: its payload decoded and was committed with the
    /// execution's state. A worker continues the execution.
    Delivered,
    /// Kept in the execution's inbox until the workflow waits for it.
    ///
    /// A wait consumes only an event that arrived before its deadline. An event still in the
    /// inbox when the execution finishes is never consumed: `durable show` lists it, as
    /// [`Store::inbox`](crate::store::Store::inbox) does.
    Queued,
    /// An event with the same idempotency key was sent to this execution before
    /// ([`Engine::send_event_once`](super::Engine::send_event_once)); this one was not stored.
    Duplicate,
}

/// Where an execution is; see [`Engine::status`](super::Engine::status).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecutionStatus {
    /// The execution's id.
    pub id: ExecutionId,
    /// Its workflow's name.
    pub workflow: String,
    /// Where it is in its life.
    pub status: Status,
    /// The point of its last checkpoint, if it has one.
    pub point: Option<String>,
    /// When it is due again (a timer, a retry, an event's timeout).
    pub wake_at: Option<Timestamp>,
    /// The event it waits for.
    pub waiting_for: Option<String>,
    /// The attempts of the step in progress.
    pub step: Option<StepRecord>,
    /// The worker that holds it, if any.
    pub leased_by: Option<String>,
    /// Its stored version (grows by one with every commit).
    pub version: u64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last committed.
    pub updated_at: Timestamp,
    /// Why this engine could not run it (a corrupt or incompatible state, a workflow it does
    /// not know, a panic in its code), if it tried this version and failed. The stored
    /// execution was left as it was, or, after a panic, suspended until its next attempt.
    pub problem: Option<String>,
}

impl ExecutionStatus {
    pub(super) fn new(record: ExecutionRecord, problem: Option<String>) -> Self {
        ExecutionStatus {
            id: record.id,
            workflow: record.workflow,
            status: record.status,
            point: record.snapshot.map(|snapshot| snapshot.point),
            wake_at: record.wake_at,
            waiting_for: record.waiting_for,
            step: record.step,
            leased_by: record.lease.map(|lease| lease.owner),
            version: record.version,
            created_at: record.created_at,
            updated_at: record.updated_at,
            problem,
        }
    }
}

/// Counters of an engine; see [`Engine::stats`](super::Engine::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineStats {
    /// Store transactions the group committer wrote.
    pub batches: u64,
    /// Commits in them.
    pub commits: u64,
    /// The most commits one transaction held.
    pub largest_batch: usize,
    /// Runs in memory right now. A suspended execution holds none.
    pub running: usize,
    /// Store transactions that created executions (starts share them as commits do).
    pub start_batches: u64,
    /// Executions created (or found) in them.
    pub starts: u64,
}

impl EngineStats {
    /// Commits per store transaction, on average (0 before the first).
    pub fn average_batch(&self) -> f64 {
        if self.batches == 0 { 0.0 } else { self.commits as f64 / self.batches as f64 }
    }
}
