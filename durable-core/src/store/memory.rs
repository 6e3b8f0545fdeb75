//! A store in memory: for tests and tools. Nothing survives the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{
    Commit, Created, ExecutionId, ExecutionRecord, HistoryEvent, InboxEvent, Lease, LeaseToken, ListFilter,
    NewExecution, Purge, Reopen, Sent, Status, Store, StoreError, WorkflowInfo, apply_commit, apply_reopen,
    check_commit, check_purge, check_release, check_renew, check_reopen, claimable, new_record, purgeable,
};
use crate::time::{SharedClock, Timestamp};

/// A [`Store`] in memory. Clones share the same executions.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<HashMap<String, Entry>>>,
    /// Workflow registrations, oldest first.
    workflows: Arc<Mutex<Vec<WorkflowInfo>>>,
    /// The workflows paused.
    paused: Arc<Mutex<std::collections::BTreeSet<String>>>,
}

/// One execution and what belongs to it.
#[derive(Debug)]
struct Entry {
    record: ExecutionRecord,
    history: Vec<HistoryEvent>,
    inbox: Vec<InboxEvent>,
    next_inbox_seq: u64,
    /// The epoch of the last claim (0 before the first).
    epoch: u64,
    /// The idempotency keys of sent events, with their seqs.
    keys: HashMap<String, u64>,
    /// Its business keys.
    business_keys: Vec<(String, String)>,
}

