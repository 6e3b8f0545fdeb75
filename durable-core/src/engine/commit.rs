//! Group commit: one store transaction (one sync to disk) for whatever checkpoints the running
//! executions have queued, and one for whatever executions the application has started.
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
use super::hooks::{CommitBatch, Observers};
use crate::store::{Commit, Created, ExecutionRecord, NewExecution, Store, StoreError};

type Reply = oneshot::Sender<Result<ExecutionRecord, StoreError>>;
type CreateReply = oneshot::Sender<Vec<Result<Created, StoreError>>>;

enum Request {
    Commit(Box<Commit>, Reply),
    /// Executions to create, answered together in order.
    Create(Vec<NewExecution>, CreateReply),
}

/// Counters of the group committer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    commits: AtomicU64,
    largest: AtomicUsize,
    start_batches: AtomicU64,
    starts: AtomicU64,
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
    /// Store transactions that created executions (calls to `create_batch`).
    pub(crate) start_batches: u64,
    /// Creates in them.
    pub(crate) starts: u64,
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
    pub(crate) fn spawn<S: Store>(store: Arc<S>, max_batch: usize, observers: Arc<Observers>) -> Self {
        let (requests, queue) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        tokio::spawn(serve(store, queue, Arc::clone(&counters), max_batch.max(1), observers));
        Committer { requests, counters }
    }

    /// Writes `commit` in the next batch and returns the stored record.
    pub(crate) async fn commit(&self, commit: Commit) -> Result<ExecutionRecord, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(Request::Commit(Box::new(commit), reply)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Creates the executions `news` in the next batches (so that starts from many tasks share
    /// one transaction) and returns what each found, in order.
    pub(crate) async fn create(&self, news: Vec<NewExecution>) -> Vec<Result<Created, StoreError>> {
        let count = news.len();
        let (reply, answer) = oneshot::channel();
        if self.requests.send(Request::Create(news, reply)).is_err() {
            return (0..count).map(|_| Err(gone())).collect();
        }
        answer.await.unwrap_or_else(|_| (0..count).map(|_| Err(gone())).collect())
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
            largest_batch: self.counters.largest.load(Ordering::Relaxed),
            start_batches: self.counters.start_batches.load(Ordering::Relaxed),
            starts: self.counters.starts.load(Ordering::Relaxed),
        }
    }
}

fn gone() -> StoreError {
    StoreError::backend("the engine's commit task has stopped (is the runtime shutting down?)")
}

async fn serve<S: Store>(
    store: Arc<S>,
    mut queue: mpsc::UnboundedReceiver<Request>,
    counters: Arc<Counters>,
    max_batch: usize,
    observers: Arc<Observers>,
) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let (mut commits, mut replies, mut creates, mut created) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for request in batch {
            match request {
                Request::Commit(commit, reply) => {
                    commits.push(*commit);
                    replies.push(reply);
                }
                Request::Create(new, reply) => {
                    creates.push(new);
                    created.push(reply);
                }
            }
        }
        if !creates.is_empty() {
            create_all(&*store, &counters, max_batch, creates, created).await;
        }
        if commits.is_empty() {
            continue;
        }
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.commits.fetch_add(commits.len() as u64, Ordering::Relaxed);
        counters.largest.fetch_max(commits.len(), Ordering::Relaxed);
        let (size, began) = (commits.len(), std::time::Instant::now());
        let written = store.commit_batch(commits).await;
        let batch = CommitBatch { commits: size, took: began.elapsed(), failed: written.is_err() };
        match written {
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
        // After the answers: the runs go on while the hooks look at the batch.
        observers.committed(&batch);
    }
}

/// Creates the executions of `requests`, `max_batch` per store transaction, and answers each
/// request with what its executions found, in order.
async fn create_all<S: Store>(
    store: &S,
    counters: &Counters,
    max_batch: usize,
    requests: Vec<Vec<NewExecution>>,
    replies: Vec<CreateReply>,
) {
    let sizes: Vec<usize> = requests.iter().map(Vec::len).collect();
    let mut all = requests.into_iter().flatten().peekable();
    let mut results = Vec::with_capacity(sizes.iter().sum());
    while all.peek().is_some() {
        let chunk: Vec<NewExecution> = all.by_ref().take(max_batch).collect();
        let count = chunk.len();
        counters.start_batches.fetch_add(1, Ordering::Relaxed);
        counters.starts.fetch_add(count as u64, Ordering::Relaxed);
        match store.create_batch(chunk).await {
            Ok(created) if created.len() == count => results.extend(created.into_iter().map(Ok)),
            Ok(_) => results
                .extend((0..count).map(|_| Err(StoreError::backend("the store answered a wrong number of creates")))),
            Err(error) => {
                tracing::warn!(%error, "a group of starts failed; none of them applied");
                results.extend((0..count).map(|_| Err(copy_store_error(&error))));
            }
        }
    }
    let mut results = results.into_iter();
    for (reply, size) in replies.into_iter().zip(sizes) {
        let _ = reply.send(results.by_ref().take(size).collect());
    }
}
