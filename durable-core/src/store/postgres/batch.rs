//! Group commit: a batch of commits checked in memory against locked rows, then written back
//! with a fixed number of statements, whatever the batch's size.
//!
//! All the batch's executions are locked first (`SELECT ... FOR UPDATE`, in id order so that
//! two batches never deadlock). Each commit is then checked and applied to the locked record in
//! memory, in the batch's order, with the same [`check_commit`] and [`apply_commit`] as every
//! other backend. A commit that fails its checks has written nothing, so it needs no savepoint
//! and does not disturb the others; the records that changed, the history events and the
//! consumed inbox events are then written in one statement each.

use std::collections::HashMap;

use tokio_postgres::types::ToSql;

use super::rows::decode_locked;
use super::rows::{HistoryRows, Locked, RecordRows, int};
use super::{PostgresStore, Tx};
use crate::store::{
    Commit, ExecutionRecord, Reopen, StoreError, apply_commit, apply_reopen, check_commit, check_reopen, new_record,
};

type Results = Vec<Result<ExecutionRecord, StoreError>>;

/// Inbox events that applied commits consume: `(execution id, seq)` as column arrays.
#[derive(Default)]
struct Consumed<'a> {
    ids: Vec<&'a str>,
    seqs: Vec<i64>,
}

/// Executions left unleased and unfinished by the batch, which other workers may have to run:
/// candidates for a notification of new work.
#[derive(Default)]
struct Unleased<'a> {
    ids: Vec<&'a str>,
    waiting_for: Vec<Option<&'a str>>,
    /// Due at once: running, or suspended with a timer that has passed.
    due: Vec<bool>,
}

impl<'a> Unleased<'a> {
    fn push(&mut self, record: &'a ExecutionRecord) {
        let timer_passed = record.wake_at.is_some_and(|at| at <= record.updated_at);
        self.ids.push(&record.id);
        self.waiting_for.push(record.waiting_for.as_deref());
        self.due.push(record.status == crate::store::Status::Running || timer_passed);
    }
}

/// A copy of a decoding error, for each commit of the batch to the same corrupt execution.
fn copy(error: &StoreError) -> StoreError {
    match error {
        StoreError::Corrupt { id, what } => StoreError::corrupt(id, what.clone()),
        other => StoreError::backend(other.to_string()),
    }
}

/// Checks `commit` against its locked record and applies it there, queueing what it appends
/// and consumes.
fn apply<'a>(
    locked: &mut HashMap<String, Result<Locked, StoreError>>,
    commit: &'a Commit,
    history: &mut HistoryRows<'a>,
    consumed: &mut Consumed<'a>,
) -> Result<ExecutionRecord, StoreError> {
    let entry = match locked.get_mut(&commit.id) {
        None => return Err(StoreError::NotFound(commit.id.clone())),
        Some(Err(error)) => return Err(copy(error)),
        Some(Ok(entry)) => entry,
    };
    check_commit(&entry.record, commit)?;
    entry.record = apply_commit(&entry.record, commit);
    for event in &commit.events {
        entry.last_history_seq += 1;
        history.push(&commit.id, entry.last_history_seq, event);
    }
    for seq in &commit.consume {
        consumed.ids.push(&commit.id);
        consumed.seqs.push(int(*seq));
    }
    entry.changed = true;
    Ok(entry.record.clone())
}

impl PostgresStore {
    /// Applies `commits` in `tx`; see [`Store::commit_batch`](crate::store::Store::commit_batch).
    pub(super) async fn commit_all(&self, tx: &Tx, commits: &[Commit]) -> Result<Results, StoreError> {
        let mut locked: HashMap<String, Result<Locked, StoreError>> =
            self.lock_many(tx, commits).await?.into_iter().collect();
        let mut history = HistoryRows::default();
        let mut consumed = Consumed::default();
        let results: Results =
            commits.iter().map(|commit| apply(&mut locked, commit, &mut history, &mut consumed)).collect();
        self.write_back(tx, &locked, &history, &consumed).await?;
        // What the applied commits start and tell others, in the same transaction.
        for (commit, _) in commits.iter().zip(&results).filter(|(_, result)| result.is_ok()) {
            for new in &commit.spawn {
                let (_, started) = new_record(new);
                self.insert(tx, new, &started).await?;
            }
            for notice in &commit.notify {
                self.deliver(tx, notice, commit.now).await?;
            }
        }
        Ok(results)
    }

    /// Reopens an execution in `tx`; see [`Store::reopen`](crate::store::Store::reopen). The
    /// record is written back as a commit's is, which also announces it to waiting workers.
    pub(super) async fn reopen_in(&self, tx: &Tx, reopen: &Reopen) -> Result<ExecutionRecord, StoreError> {
        let ids = vec![reopen.id.as_str()];
        let rows = tx.query("reopen an execution", &self.inner.queries.lock_many, &[&ids]).await?;
        let Some((id, locked)) = rows.iter().find_map(decode_locked) else {
            return Err(StoreError::NotFound(reopen.id.clone()));
        };
        let mut entry = locked?;
        check_reopen(&entry.record, reopen)?;
        entry.record = apply_reopen(&entry.record, reopen);
        entry.last_history_seq += 1;
        entry.changed = true;
        let mut history = HistoryRows::default();
        history.push(&reopen.id, entry.last_history_seq, &reopen.event);
        let record = entry.record.clone();
        let locked = HashMap::from([(id, Ok(entry))]);
        self.write_back(tx, &locked, &history, &Consumed::default()).await?;
        Ok(record)
    }

    /// Writes the changed records, appends the history, deletes the consumed inbox events and
    /// announces the executions that became due.
    async fn write_back(
        &self,
        tx: &Tx,
        locked: &HashMap<String, Result<Locked, StoreError>>,
        history: &HistoryRows<'_>,
        consumed: &Consumed<'_>,
    ) -> Result<(), StoreError> {
        let what = "commit";
        let q = &self.inner.queries;
        let mut records = RecordRows::default();
        let mut unleased = Unleased::default();
        for entry in locked.values().filter_map(|entry| entry.as_ref().ok()).filter(|entry| entry.changed) {
            records.push(entry);
            if entry.record.lease.is_none() && !entry.record.status.is_terminal() {
                unleased.push(&entry.record);
            }
        }
        if records.len() == 0 {
            return Ok(());
        }
        let updated = tx.execute(what, &q.update_many, &records.params()).await?;
        if updated != records.len() as u64 {
            let message = format!("postgres: a commit updated {updated} of {} locked executions", records.len());
            return Err(StoreError::backend(message));
        }
        if !history.is_empty() {
            tx.execute(what, &q.append_history, &history.params()).await?;
        }
        if !consumed.ids.is_empty() {
            tx.execute(what, &q.consume, &[&consumed.ids, &consumed.seqs]).await?;
        }
        if !unleased.ids.is_empty() {
            let params: [&(dyn ToSql + Sync); 4] =
                [&self.inner.channel, &unleased.ids, &unleased.waiting_for, &unleased.due];
            tx.query(what, &q.notify_due, &params).await?;
        }
        Ok(())
    }
}