impl Entry {
    /// When the execution became due at `now`, or `None` if it is not due.
    fn due_since(&self, now: Timestamp) -> Option<Timestamp> {
        let record = &self.record;
        if record.lease.as_ref().is_some_and(|lease| lease.until > now) {
            return None;
        }
        match record.status {
            Status::Running => Some(record.updated_at),
            Status::Suspended => {
                let timer = record.wake_at.filter(|at| *at <= now);
                let event = self
                    .inbox
                    .iter()
                    .filter(|event| Some(&event.name) == record.waiting_for.as_ref())
                    .map(|event| event.at)
                    .min();
                match (timer, event) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            _ => None,
        }
    }

    /// Leases the execution to `owner` until `until` under a new epoch.
    fn lease(&mut self, owner: &str, until: Timestamp) -> ExecutionRecord {
        self.epoch += 1;
        self.record.lease = Some(Lease { owner: owner.to_owned(), epoch: self.epoch, until });
        self.record.clone()
    }

    /// Checks and applies `commit` (whose id is this entry's).
    fn commit(&mut self, commit: &Commit) -> Result<ExecutionRecord, StoreError> {
        check_commit(&self.record, commit)?;
        self.record = apply_commit(&self.record, commit);
        for event in &commit.events {
            let seq = self.history.len() as u64 + 1;
            self.history.push(HistoryEvent { seq, ..event.clone() });
        }
        self.inbox.retain(|event| !commit.consume.contains(&event.seq));
        Ok(self.record.clone())
    }

    /// Appends an event to the inbox, as [`Store::send_keyed_event`] documents.
    fn send(&mut self, name: &str, payload: &str, key: Option<&str>, now: Timestamp) -> Result<Sent, StoreError> {
        if self.record.status.is_terminal() {
            return Err(StoreError::Terminal(self.record.id.clone()));
        }
        if let Some(seq) = key.and_then(|key| self.keys.get(key)) {
            return Ok(Sent::Duplicate(*seq));
        }
        let seq = self.next_inbox_seq;
        self.next_inbox_seq += 1;
        if let Some(key) = key {
            self.keys.insert(key.to_owned(), seq);
        }
        self.inbox.push(InboxEvent { seq, name: name.to_owned(), payload: payload.to_owned(), at: now });
        Ok(Sent::New(seq))
    }
}

/// Creates `new` in `state` unless an execution of its id exists.
fn create_in(state: &mut HashMap<String, Entry>, new: NewExecution) -> Created {
    if let Some(entry) = state.get(&new.id) {
        return Created::Existing(entry.record.clone());
    }
    let (record, started) = new_record(&new);
    let entry = Entry {
        record: record.clone(),
        history: vec![started],
        inbox: Vec::new(),
        next_inbox_seq: 1,
        epoch: 0,
        keys: HashMap::new(),
        business_keys: new.keys.clone(),
    };
    state.insert(new.id, entry);
    Created::New(record)
}

/// Checks and applies `commit` with the executions it spawns and the notices it delivers.
fn commit_in(state: &mut HashMap<String, Entry>, commit: &Commit) -> Result<ExecutionRecord, StoreError> {
    let record = match state.get_mut(&commit.id) {
        Some(entry) => entry.commit(commit)?,
        None => return Err(StoreError::NotFound(commit.id.clone())),
    };
    for new in &commit.spawn {
        create_in(state, new.clone());
    }
    for notice in &commit.notify {
        if let Some(entry) = state.get_mut(&notice.to) {
            // An unknown or finished execution waits for nothing: the notice is dropped.
            let _ = entry.send(&notice.name, &notice.payload, notice.key.as_deref(), commit.now);
        }
    }
    Ok(record)
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// Claims due executions (of the builds `layouts` names, if given); see
    /// [`Store::claim_due_for`].
    fn claim_filtered(
        &self,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
        limit: usize,
        layouts: Option<&[(String, String)]>,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let paused = self.paused_now();
        let mut state = self.lock();
        let now = clock.now();
        let runnable = |record: &ExecutionRecord| {
            layouts.is_none_or(|layouts| {
                layouts.iter().any(|(name, layout)| {
                    *name == record.workflow && record.snapshot.as_ref().is_none_or(|s| s.fingerprint == *layout)
                })
            })
        };
        let mut due: Vec<(Timestamp, String)> = state
            .values()
            .filter(|entry| !paused.contains(&entry.record.workflow) && runnable(&entry.record))
            .filter_map(|entry| Some((entry.due_since(now)?, entry.record.id.clone())))
            .collect();
        due.sort();
        due.truncate(limit);
        let until = now.saturating_add(lease);
        Ok(due.into_iter().filter_map(|(_, id)| Some(state.get_mut(&id)?.lease(owner, until))).collect())
    }

    /// The workflows paused now.
    fn paused_now(&self) -> std::collections::BTreeSet<String> {
        self.paused.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // No code panics while holding the lock, and every change is applied whole, so the map
        // is consistent even if a panic poisoned it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_entry<T>(&self, id: &str, f: impl FnOnce(&mut Entry) -> Result<T, StoreError>) -> Result<T, StoreError> {
        match self.lock().get_mut(id) {
            Some(entry) => f(entry),
            None => Err(StoreError::NotFound(id.to_owned())),
        }
    }
}

impl Store for MemoryStore {
    async fn create(&self, new: NewExecution) -> Result<Created, StoreError> {
        Ok(create_in(&mut self.lock(), new))
    }

    async fn load(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(self.lock().get(id).map(|entry| entry.record.clone()))
    }

    async fn commit(&self, commit: Commit) -> Result<ExecutionRecord, StoreError> {
        commit_in(&mut self.lock(), &commit)
    }

    async fn commit_batch(&self, commits: Vec<Commit>) -> Result<Vec<Result<ExecutionRecord, StoreError>>, StoreError> {
        let mut state = self.lock();
        Ok(commits.iter().map(|commit| commit_in(&mut state, commit)).collect())
    }

    async fn claim_due(
        &self,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.claim_filtered(owner, clock, lease, limit, None)
    }

    async fn claim_due_for(
        &self,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
        limit: usize,
        layouts: &[(String, String)],
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.claim_filtered(owner, clock, lease, limit, Some(layouts))
    }

    async fn claim(
        &self,
        id: &str,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let paused = self.paused_now();
        self.with_entry(id, |entry| {
            let now = clock.now();
            if !claimable(&entry.record, now) || paused.contains(&entry.record.workflow) {
                return Ok(None);
            }
            Ok(Some(entry.lease(owner, now.saturating_add(lease))))
        })
    }

