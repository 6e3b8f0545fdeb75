//! Where executions live: the [`Store`] trait and its backends.
//!
//! A store keeps, per execution, one [`ExecutionRecord`] (its status and last checkpoint), an
//! append-only history of [`HistoryEvent`]s and an inbox of external events not yet consumed.
//! The engine changes a record only through [`Store::commit`], an atomic compare-and-swap on the
//! record's `version` that also appends history and consumes inbox events, so a checkpoint and
//! what it records are written together or not at all.
//!
//! Workers find work with [`Store::claim_due`], which hands each due execution to one worker at
//! a time under a lease.
//!
//! Backends: [`MemoryStore`] (tests, tools), with the `sqlite` feature `SqliteStore` (the
//! embedded default) and with the `postgres` feature `PostgresStore` (many workers on many
//! machines). Every backend passes the same conformance suite. [`AnyStore`] is any of them,
//! chosen at run time from a URL (`sqlite:app.db`, `postgres://...`, `memory:`), for an
//! application that takes its store from configuration.
//!
//! ```
//! use durable_core::Timestamp;
//! use durable_core::store::{Commit, MemoryStore, NewExecution, Status, Store};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let now = Timestamp::from_millis(1_000);
//! let record = store.create(NewExecution::new("o-1", "order", "\"o-1\"", now)).await?.into_record();
//!
//! let mut done = Commit::on(&record, now);
//! done.status = Status::Succeeded;
//! done.output = Some(r#"{"Ok":42}"#.to_owned());
//! let record = store.commit(done).await?;
//! assert_eq!(record.version, 2);
//! # Ok::<(), durable_core::store::StoreError>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::time::Duration;

use crate::time::{SharedClock, Timestamp};

mod any;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod columns;
mod error;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod record;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

pub use self::any::AnyStore;
pub use self::error::{ParseNameError, StoreError};
pub use self::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use self::postgres::{PostgresOptions, PostgresStore, WorkListener};
pub use self::record::{
    Commit, Created, EventKind, ExecutionId, ExecutionRecord, HistoryEvent, InboxEvent, Lease, LeaseToken, ListFilter,
    NewExecution, Notice, Purge, Reopen, Sent, Snapshot, Status, StepRecord, WorkflowInfo,
};
#[cfg(feature = "sqlite")]
pub use self::sqlite::{SqliteOptions, SqliteStore, Synchronous};

