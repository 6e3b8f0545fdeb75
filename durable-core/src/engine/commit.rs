//! Group commit: one store transaction (one sync to disk) for whatever checkpoints the running
//! executions have queued.
//!
//! Every run sends its commits to one committer task and awaits the answer. While the store
//! writes a batch, the next commits queue up in the channel; the committer then takes all of
//! them at once. No timer delays a lone commit: under light load each commit is its own batch,
//! under heavy load batches grow by themselves, so throughput is not bounded by one fsync per
//! step of each execution.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::error::copy_store_error;
use crate::store::{Commit, ExecutionRecord, Store, StoreError};

type Reply = oneshot::Sender<Result<ExecutionRecord, StoreError>>;

struct Request {
    commit: Commit,
    reply: Reply,
}

/// Counters of the group committer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    commits: AtomicU64,
    largest: AtomicUsize,
}

/// How the group committer has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CommitStats {
    /// Store transactions written (calls to `commit_batch`).
    pub(crate) batches: u64,
    /// Commits written in them.
    pub(crate) commits: u64,
    /// The most commits one transaction held.
    pub(crate) largest_batch: usize,
}

/// The sending side of the group committer; cheap to clone.
#[derive(Clone)]
pub(crate) struct Committer {
    requests: mpsc::UnboundedSender<Request>,
    counters: Arc<Counters>,
}

impl Committer {
    /// Spawns the committer task on the current tokio runtime. It ends when every `Committer`
    /// clone is dropped.
    pub(crate) fn spawn<S: Store>(store: Arc<S>, max_batch: usize) -> Self {
        let (requests, queue) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        tokio::spawn(serve(store, queue, Arc::clone(&counters), max_batch.max(1)));
        Committer { requests, counters }
    }

    /// Writes `commit` in the next batch and returns the stored record.
    pub(crate) async fn commit(&self, commit: Commit) -> Result<ExecutionRecord, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::backend("the engine's commit task has stopped (is the runtime shutting down?)");
        self.requests.send(Request { commit, reply }).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
            largest_batch: self.counters.largest.load(Ordering::Relaxed),
        }
    }
}

async fn serve<S: Store>(
    store: Arc<S>,
    mut queue: mpsc::UnboundedReceiver<Request>,
    counters: Arc<Counters>,
    max_batch: usize,
) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.commits.fetch_add(batch.len() as u64, Ordering::Relaxed);
        counters.largest.fetch_max(batch.len(), Ordering::Relaxed);
        let (commits, replies): (Vec<Commit>, Vec<Reply>) =
            batch.into_iter().map(|request| (request.commit, request.reply)).unzip();
        match store.commit_batch(commits).await {
            Ok(results) => {
                let mut results = results.into_iter();
                for reply in replies {
                    let result = results.next().unwrap_or_else(|| {
                        Err(StoreError::backend("the store answered fewer commits than it was sent"))
                    });
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "a group commit failed; none of its commits applied");
                for reply in replies {
                    let _ = reply.send(Err(copy_store_error(&error)));
                }
            }
        }
    }
}
