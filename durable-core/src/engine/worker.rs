//! Workers: claim due executions under a lease and run them concurrently.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::{Id, JoinError, JoinSet};

use super::error::EngineError;
use super::host::Report;
use super::run::{Ended, release_parked, run_claimed};
use super::{Engine, Shared};
use crate::host::BoxFuture;
use crate::store::{ExecutionId, ExecutionRecord, Store};

/// Runs due executions: new ones, timers that fired, events that arrived, retries whose delay
/// passed, and executions left running by a worker that died (once its lease expired).
///
/// Made by [`Engine::worker`]. Each worker needs a name unique among the workers sharing a
/// store: it is the owner of the leases it takes.
///
/// ```
/// use durable_core::prelude::*;
/// use durable_core::{Engine, ManualClock, MemoryStore, Timestamp};
/// use std::{sync::Arc, time::Duration};
///
/// #[durable]
/// async fn reminder(who: String) -> Result<String, WorkflowError> {
///     wait!("a_day", Duration::from_secs(86_400));
///     Ok(format!("remember, {who}"))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let clock = ManualClock::new(Timestamp::from_millis(0));
/// let engine = Engine::builder(MemoryStore::new()).clock(Arc::new(clock.clone())).register(reminder).build()?;
/// engine.start(reminder, "r-1", "ann".to_owned()).await?;
/// let worker = engine.worker("w-1");
/// worker.run_until_idle().await?; // runs until the timer, then the execution leaves memory
/// clock.advance(Duration::from_secs(86_400));
/// worker.run_until_idle().await?;
/// assert_eq!(engine.result(reminder, "r-1").await?, Ok("remember, ann".to_owned()));
/// # Ok::<(), durable_core::EngineError>(())
/// # }).unwrap();
/// ```
pub struct Worker<S: Store> {
    engine: Engine<S>,
    name: String,
    concurrency: usize,
    wake: Option<Arc<dyn WakeSource>>,
}

/// Something that says "there may be new work" from outside this process, so that a worker in
/// [`Worker::run`] claims it at once instead of at its next poll. `PostgresStore::listen` gives
/// one (PostgreSQL `LISTEN`/`NOTIFY`).
pub trait WakeSource: Send + Sync + 'static {
    /// Completes at the next wake-up.
    fn wait(&self) -> BoxFuture<'_, ()>;
}

type Tasks = JoinSet<(Ended, Report)>;

impl<S: Store> Worker<S> {
    pub(super) fn new(engine: Engine<S>, name: String) -> Self {
        Worker { engine, name, concurrency: 256, wake: None }
    }

    /// Wakes [`Worker::run`] whenever `source` says there may be new work (for example a
    /// `WorkListener` from `PostgresStore::listen`), besides the regular polling.
    pub fn wake_on(mut self, source: impl WakeSource) -> Self {
        self.wake = Some(Arc::new(source));
        self
    }

    /// Runs at most `n` executions at once (default 256).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The worker's name: the owner of its leases.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn shared(&self) -> &Arc<Shared<S>> {
        &self.engine.shared
    }

    async fn claim(&self, limit: usize) -> Result<Vec<ExecutionRecord>, EngineError> {
        let shared = self.shared();
        shared.register_facts().await;
        // Only what this build can run: a worker of another build takes the rest.
        let layouts = &shared.layouts;
        Ok(shared.store.claim_due_for(&self.name, &shared.clock, shared.lease, limit, layouts).await?)
    }

    fn spawn(
        &self,
        tasks: &mut Tasks,
        ids: &mut HashMap<Id, ExecutionId>,
        record: ExecutionRecord,
        stop: &Arc<AtomicBool>,
    ) {
        let id = record.id.clone();
        let run = run_claimed(Arc::clone(self.shared()), record, None, Arc::clone(stop));
        let handle = tasks.spawn(run);
        ids.insert(handle.id(), id);
    }

    /// Claims and runs everything due now, round after round, and returns the number of runs
    /// once nothing is due. It never sleeps: with a [`ManualClock`](crate::ManualClock), advance
    /// the clock and call it again to fire timers and retries.
    ///
    /// Fails only if the store cannot be read (claiming failed); a run that fails is reported
    /// through `tracing` and left to be retried.
    pub async fn run_until_idle(&self) -> Result<usize, EngineError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut runs = 0;
        loop {
            let claimed = self.claim(self.concurrency).await?;
            if claimed.is_empty() {
                return Ok(runs);
            }
            runs += claimed.len();
            let (mut tasks, mut ids) = (JoinSet::new(), HashMap::new());
            for record in claimed {
                self.spawn(&mut tasks, &mut ids, record, &stop);
            }
            while let Some(joined) = tasks.join_next_with_id().await {
                report_panic(joined, &mut ids, &self.name);
            }
        }
    }

    /// Runs until `shutdown` completes: claims due work whenever a slot is free, wakes up when
    /// this engine starts an execution or queues an event and otherwise every poll interval.
    ///
    /// On shutdown it claims nothing more and waits for the runs in flight to reach their next
    /// checkpoint (where they commit, release their lease and stop) or suspension. Then it gives
    /// up the leases of the executions its engine held aside because it could not run them (a
    /// workflow it lacks, a state of another build), so that a worker that can takes them at
    /// once rather than when those leases end. A store that fails is reported through `tracing`
    /// and tried again.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let stop = Arc::new(AtomicBool::new(false));
        let (mut tasks, mut ids) = (JoinSet::new(), HashMap::new());
        let shared = Arc::clone(self.shared());
        let wake = self.wake.clone();
        tokio::pin!(shutdown);
        // A claim is a store transaction: while the worker is busy, it claims once an eighth of
        // its slots are free rather than at every run that ends (one claim per finished run
        // would cost as many transactions as runs); new work announced, a poll or an idle
        // worker claims at once.
        let worth = (self.concurrency / 8).max(1);
        let mut announced = true;
        loop {
            let free = self.concurrency.saturating_sub(tasks.len());
            if free > 0 && (announced || free >= worth || tasks.is_empty()) {
                match self.claim(free).await {
                    Ok(claimed) => {
                        let full = claimed.len() == free;
                        for record in claimed {
                            self.spawn(&mut tasks, &mut ids, record, &stop);
                        }
                        if full {
                            tokio::task::yield_now().await;
                            continue;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, worker = %self.name, "worker {} cannot claim work; trying again", self.name);
                    }
                }
            }
            announced = tokio::select! {
                () = &mut shutdown => break,
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    report_panic(joined, &mut ids, &self.name);
                    while let Some(joined) = tasks.try_join_next_with_id() {
                        report_panic(joined, &mut ids, &self.name);
                    }
                    false
                }
                () = shared.work.notified() => true,
                () = async { if let Some(wake) = &wake { wake.wait().await } }, if wake.is_some() => true,
                () = tokio::time::sleep(shared.poll_interval) => true,
            };
        }
        stop.store(true, Ordering::Relaxed);
        while let Some(joined) = tasks.join_next_with_id().await {
            report_panic(joined, &mut ids, &self.name);
        }
        release_parked(&shared, &self.name).await;
    }
}

/// Forgets a finished task of `worker`; reports it if it panicked.
fn report_panic(joined: Result<(Id, (Ended, Report)), JoinError>, ids: &mut HashMap<Id, ExecutionId>, worker: &str) {
    match joined {
        Ok((task, _)) => {
            ids.remove(&task);
        }
        Err(error) => {
            let id = ids.remove(&error.id()).unwrap_or_default();
            tracing::error!(
                worker,
                "the run of {id} panicked ({error}); once its lease expires it runs again from its last checkpoint"
            );
        }
    }
}