/// Persists executions, their history and their inbox.
///
/// Every method is atomic: it applies completely or not at all, also when the process dies
/// half-way. Methods return `Send` futures, so generic engine code can `tokio::spawn` them.
///
/// Errors: [`StoreError::NotFound`] for an unknown execution id, [`StoreError::Backend`] and
/// [`StoreError::Unavailable`] when the storage itself fails (then nothing was changed), and
/// [`StoreError::Corrupt`] when a stored row cannot be decoded (a backend never panics on it).
pub trait Store: Send + Sync + 'static {
    /// Creates an execution, idempotently by id.
    ///
    /// If an execution with `new.id` exists, nothing changes and it is returned as
    /// [`Created::Existing`] (whatever its workflow or input: comparing them is the caller's
    /// job). Otherwise the execution is inserted with status [`Status::Running`], version 1,
    /// `created_at == updated_at == new.now` and a history of one
    /// [`EventKind::ExecutionStarted`] event (at `new.now`, with the input as its `state`), and
    /// returned as [`Created::New`].
    fn create(&self, new: NewExecution) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// Creates several executions, each as by [`Store::create`] (so idempotently by id, a later
    /// one of the same id finding the earlier one), and returns what each found, in order.
    ///
    /// A backend writes them in one transaction (one sync to disk): the group commit of starts.
    /// The error is for a failure of the storage itself, and then none was created. Provided as
    /// one [`Store::create`] after the other, which a backend should do better than.
    fn create_batch(&self, news: Vec<NewExecution>) -> impl Future<Output = Result<Vec<Created>, StoreError>> + Send {
        async move {
            let mut created = Vec::with_capacity(news.len());
            for new in news {
                created.push(self.create(new).await?);
            }
            Ok(created)
        }
    }

    /// The execution's record, or `None` if there is no execution `id`.
    fn load(&self, id: &str) -> impl Future<Output = Result<Option<ExecutionRecord>, StoreError>> + Send;

    /// Atomically replaces an execution's state: a compare-and-swap on its version.
    ///
    /// Checked in this order, and nothing changes when a check fails:
    /// - the execution exists, else [`StoreError::NotFound`];
    /// - if `commit.lease` is `Some(token)`, the execution is still leased under the claim
    ///   `token` names, else [`StoreError::LeaseLost`]. The lease's end is not checked: if
    ///   nobody claimed the execution since, nobody else can have run it;
    /// - the stored version equals `commit.expected_version`, else [`StoreError::Conflict`];
    /// - the stored status is not terminal, else [`StoreError::Terminal`]: a finished execution
    ///   never changes again.
    ///
    /// Then, in one transaction: the record takes `commit`'s status, snapshot, output, wake_at,
    /// step and waiting_for (full new values, not patches), `version` becomes
    /// `expected_version + 1` and `updated_at` becomes `commit.now`; `commit.events` are appended
    /// to the history with the next sequence numbers (the `seq` passed in is ignored); the inbox
    /// events whose seqs are in `commit.consume` are deleted (seqs not in this execution's inbox
    /// are ignored); if `commit.release_lease`, the lease is cleared; the executions in
    /// `commit.spawn` are created as by [`Store::create`] (with their `parent`); and the
    /// [`Notice`]s in `commit.notify` are delivered as by [`Store::send_keyed_event`], except that
    /// one to an unknown or finished execution is dropped. Returns the new record.
    ///
    /// Provided as a batch of one; a backend may do better.
    fn commit(&self, commit: Commit) -> impl Future<Output = Result<ExecutionRecord, StoreError>> + Send {
        async move {
            let id = commit.id.clone();
            let mut results = self.commit_batch(vec![commit]).await?;
            results.pop().unwrap_or(Err(StoreError::NotFound(id)))
        }
    }

    /// Applies several commits in one transaction (one sync to disk): the group commit.
    ///
    /// Each commit is checked and applied as by [`Store::commit`], independently: one that fails
    /// its checks gets its error in the result at its index and the others still apply. Results
    /// are in the order of `commits`; several commits to one execution apply in that order. The
    /// outer error is for a failure of the storage itself, and then none of the commits applied.
    fn commit_batch(
        &self,
        commits: Vec<Commit>,
    ) -> impl Future<Output = Result<Vec<Result<ExecutionRecord, StoreError>>, StoreError>> + Send;

    /// Atomically leases up to `limit` due executions to `owner` for `lease`.
    ///
    /// The store reads `clock` once it holds whatever lock the claim needs, and uses that time
    /// both to find what is due and to compute the lease's end (`now + lease`): a claim that had
    /// to wait for the store (a long transaction, a locked table) is still granted a whole lease.
    ///
    /// An execution is due when its status is not terminal, its lease is absent or expired
    /// (`until <= now`), and either its status is [`Status::Running`] or it is
    /// [`Status::Suspended`] with `wake_at <= now` or with an inbox event named `waiting_for`.
    /// The longest-due come first: a running execution is due since its `updated_at`, a
    /// suspended one since its `wake_at` or its oldest matching event, whichever is earlier;
    /// ties are broken by id. Two callers never get the same execution while its lease is
    /// valid. Each claimed execution's [`Lease::epoch`] is one more than its previous claim's.
    /// Returns the records with their new lease; their version does not change.
    fn claim_due(
        &self,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ExecutionRecord>, StoreError>> + Send;

    /// As [`Store::claim_due`], but only executions this worker can run: of a workflow in
    /// `layouts` (`(workflow, layout fingerprint)` pairs, the builds the worker has), and either
    /// not started yet or with a stored state of that layout. The others are left, unleased, for
    /// a worker of a build that can run them: old and new builds side by side during a deploy.
    ///
    /// Every backend of this crate filters in the store. The default claims as
    /// [`Store::claim_due`] does, without the filter (the engine then holds aside what it
    /// cannot run).
    fn claim_due_for(
        &self,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
        limit: usize,
        layouts: &[(String, String)],
    ) -> impl Future<Output = Result<Vec<ExecutionRecord>, StoreError>> + Send {
        let _ = layouts;
        self.claim_due(owner, clock, lease, limit)
    }

    /// Leases execution `id` to `owner` for `lease` (from the time the store grants it, as in
    /// [`Store::claim_due`]), whether or not it is due: for a caller with a reason to run it at
    /// once (the event it waits for was just sent).
    ///
    /// Returns the record with its new lease (a new epoch; its version does not change), or
    /// `None` and no change if the execution has finished or anyone, `owner` included, holds a
    /// lease that has not expired: one claim never extends another.
    /// [`StoreError::NotFound`] for an unknown execution.
    fn claim(
        &self,
        id: &str,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
    ) -> impl Future<Output = Result<Option<ExecutionRecord>, StoreError>> + Send;

    /// Extends the claim `token` names on execution `id` to `lease` from now (the time the
    /// store grants it, read from `clock`), and returns the lease.
    ///
    /// Succeeds while nobody has claimed the execution since (also after the lease expired:
    /// nobody else ran it in between); [`StoreError::LeaseLost`] if it was claimed again or
    /// released. Does not change the version or the epoch.
    fn renew_lease(
        &self,
        id: &str,
        token: &LeaseToken,
        clock: &SharedClock,
        lease: Duration,
    ) -> impl Future<Output = Result<Lease, StoreError>> + Send;

    /// Gives up the claim `token` names on execution `id`, so any worker may claim it at once.
    ///
    /// A no-op if nobody holds the lease; [`StoreError::LeaseLost`] (and no change) if it is
    /// held under another claim, even one of the same worker. Does not change the version.
    fn release_lease(&self, id: &str, token: &LeaseToken) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends an external event to execution `id`'s inbox and returns its inbox seq; see
    /// [`Store::send_keyed_event`], of which this is the call without a key.
    fn send_event(
        &self,
        id: &str,
        name: &str,
        payload: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move {
            match self.send_keyed_event(id, name, payload, None, now).await? {
                Sent::New(seq) | Sent::Duplicate(seq) => Ok(seq),
            }
        }
    }

    /// Appends an external event to execution `id`'s inbox and returns its inbox seq (1-based,
    /// increasing per execution, never reused) as [`Sent::New`].
    ///
    /// With an idempotency `key`, an event sent to this execution before with the same key
    /// (consumed or not) makes this call change nothing and return [`Sent::Duplicate`] with the
    /// first event's seq. Keys are kept for the execution's whole life.
    ///
    /// [`StoreError::NotFound`] for an unknown execution, [`StoreError::Terminal`] for one that
    /// has finished. The record and its version do not change; whether the event is the one the
    /// execution waits for is decided when a worker consumes it.
    fn send_keyed_event(
        &self,
        id: &str,
        name: &str,
        payload: &str,
        key: Option<&str>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Sent, StoreError>> + Send;

    /// The events in execution `id`'s inbox that were not consumed yet, by increasing seq.
    /// [`StoreError::NotFound`] for an unknown execution.
    fn inbox(&self, id: &str) -> impl Future<Output = Result<Vec<InboxEvent>, StoreError>> + Send;

    /// Execution `id`'s history, by increasing seq (1, 2, 3, ... with no gap).
    /// [`StoreError::NotFound`] for an unknown execution.
    fn history(&self, id: &str) -> impl Future<Output = Result<Vec<HistoryEvent>, StoreError>> + Send;

    /// The executions that match `filter`, ordered by `created_at`, then id.
    fn list(&self, filter: ListFilter) -> impl Future<Output = Result<Vec<ExecutionRecord>, StoreError>> + Send;

    /// Reopens a failed or cancelled execution so that workers run it again from
    /// `reopen.snapshot` (its last checkpoint, or an earlier one): the one exception to "a
    /// finished execution never changes", for an operator's redrive.
    ///
    /// Checked in this order, and nothing changes when a check fails: the execution exists,
    /// else [`StoreError::NotFound`]; its stored version equals `reopen.expected_version`, else
    /// [`StoreError::Conflict`]; its status is [`Status::Failed`] or [`Status::Cancelled`], else
    /// [`StoreError::WrongStatus`].
    ///
    /// Then, in one transaction: the status becomes [`Status::Running`] (so it is due at once),
    /// the snapshot becomes `reopen.snapshot`, the output, wake-up time, step in progress, awaited
    /// event and lease are cleared, `version` grows by one, `updated_at` becomes `reopen.now`, and
    /// `reopen.event` is appended to the history. The inbox and the lease epoch are kept.
    /// Returns the new record.
    ///
    /// Every backend of this crate implements it; the default refuses with
    /// [`StoreError::Unsupported`], so a store written before it existed stays correct.
    fn reopen(&self, reopen: Reopen) -> impl Future<Output = Result<ExecutionRecord, StoreError>> + Send {
        let _ = reopen;
        async { Err(StoreError::Unsupported("reopen finished executions")) }
    }

    /// Deletes up to `purge.limit` finished executions that match `purge`, with their history,
    /// inbox and event idempotency keys, and returns their ids (the longest finished first).
    ///
    /// An execution matches when its status is terminal (and equals `purge.status` if given),
    /// it was last committed (`updated_at`) before `purge.finished_before`, and it is of
    /// `purge.workflow` if given. Each call is one short transaction, so a caller purges a
    /// large store in a loop of bounded batches without holding up workers; executions that
    /// are not finished are never touched. [`StoreError::Invalid`] if `purge.status` is not a
    /// finished status.
    ///
    /// Every backend of this crate implements it; the default refuses with
    /// [`StoreError::Unsupported`].
    fn purge(&self, purge: Purge) -> impl Future<Output = Result<Vec<ExecutionId>, StoreError>> + Send {
        let _ = purge;
        async { Err(StoreError::Unsupported("purge executions")) }
    }

    /// Pauses workflow `name` (`paused`), or resumes it: while it is paused, [`Store::claim_due`]
    /// and [`Store::claim`] leave its executions alone (they keep their timers and inbox, and
    /// run once it is resumed). Idempotent.
    ///
    /// Every backend of this crate implements it; the default refuses with
    /// [`StoreError::Unsupported`].
    fn set_paused(&self, name: &str, paused: bool) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (name, paused);
        async { Err(StoreError::Unsupported("pause a workflow")) }
    }

    /// The workflows paused now, by name.
    fn paused(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Records the static facts of a workflow build, so that tools (the `durable` command line)
    /// can read them without the workflow's code. The engine calls it for each registered
    /// workflow before it first starts or runs an execution.
    ///
    /// One registration is kept per `(name, fingerprint)`: registering an existing pair replaces
    /// its facts and makes it the latest registration of `name`.
    ///
    /// Every backend of this crate keeps registrations. The default keeps nothing (and
    /// [`Store::workflow`]'s default finds nothing), so that a store written before
    /// registrations existed, or a wrapper in a test, still works: only tools lose the facts.
    fn register_workflow(&self, info: WorkflowInfo) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = info;
        async { Ok(()) }
    }

    /// The registered facts of workflow `name`: of the build with `fingerprint` if given (the
    /// build that wrote an execution's state, say), else of the latest registration. `None` if
    /// there is no such registration.
    fn workflow(
        &self,
        name: &str,
        fingerprint: Option<&str>,
    ) -> impl Future<Output = Result<Option<WorkflowInfo>, StoreError>> + Send {
        let _ = (name, fingerprint);
        async { Ok(None) }
    }
}

