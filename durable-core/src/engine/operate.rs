//! What operators do to executions: redrive (from the last checkpoint or an earlier one), wake
//! early, cancel with a reason, purge finished executions. Each one that concerns a living
//! execution is written to its history with who asked and why; the command line and the web
//! console call these same methods.

use std::time::Duration;

use super::{Engine, EngineError, RunInfo};
use crate::limits;
use crate::store::{
    Commit, EventKind, ExecutionRecord, HistoryEvent, Purge, Reopen, Snapshot, Status, Store, StoreError,
};

/// The longest [`Operator::who`], in bytes.
pub const MAX_WHO_BYTES: usize = 255;
/// The longest [`Operator::reason`], in bytes.
pub const MAX_REASON_BYTES: usize = 4_096;
/// How many executions one transaction of [`Engine::purge`] deletes at most.
pub const PURGE_BATCH: usize = 500;

/// Who asks for an operation and why: written to the execution's history with the operation.
///
/// ```
/// use durable_core::engine::Operator;
///
/// let by = Operator::new("alice", "the carrier's API is back");
/// assert_eq!(by.detail(), "by alice: the carrier's API is back");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// A person, a team or a tool (`alice`, `durable-cli`, `web console`).
    pub who: String,
    /// Why, in free text; may be empty.
    pub reason: String,
}

impl Operator {
    /// `who` asks, because of `reason`.
    pub fn new(who: impl Into<String>, reason: impl Into<String>) -> Self {
        Operator { who: who.into(), reason: reason.into() }
    }

    /// How the history records it: `by alice: the carrier's API is back`.
    pub fn detail(&self) -> String {
        if self.reason.is_empty() { format!("by {}", self.who) } else { format!("by {}: {}", self.who, self.reason) }
    }

    /// Checks the limits: `who` is 1 to [`MAX_WHO_BYTES`] bytes with no control character, and
    /// `reason` at most [`MAX_REASON_BYTES`] bytes with no control character but line breaks.
    pub fn check(&self) -> Result<(), EngineError> {
        let bad = |message: String| Err(EngineError::InvalidRequest(message));
        if self.who.is_empty() || self.who.len() > MAX_WHO_BYTES || self.who.chars().any(char::is_control) {
            return bad(format!(
                "who asks must be 1 to {MAX_WHO_BYTES} bytes with no control character (got {} bytes)",
                self.who.len()
            ));
        }
        if self.reason.len() > MAX_REASON_BYTES || self.reason.chars().any(|c| c.is_control() && c != '\n') {
            return bad(format!(
                "a reason must be at most {MAX_REASON_BYTES} bytes with no control character but line breaks \
                 (got {} bytes)",
                self.reason.len()
            ));
        }
        Ok(())
    }
}

/// Which finished executions [`Engine::purge`] deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgeFilter {
    /// Only executions that finished at least this long ago (by the engine's clock).
    pub older_than: Duration,
    /// Only executions of this workflow.
    pub workflow: Option<String>,
    /// Only executions with this finished status; `None`: succeeded, failed and cancelled.
    pub status: Option<Status>,
}

fn refused(action: &'static str, id: &str, why: impl Into<String>) -> EngineError {
    EngineError::Refused { action, id: id.to_owned(), why: why.into() }
}

impl<S: Store> Engine<S> {
    /// Runs failed or cancelled execution `id` again from its last checkpoint, with this
    /// build's code: the steps before that checkpoint do not run again, the step that failed
    /// starts over at attempt 1. Workers (of any engine on the store) pick it up at once.
    ///
    /// Recorded in the history as `ExecutionRedriven` with `by`'s name and reason. Events
    /// still in the execution's inbox stay there for its waits.
    ///
    /// Fails with [`EngineError::UnknownExecution`], or [`EngineError::Refused`] if the
    /// execution is running, suspended or succeeded.
    pub async fn redrive(&self, id: &str, by: &Operator) -> Result<ExecutionRecord, EngineError> {
        self.redrive_at(id, None, by).await
    }

    /// Runs failed or cancelled execution `id` again from the checkpoint that history event
    /// `seq` recorded (an earlier one than its last: a rewind), or from its start with `seq` 1
    /// (its `ExecutionStarted`). Everything after that checkpoint runs again, steps included;
    /// an event it consumed after that checkpoint is not delivered again. Otherwise as
    /// [`Engine::redrive`]; [`EngineError::Refused`] if event `seq` is not a checkpoint.
    pub async fn redrive_from(&self, id: &str, seq: u64, by: &Operator) -> Result<ExecutionRecord, EngineError> {
        self.redrive_at(id, Some(seq), by).await
    }