    async fn renew_lease(
        &self,
        id: &str,
        token: &LeaseToken,
        clock: &SharedClock,
        lease: Duration,
    ) -> Result<Lease, StoreError> {
        self.with_entry(id, |entry| {
            check_renew(&entry.record, token)?;
            let renewed =
                Lease { owner: token.owner.clone(), epoch: token.epoch, until: clock.now().saturating_add(lease) };
            entry.record.lease = Some(renewed.clone());
            Ok(renewed)
        })
    }

    async fn release_lease(&self, id: &str, token: &LeaseToken) -> Result<(), StoreError> {
        self.with_entry(id, |entry| {
            check_release(&entry.record, token)?;
            entry.record.lease = None;
            Ok(())
        })
    }

    async fn send_keyed_event(
        &self,
        id: &str,
        name: &str,
        payload: &str,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<Sent, StoreError> {
        self.with_entry(id, |entry| entry.send(name, payload, key, now))
    }

    async fn inbox(&self, id: &str) -> Result<Vec<InboxEvent>, StoreError> {
        self.with_entry(id, |entry| Ok(entry.inbox.clone()))
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        self.with_entry(id, |entry| Ok(entry.history.clone()))
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<ExecutionRecord>, StoreError> {
        let state = self.lock();
        let mut records: Vec<ExecutionRecord> = state
            .values()
            .filter(|entry| filter.key.as_ref().is_none_or(|key| entry.business_keys.contains(key)))
            .map(|entry| &entry.record)
            .filter(|record| filter.workflow.as_ref().is_none_or(|w| *w == record.workflow))
            .filter(|record| filter.status.is_none_or(|s| s == record.status))
            .filter(|record| filter.parent.is_none() || filter.parent == record.parent)
            .cloned()
            .collect();
        records.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        records.truncate(filter.limit.unwrap_or(usize::MAX));
        Ok(records)
    }

    async fn reopen(&self, reopen: Reopen) -> Result<ExecutionRecord, StoreError> {
        self.with_entry(&reopen.id, |entry| {
            check_reopen(&entry.record, &reopen)?;
            entry.record = apply_reopen(&entry.record, &reopen);
            let seq = entry.history.len() as u64 + 1;
            entry.history.push(HistoryEvent { seq, ..reopen.event.clone() });
            Ok(entry.record.clone())
        })
    }

    async fn purge(&self, purge: Purge) -> Result<Vec<ExecutionId>, StoreError> {
        check_purge(&purge)?;
        let mut state = self.lock();
        let mut doomed: Vec<(crate::time::Timestamp, String)> = state
            .values()
            .filter(|entry| purgeable(&entry.record, &purge))
            .map(|entry| (entry.record.updated_at, entry.record.id.clone()))
            .collect();
        doomed.sort();
        doomed.truncate(purge.limit);
        Ok(doomed.into_iter().filter_map(|(_, id)| state.remove(&id).map(|entry| entry.record.id)).collect())
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<(), StoreError> {
        let mut all = self.paused.lock().unwrap_or_else(PoisonError::into_inner);
        if paused {
            all.insert(name.to_owned());
        } else {
            all.remove(name);
        }
        Ok(())
    }

    async fn paused(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.paused_now().into_iter().collect())
    }

    async fn register_workflow(&self, info: WorkflowInfo) -> Result<(), StoreError> {
        let mut workflows = self.workflows.lock().unwrap_or_else(PoisonError::into_inner);
        workflows.retain(|known| (&known.name, &known.fingerprint) != (&info.name, &info.fingerprint));
        workflows.push(info);
        Ok(())
    }

    async fn workflow(&self, name: &str, fingerprint: Option<&str>) -> Result<Option<WorkflowInfo>, StoreError> {
        let workflows = self.workflows.lock().unwrap_or_else(PoisonError::into_inner);
        let found = workflows
            .iter()
            .rev()
            .find(|info| info.name == name && fingerprint.is_none_or(|wanted| info.fingerprint == wanted));
        Ok(found.cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStore;

    fn fresh() -> (MemoryStore, ()) {
        (MemoryStore::new(), ())
    }

    crate::store::conformance::conformance_tests!(fresh);
}