/// Checks a commit against the stored record, in the order [`Store::commit`] documents.
pub(crate) fn check_commit(current: &ExecutionRecord, commit: &Commit) -> Result<(), StoreError> {
    if let Some(token) = &commit.lease
        && !token.holds(current.lease.as_ref())
    {
        return Err(StoreError::LeaseLost { id: current.id.clone(), owner: token.owner.clone() });
    }
    if current.version != commit.expected_version {
        return Err(StoreError::Conflict {
            id: current.id.clone(),
            expected: commit.expected_version,
            actual: current.version,
        });
    }
    if current.status.is_terminal() {
        return Err(StoreError::Terminal(current.id.clone()));
    }
    Ok(())
}

/// Checks a reopen against the stored record, in the order [`Store::reopen`] documents.
pub(crate) fn check_reopen(current: &ExecutionRecord, reopen: &Reopen) -> Result<(), StoreError> {
    if current.version != reopen.expected_version {
        return Err(StoreError::Conflict {
            id: current.id.clone(),
            expected: reopen.expected_version,
            actual: current.version,
        });
    }
    if !matches!(current.status, Status::Failed | Status::Cancelled) {
        return Err(StoreError::WrongStatus {
            id: current.id.clone(),
            status: current.status,
            why: "only a failed or cancelled execution can be reopened",
        });
    }
    Ok(())
}

