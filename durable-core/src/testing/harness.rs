//! The engine in memory, on a virtual clock, with crashes where you want them.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::process::{CrashAt, HarnessStore};
use crate::engine::{Delivery, Engine, EngineBuilder, EngineError, ExecutionStatus, Handle};
use crate::render::{self, ExecutionView, GraphMarks};
use crate::store::{HistoryEvent, ListFilter, MemoryStore, Status, Store, StoreError};
use crate::time::{Clock, ManualClock, Timestamp};
use crate::workflow::Workflow;

type Registration = Box<dyn Fn(EngineBuilder<HarnessStore>) -> EngineBuilder<HarnessStore> + Send + Sync>;

/// The real [`Engine`] and a [`Worker`](crate::Worker) on a [`MemoryStore`] and a
/// [`ManualClock`], for tests of workflows as they run in production: timers and retry delays
/// fire when the test advances time (nothing sleeps), events are delivered as senders deliver
/// them, and a crash drops the engine and everything it holds in memory but the store.
///
/// Every method that changes something then runs all due work until nothing is due, so a test
/// reads like the story it tells:
///
/// ```
/// use durable_core::prelude::*;
/// use durable_core::testing::{CrashAt, Harness};
/// use std::time::Duration;
///
/// #[durable(key = order_id)]
/// async fn order(order_id: String) -> Result<String, WorkflowError> {
///     let total = step!("price", Ok::<_, StepError>(order_id.len() as u64 * 10))?;
///     let paid: u64 = wait!("payment", event, timeout = Duration::from_secs(48 * 3600))?;
///     Ok(format!("{order_id}: paid {paid} of {total}"))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut harness = Harness::new().register(order);
/// harness.crash_and_resume_at("o-1", CrashAt::Point("price".into()));
/// harness.start(order, "o-1", "o-1".to_owned()).await?; // crashes after `price`, resumes
/// harness.advance(Duration::from_secs(2 * 3600)).await?;
/// harness.send_event("o-1", "payment", &30).await?;
/// assert_eq!(harness.crashes(), 1);
/// assert_eq!(harness.result(order, "o-1").await?, Some(Ok("o-1: paid 30 of 30".to_owned())));
///
/// let log = harness.render_log("o-1").await?;
/// assert!(log.contains("+2h 0m    Resumed            payment ("), "{log}");
/// assert!(log.contains("after 2h 0m"), "{log}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct Harness {
    store: MemoryStore,
    clock: ManualClock,
    registrations: Vec<Registration>,
    process: HarnessStore,
    engine: Engine<HarnessStore>,
    crashes: usize,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// When the virtual clock starts: 2026-01-01T00:00:00Z.
    pub const EPOCH: Timestamp = Timestamp::from_millis(1_767_225_600_000);

    /// The name of the harness's worker (and lease owner).
    pub const WORKER: &'static str = "harness";

    /// An empty store, a clock at [`Harness::EPOCH`], no workflows. Must be called inside a
    /// tokio runtime.
    pub fn new() -> Self {
        let store = MemoryStore::new();
        let clock = ManualClock::new(Self::EPOCH);
        let process = HarnessStore::new(store.clone());
        let engine = build(&process, &clock, &[]);
        Harness { store, clock, registrations: Vec::new(), process, engine, crashes: 0 }
    }

    /// Registers `workflow` with the engine (and with every engine built after a crash).
    pub fn register<W: Workflow + Clone>(mut self, workflow: W) -> Self {
        self.registrations.push(Box::new(move |builder| builder.register(workflow.clone())));
        self.engine = build(&self.process, &self.clock, &self.registrations);
        self
    }

    /// The engine of the current process.
    pub fn engine(&self) -> &Engine<HarnessStore> {
        &self.engine
    }

    /// The store: all that survives a crash.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// The virtual clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// How many times the process crashed (and was restarted) so far.
    pub fn crashes(&self) -> usize {
        self.crashes
    }

    /// Starts execution `id` of `workflow` with `input` and runs it until nothing is due.
    pub async fn start<W: Workflow>(&mut self, workflow: W, id: &str, input: W::Input) -> Result<Handle, EngineError> {
        let handle = self.engine.start(workflow, id, input).await?;
        self.settle().await?;
        Ok(handle)
    }

    /// Sends event `name` with `payload` to execution `id`, as
    /// [`Engine::send_event`] does, then runs until nothing is due.
    pub async fn send_event(
        &mut self,
        id: &str,
        name: &str,
        payload: &(impl Serialize + ?Sized),
    ) -> Result<Delivery, EngineError> {
        let delivery = self.engine.send_event(id, name, payload).await;
        self.settle().await?;
        delivery
    }

    /// Moves the clock `by` forward, stopping at every timer, retry and event timeout due on
    /// the way to run what is due then, as a worker running all along would.
    pub async fn advance(&mut self, by: Duration) -> Result<(), EngineError> {
        let target = self.clock.now().saturating_add(by);
        loop {
            self.settle().await?;
            match self.next_due().await? {
                Some(at) if at <= target => self.clock.set(at),
                _ => break,
            }
        }
        self.clock.set(target);
        self.settle().await
    }

    /// Runs everything due now until nothing is; restarts the process whenever it crashed.
    pub async fn settle(&mut self) -> Result<(), EngineError> {
        loop {
            let ran = self.engine.worker(Self::WORKER).run_until_idle().await;
            if !self.process.is_dead() {
                return ran.map(drop);
            }
            self.restart().await?;
        }
    }

    /// Crashes the process now and starts a new one on the store alone, which picks up
    /// whatever is due.
    pub async fn crash_and_resume(&mut self) -> Result<(), EngineError> {
        self.restart().await?;
        self.settle().await
    }

    /// Arms a crash: the process dies right after it commits the checkpoint `at` of execution
    /// `id` (whichever operation of the harness gets there), and a new process resumes from
    /// the store alone.
    ///
    /// The commit itself applies (a crash after it); what the run would have done next is
    /// lost, the dead process's lease is given up as if it had expired, and the new process
    /// continues the execution from its last checkpoint.
    pub fn crash_and_resume_at(&mut self, id: &str, at: CrashAt) {
        self.process.arm(id, at);
    }

    /// Execution `id`'s status.
    pub async fn status(&self, id: &str) -> Result<ExecutionStatus, EngineError> {
        self.engine.status(id).await
    }

    /// Execution `id`'s history.
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        self.store.history(id).await
    }

    /// What execution `id` of `workflow` returned, or `None` while it has not finished.
    pub async fn result<W: Workflow>(
        &self,
        workflow: W,
        id: &str,
    ) -> Result<Option<Result<W::Output, W::Error>>, EngineError> {
        let status = self.engine.status(id).await?;
        if !matches!(status.status, Status::Succeeded | Status::Failed) {
            return Ok(None);
        }
        self.engine.result(workflow, id).await.map(Some)
    }

    /// Execution `id` as stored; [`StoreError::NotFound`] if there is none.
    pub async fn view(&self, id: &str) -> Result<ExecutionView, StoreError> {
        ExecutionView::load(&self.store, id).await?.ok_or_else(|| StoreError::NotFound(id.to_owned()))
    }

    /// The deterministic log of execution `id` ([`render::log`]): its history with every
    /// stored state, times as offsets from its start. Made for `insta::assert_snapshot!`.
    pub async fn render_log(&self, id: &str) -> Result<String, StoreError> {
        Ok(render::log(&self.view(id).await?))
    }

    /// What `durable show` prints for execution `id` ([`render::show`], with its last
    /// `last` events).
    pub async fn show(&self, id: &str, last: usize) -> Result<String, StoreError> {
        Ok(render::show(&self.view(id).await?, last))
    }

    /// Writes the state execution `id` stored at each of its points (the latest, for a point
    /// passed several times) into `dir` as golden states, one file per point:
    /// `<dir>/<workflow>/<point>.json`. Returns how many files were written; see
    /// [`check_golden_states`](super::check_golden_states).
    pub async fn save_golden_states(
        &self,
        id: &str,
        dir: impl AsRef<std::path::Path>,
    ) -> Result<usize, super::GoldenError> {
        let view = self.view(id).await?;
        let fingerprint = view.record.snapshot.as_ref().map(|s| s.fingerprint.clone());
        let fingerprint = match (fingerprint, self.store.workflow(&view.record.workflow, None).await?) {
            (Some(fingerprint), _) => fingerprint,
            (None, Some(info)) => info.fingerprint,
            (None, None) => return Err(super::GoldenError::Unregistered(view.record.workflow.clone())),
        };
        let states: Vec<super::GoldenState> = view
            .history
            .iter()
            .filter(|event| event.kind != crate::store::EventKind::ExecutionStarted)
            .filter_map(|event| {
                // Named by the state's own key: a wait stores one state while it waits
                // (`payment:waiting`) and another after it (`payment`).
                let state: serde_json::Value = serde_json::from_str(event.state.as_deref()?).ok()?;
                let key = state.as_object()?.keys().next()?.clone();
                Some(super::GoldenState {
                    workflow: view.record.workflow.clone(),
                    point: key,
                    fingerprint: fingerprint.clone(),
                    state: event.state.clone()?,
                })
            })
            .collect();
        super::golden::save(dir.as_ref(), &states)
    }

    /// What `durable graph` prints for `workflow`, with execution `id` marked if given.
    pub async fn graph(&self, workflow: &str, id: Option<&str>) -> Result<String, StoreError> {
        let missing = || StoreError::backend(format!("workflow `{workflow}` was never registered with the store"));
        let info = self.store.workflow(workflow, None).await?.ok_or_else(missing)?;
        let facts = info.facts().map_err(|error| StoreError::corrupt(workflow, error.to_string()))?;
        let marks = match id {
            Some(id) => Some(GraphMarks::of(&self.view(id).await?, &facts)),
            None => None,
        };
        Ok(render::graph(&facts, marks.as_ref()))
    }

    /// Replaces the process: a new engine on the store, the dead process's leases given up.
    async fn restart(&mut self) -> Result<(), EngineError> {
        let next = HarnessStore::new(self.store.clone());
        self.process.pass_trigger_to(&next);
        self.process = next;
        self.engine = build(&self.process, &self.clock, &self.registrations);
        self.crashes += 1;
        for record in self.store.list(ListFilter::default()).await? {
            if let Some(lease) = record.lease {
                self.store.release_lease(&record.id, &lease.token()).await?;
            }
        }
        Ok(())
    }

    /// The earliest wake-up time after now among unfinished executions.
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let now = self.clock.now();
        let records = self.store.list(ListFilter::default()).await?;
        let due = records.iter().filter(|r| !r.status.is_terminal()).filter_map(|r| r.wake_at).filter(|at| *at > now);
        Ok(due.min())
    }
}

/// An engine for a process on `store`, with every registered workflow.
fn build(store: &HarnessStore, clock: &ManualClock, registrations: &[Registration]) -> Engine<HarnessStore> {
    let builder = Engine::builder(store.clone()).clock(Arc::new(clock.clone()));
    let builder = registrations.iter().fold(builder, |builder, register| register(builder));
    match builder.build() {
        Ok(engine) => engine,
        Err(error) => panic!("the harness cannot build its engine: {error}"),
    }
}
