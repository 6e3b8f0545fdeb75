//! The store as one process of the [`Harness`](super::Harness) sees it: the shared
//! [`MemoryStore`], until an injected crash kills the process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::store::{
    Commit, Created, EventKind, ExecutionRecord, HistoryEvent, InboxEvent, Lease, LeaseToken, ListFilter, MemoryStore,
    NewExecution, Sent, Store, StoreError, WorkflowInfo,
};
use crate::time::{SharedClock, Timestamp};

/// Where [`Harness::crash_and_resume_at`](super::Harness::crash_and_resume_at) crashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrashAt {
    /// Right after the commit that writes the execution's `n`-th checkpoint (from 1, counting
    /// every checkpoint in its history).
    Checkpoint(usize),
    /// Right after the commit that next writes a checkpoint at the point with this name.
    Point(String),
    /// Right after the commit that writes the `n`-th history event (from 1, counting every event
    /// in its history, `ExecutionStarted` included): also commits that write no checkpoint,
    /// such as a batch branch's outcome.
    Event(usize),
}

/// The crash armed in a process.
#[derive(Debug)]
struct Trigger {
    id: String,
    at: CrashAt,
}

/// Whether a process is alive, and the crash it waits for.
#[derive(Debug, Default)]
struct Process {
    dead: AtomicBool,
    trigger: Mutex<Option<Trigger>>,
}

/// A [`Store`] for one process of a [`Harness`](super::Harness): the harness's [`MemoryStore`]
/// until the process crashes; from then on every call fails, as nothing reaches the store from
/// a dead process.
#[derive(Clone, Debug)]
pub struct HarnessStore {
    inner: MemoryStore,
    process: Arc<Process>,
}

/// A checkpoint event: one that stores a state (an `ExecutionStarted` stores the input).
fn is_checkpoint(event: &HistoryEvent) -> bool {
    event.state.is_some() && event.kind != EventKind::ExecutionStarted
}

impl HarnessStore {
    /// A live process on `inner`.
    pub(super) fn new(inner: MemoryStore) -> Self {
        HarnessStore { inner, process: Arc::default() }
    }

    /// Whether the process has crashed.
    pub(super) fn is_dead(&self) -> bool {
        self.process.dead.load(Ordering::SeqCst)
    }

    /// Arms a crash of this process at `at` in execution `id`.
    pub(super) fn arm(&self, id: &str, at: CrashAt) {
        let mut trigger = self.process.trigger.lock().unwrap_or_else(PoisonError::into_inner);
        *trigger = Some(Trigger { id: id.to_owned(), at });
    }

    /// Hands the armed crash (if it has not happened) to `next`, the process after this one.
    pub(super) fn pass_trigger_to(&self, next: &HarnessStore) {
        let mut trigger = self.process.trigger.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(Trigger { id, at }) = trigger.take() {
            next.arm(&id, at);
        }
    }

    fn alive(&self) -> Result<(), StoreError> {
        if self.is_dead() {
            return Err(StoreError::Unavailable("the harness crashed this process (injected)".into()));
        }
        Ok(())
    }

    /// Kills the process if `commits` (just applied) reached the armed crash.
    async fn after(&self, commits: &[Commit]) -> Result<(), StoreError> {
        let armed = {
            let trigger = self.process.trigger.lock().unwrap_or_else(PoisonError::into_inner);
            trigger.as_ref().map(|t| (t.id.clone(), t.at.clone()))
        };
        let Some((id, at)) = armed else { return Ok(()) };
        let events = commits.iter().filter(|c| c.id == id).flat_map(|c| &c.events);
        let fired = match &at {
            CrashAt::Point(point) => {
                events.filter(|e| is_checkpoint(e)).any(|e| e.point.as_deref() == Some(point.as_str()))
            }
            CrashAt::Checkpoint(n) => {
                let written = events.filter(|e| is_checkpoint(e)).count();
                let total = self.inner.history(&id).await?.iter().filter(|e| is_checkpoint(e)).count();
                written > 0 && total >= *n && total - written < *n
            }
            CrashAt::Event(n) => {
                let written = events.count();
                let total = self.inner.history(&id).await?.len();
                written > 0 && total >= *n && total - written < *n
            }
        };
        if fired {
            self.process.trigger.lock().unwrap_or_else(PoisonError::into_inner).take();
            self.process.dead.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl Store for HarnessStore {
    async fn create(&self, new: NewExecution) -> Result<Created, StoreError> {
        self.alive()?;
        self.inner.create(new).await
    }

    async fn load(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.alive()?;
        self.inner.load(id).await
    }

    async fn commit(&self, commit: Commit) -> Result<ExecutionRecord, StoreError> {
        self.alive()?;
        let record = self.inner.commit(commit.clone()).await?;
        self.after(&[commit]).await?;
        Ok(record)
    }

    async fn commit_batch(&self, commits: Vec<Commit>) -> Result<Vec<Result<ExecutionRecord, StoreError>>, StoreError> {
        self.alive()?;
        let results = self.inner.commit_batch(commits.clone()).await?;
        let applied: Vec<Commit> =
            commits.into_iter().zip(&results).filter(|(_, result)| result.is_ok()).map(|(c, _)| c).collect();
        self.after(&applied).await?;
        Ok(results)
    }

    async fn claim_due(
        &self,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.alive()?;
        self.inner.claim_due(owner, clock, lease, limit).await
    }

    async fn claim_due_for(
        &self,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
        limit: usize,
        layouts: &[(String, String)],
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.alive()?;
        self.inner.claim_due_for(owner, clock, lease, limit, layouts).await
    }

    async fn claim(
        &self,
        id: &str,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        self.alive()?;
        self.inner.claim(id, owner, clock, lease).await
    }

    async fn renew_lease(
        &self,
        id: &str,
        token: &LeaseToken,
        clock: &SharedClock,
        lease: Duration,
    ) -> Result<Lease, StoreError> {
        self.alive()?;
        self.inner.renew_lease(id, token, clock, lease).await
    }

    async fn release_lease(&self, id: &str, token: &LeaseToken) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.release_lease(id, token).await
    }

    async fn send_keyed_event(
        &self,
        id: &str,
        name: &str,
        payload: &str,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<Sent, StoreError> {
        self.alive()?;
        self.inner.send_keyed_event(id, name, payload, key, now).await
    }

    async fn inbox(&self, id: &str) -> Result<Vec<InboxEvent>, StoreError> {
        self.alive()?;
        self.inner.inbox(id).await
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        self.alive()?;
        self.inner.history(id).await
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.alive()?;
        self.inner.list(filter).await
    }

    async fn reopen(&self, reopen: crate::store::Reopen) -> Result<ExecutionRecord, StoreError> {
        self.alive()?;
        self.inner.reopen(reopen).await
    }

    async fn purge(&self, purge: crate::store::Purge) -> Result<Vec<String>, StoreError> {
        self.alive()?;
        self.inner.purge(purge).await
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.set_paused(name, paused).await
    }

    async fn paused(&self) -> Result<Vec<String>, StoreError> {
        self.alive()?;
        self.inner.paused().await
    }

    async fn register_workflow(&self, info: WorkflowInfo) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.register_workflow(info).await
    }

    async fn workflow(&self, name: &str, fingerprint: Option<&str>) -> Result<Option<WorkflowInfo>, StoreError> {
        self.alive()?;
        self.inner.workflow(name, fingerprint).await
    }
}