/// The record a checked reopen produces.
pub(crate) fn apply_reopen(current: &ExecutionRecord, reopen: &Reopen) -> ExecutionRecord {
    ExecutionRecord {
        status: Status::Running,
        snapshot: reopen.snapshot.clone(),
        output: None,
        wake_at: None,
        step: None,
        waiting_for: None,
        version: current.version + 1,
        lease: None,
        updated_at: reopen.now,
        ..current.clone()
    }
}

/// Checks what a purge asks for: a finished status, if any.
pub(crate) fn check_purge(purge: &Purge) -> Result<(), StoreError> {
    match purge.status {
        Some(status) if !status.is_terminal() => Err(StoreError::Invalid(format!(
            "cannot purge {status} executions: only finished ones (succeeded, failed or cancelled) can be purged"
        ))),
        _ => Ok(()),
    }
}

/// Whether `record` is one that `purge` deletes.
pub(crate) fn purgeable(record: &ExecutionRecord, purge: &Purge) -> bool {
    record.status.is_terminal()
        && purge.status.is_none_or(|status| status == record.status)
        && record.updated_at < purge.finished_before
        && purge.workflow.as_ref().is_none_or(|workflow| *workflow == record.workflow)
}

/// The record a checked commit produces.
pub(crate) fn apply_commit(current: &ExecutionRecord, commit: &Commit) -> ExecutionRecord {
    ExecutionRecord {
        id: current.id.clone(),
        workflow: current.workflow.clone(),
        status: commit.status,
        input: current.input.clone(),
        snapshot: commit.snapshot.clone(),
        output: commit.output.clone(),
        wake_at: commit.wake_at,
        step: commit.step.clone(),
        waiting_for: commit.waiting_for.clone(),
        version: current.version + 1,
        lease: if commit.release_lease { None } else { current.lease.clone() },
        created_at: current.created_at,
        updated_at: commit.now,
        parent: current.parent.clone(),
        parent_event: current.parent_event.clone(),
    }
}