    async fn redrive_at(&self, id: &str, seq: Option<u64>, by: &Operator) -> Result<ExecutionRecord, EngineError> {
        limits::check_id(id)?;
        by.check()?;
        loop {
            let record = self.load(id).await?;
            if !matches!(record.status, Status::Failed | Status::Cancelled) {
                let why = format!("it is {}; only a failed or cancelled execution can be redriven", record.status);
                return Err(refused("redrive", id, why));
            }
            let history = self.shared.store.history(id).await?;
            let now = self.shared.clock.now();
            let (snapshot, from) = match seq {
                None => (record.snapshot.clone(), record.snapshot.as_ref().map(|s| s.point.clone())),
                Some(1) => (None, None),
                Some(seq) => {
                    let event = history.iter().find(|event| event.seq == seq);
                    let checkpoint = event.filter(|e| e.kind != EventKind::ExecutionStarted && e.point.is_some());
                    let Some((event, state)) = checkpoint.and_then(|e| Some((e, e.state.as_ref()?))) else {
                        let why = format!("history event {seq} is not a checkpoint (`durable history {id} --states`)");
                        return Err(refused("redrive", id, why));
                    };
                    let point = event.point.clone().unwrap_or_default();
                    let fingerprint = match (&record.snapshot, self.shared.registry.get(&record.workflow)) {
                        (Some(last), _) => last.fingerprint.clone(),
                        (None, Some(workflow)) => workflow.facts().fingerprint.to_owned(),
                        (None, None) => String::new(),
                    };
                    let snapshot = Snapshot { point: point.clone(), fingerprint, state: state.clone() };
                    (Some(snapshot), Some(point))
                }
            };
            let mut event = HistoryEvent::new(now, EventKind::ExecutionRedriven);
            let place = match &from {
                Some(point) => {
                    // Where that checkpoint's point is in the source, as its own event said.
                    let source = history.iter().rev().find(|e| e.point.as_ref() == Some(point) && e.line.is_some());
                    if let Some(source) = source {
                        event =
                            event.with_point(point, source.file.clone().unwrap_or_default(), source.line.unwrap_or(0));
                    } else {
                        event.point = Some(point.clone());
                    }
                    format!("from the checkpoint after {point}")
                }
                None => "from its start".to_owned(),
            };
            let event = event.with_detail(format!("{place}, {}", by.detail()));
            let reopen = Reopen { id: id.to_owned(), expected_version: record.version, snapshot, event, now };
            match self.shared.store.reopen(reopen.clone()).await {
                Ok(reopened) => {
                    self.shared.clear_problem(id);
                    self.announce(&reopened, &reopen.event);
                    self.shared.work.notify_one();
                    return Ok(reopened);
                }
                // Someone else redrove it in between: look again.
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Pauses workflow `name` for every worker on the store (an incident, a bad deploy): no
    /// worker claims its executions until [`Engine::resume_workflow`]; a run in progress goes on
    /// to its next suspension. Its executions keep their timers and inbox; starts and events
    /// are still accepted, and taken up once it is resumed. Logged with `by`'s name and reason
    /// (no execution's history is written).
    pub async fn pause_workflow(&self, name: &str, by: &Operator) -> Result<(), EngineError> {
        limits::check_workflow_name(name)?;
        by.check()?;
        self.shared.store.set_paused(name, true).await?;
        tracing::warn!(workflow = name, "workflow {name} paused: no worker claims its executions ({})", by.detail());
        Ok(())
    }

    /// Resumes workflow `name` after [`Engine::pause_workflow`]: its due executions are claimed
    /// again, the longest-due first.
    pub async fn resume_workflow(&self, name: &str, by: &Operator) -> Result<(), EngineError> {
        limits::check_workflow_name(name)?;
        by.check()?;
        self.shared.store.set_paused(name, false).await?;
        tracing::info!(workflow = name, "workflow {name} resumed ({})", by.detail());
        self.shared.work.notify_waiters();
        Ok(())
    }

    /// The workflows paused now.
    pub async fn paused_workflows(&self) -> Result<Vec<String>, EngineError> {
        Ok(self.shared.store.paused().await?)
    }

    /// Wakes suspended execution `id` now, though its timer or the delay before its step's next
    /// attempt has not passed: the timer counts as fired, the next attempt starts. Recorded as
    /// `ExecutionWoken` with `by`'s name and reason.
    ///
    /// Fails with [`EngineError::UnknownExecution`], or [`EngineError::Refused`] if it is not
    /// suspended, or waits for an event (send the event instead).
    pub async fn wake(&self, id: &str, by: &Operator) -> Result<ExecutionRecord, EngineError> {
        limits::check_id(id)?;
        by.check()?;
        loop {
            let record = self.load(id).await?;
            if record.status != Status::Suspended {
                let why = format!("it is {}; only a suspended execution waits for a timer or a retry", record.status);
                return Err(refused("wake", id, why));
            }
            if let Some(event) = &record.waiting_for {
                let why = format!("it waits for event `{event}`, not for time: send it the event instead");
                return Err(refused("wake", id, why));
            }
            let now = self.shared.clock.now();
            let mut commit = Commit::on(&record, now);
            commit.wake_at = Some(now);
            let waited = match commit.step.as_mut() {
                Some(step) if step.retry_at.is_some() => {
                    step.retry_at = Some(now);
                    format!("before the next attempt of step {}", step.point)
                }
                _ => {
                    let point = record.snapshot.as_ref().map_or("?", |s| s.point.as_str());
                    format!("before its timer (after {point}) was due")
                }
            };
            let event =
                HistoryEvent::new(now, EventKind::ExecutionWoken).with_detail(format!("{waited}, {}", by.detail()));
            commit.events.push(event.clone());
            match self.shared.store.commit(commit).await {
                Ok(woken) => {
                    self.announce(&woken, &event);
                    self.shared.work.notify_one();
                    return Ok(woken);
                }
                // A worker committed in between: look again.
                Err(StoreError::Conflict { .. } | StoreError::Terminal(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Cancels execution `id` as [`Engine::cancel`] does, recording `by`'s name and reason with
    /// its `ExecutionCancelled` event.
    pub async fn cancel_by(&self, id: &str, by: &Operator) -> Result<(), EngineError> {
        by.check()?;
        self.cancel_tree(id, Some(by.detail())).await
    }

    /// Deletes the finished executions `filter` matches (with their history, inbox and event
    /// keys), in transactions of at most [`PURGE_BATCH`], and returns how many. Executions that
    /// have not finished are never touched, so a purge may run while workers do.
    ///
    /// A purged execution has no history left to write to: the purge is logged (with `by`) as
    /// a `tracing` event instead. [`EngineError::Refused`] for a status that is not a finished
    /// one.
    pub async fn purge(&self, filter: &PurgeFilter, by: &Operator) -> Result<u64, EngineError> {
        by.check()?;
        if let Some(workflow) = &filter.workflow {
            limits::check_workflow_name(workflow)?;
        }
        if let Some(status) = filter.status.filter(|status| !status.is_terminal()) {
            let why = format!("only finished executions can be purged, not {status} ones");
            return Err(refused("purge", "*", why));
        }
        let before = self.shared.clock.now().saturating_sub(filter.older_than);
        let mut purged = 0u64;
        loop {
            let batch = Purge {
                finished_before: before,
                workflow: filter.workflow.clone(),
                status: filter.status,
                limit: PURGE_BATCH,
            };
            let ids = self.shared.store.purge(batch).await?;
            purged += ids.len() as u64;
            if ids.len() < PURGE_BATCH {
                break;
            }
            // Between batches, let claims and commits of this process through.
            tokio::task::yield_now().await;
        }
        tracing::info!(
            purged,
            workflow = filter.workflow.as_deref().unwrap_or("*"),
            status = filter.status.map_or("finished", Status::as_str),
            "purged {purged} executions that finished more than {} ago, {}",
            super::human(filter.older_than),
            by.detail()
        );
        Ok(purged)
    }

    /// Reports an operator's event as the engine's runs report theirs.
    fn announce(&self, record: &ExecutionRecord, event: &HistoryEvent) {
        let subject = self.shared.subject(record);
        let name = subject.name();
        let info = RunInfo { workflow: &record.workflow, execution_id: &record.id, name: &name, worker: None };
        subject.span().in_scope(|| self.shared.observers.event(&info, event));
    }
}