/// The first record and history event of a new execution.
pub(crate) fn new_record(new: &NewExecution) -> (ExecutionRecord, HistoryEvent) {
    let record = ExecutionRecord {
        id: new.id.clone(),
        workflow: new.workflow.clone(),
        status: Status::Running,
        input: new.input.clone(),
        snapshot: None,
        output: None,
        wake_at: None,
        step: None,
        waiting_for: None,
        version: 1,
        lease: None,
        created_at: new.now,
        updated_at: new.now,
        parent: new.parent.clone(),
        parent_event: new.parent_event.clone(),
    };
    let mut started = HistoryEvent::new(new.now, EventKind::ExecutionStarted);
    started.seq = 1;
    started.state = Some(new.input.clone());
    // A child's history names its parent from its first line.
    started.detail = new.parent.as_ref().map(|parent| format!("child of {parent}"));
    (record, started)
}

/// Whether [`Store::claim`] may lease `current` at `now`: it has not finished and nobody holds
/// a lease on it that is still valid.
pub(crate) fn claimable(current: &ExecutionRecord, now: Timestamp) -> bool {
    !current.status.is_terminal() && current.lease.as_ref().is_none_or(|lease| lease.until <= now)
}

/// Whether the claim `token` names may be renewed on `current`.
pub(crate) fn check_renew(current: &ExecutionRecord, token: &LeaseToken) -> Result<(), StoreError> {
    if token.holds(current.lease.as_ref()) {
        return Ok(());
    }
    Err(StoreError::LeaseLost { id: current.id.clone(), owner: token.owner.clone() })
}

/// Whether the claim `token` names may be released on `current` (a free lease may be).
pub(crate) fn check_release(current: &ExecutionRecord, token: &LeaseToken) -> Result<(), StoreError> {
    match &current.lease {
        None => Ok(()),
        Some(_) => check_renew(current, token),
    }
}
