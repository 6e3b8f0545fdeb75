//! The engine: starts executions, delivers events, cancels, reports; and the [`Worker`] that
//! runs them.
//!
//! ```
//! use durable_core::prelude::*;
//! use durable_core::{Delivery, Engine, MemoryStore};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Payment { amount: u64 }
//!
//! #[durable]
//! async fn order(order_id: String) -> Result<String, WorkflowError> {
//!     let total = step!("price", price(&order_id).await)?;
//!     let payment: Payment = wait!("payment", event);
//!     Ok(format!("{order_id}: paid {} of {total}", payment.amount))
//! }
//!
//! async fn price(_order_id: &str) -> Result<u64, std::io::Error> { Ok(30) }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let engine = Engine::builder(MemoryStore::new()).register(order).build()?;
//! let worker = engine.worker("w-1");
//! engine.start(order, "o-1", "o-1".to_owned()).await?;
//! worker.run_until_idle().await?; // runs `price`, then suspends waiting for `payment`
//!
//! // A payload of the wrong type is refused to the sender; the execution keeps waiting.
//! assert!(engine.send_event("o-1", "payment", &"thirty").await.is_err());
//! let delivery = engine.send_event("o-1", "payment", &Payment { amount: 30 }).await?;
//! assert_eq!(delivery, Delivery::Delivered);
//! worker.run_until_idle().await?;
//! assert_eq!(engine.result(order, "o-1").await?, Ok("o-1: paid 30 of 30".to_owned()));
//! # Ok::<(), durable_core::EngineError>(())
//! # }).unwrap();
//! ```
//!
//! The engine is generic over its [`Store`] rather than holding a `dyn Store`: the trait's
//! methods return `impl Future`, which keeps backends free of boxing but makes the trait not
//! object safe. Everything else is erased, so a `SqliteStore` engine is compiled once whatever
//! workflows it runs: workflows are registered as trait objects (input and output as JSON) and
//! each run talks to them through `&mut dyn Host`.
//!
//! Every history event the engine commits is also a `tracing` event, emitted once the commit
//! has applied: a message in business terms ("order_workflow o-42 waiting for event payment
//! (timeout in 2d 0h)") with the fields `event`, `point`, `file`, `line` and `attempt`, inside a
//! span `execution` with the fields `workflow`, `execution_id` and, for a workflow with
//! `#[durable(key = ..)]` inputs, `keys` (`order_id=o-42`, every key) and `business_key` (the
//! first key's value). Span fields are fixed when the program is compiled, so keys of any name
//! share the `keys` field rather than each getting its own. In a run, the span also has `worker`,
//! the name of the worker running it. Failures are `WARN`, the rest `INFO`.
//! `durable_core::logging` (feature `logging`) prints them as text or JSON.
//!
//! Inside a run, each step attempt has a span of its own (named `step`, with `otel.name` the
//! step's name, and `attempt`, `semantics`, `outcome`, `error`, `took_ms`, `file`, `line`, the
//! keys and `worker`), which is the current span while the body runs, so that the body's own
//! lines nest under it; the end of a wait is logged inside a span `wait` with `waited_ms`. To
//! know when a step's body runs, the run yields once before and after it, only when a
//! subscriber wants that span.
//!
//! The engine also registers each workflow's static facts with the store
//! ([`Store::register_workflow`]) before it first starts, runs or signals an execution, so that
//! the `durable` command line can draw any stored execution's workflow without its code.

use crate::callback::{self, CallbackFailure};
use crate::store::ListFilter;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, OnceCell};

use self::commit::Committer;
use self::registry::Registry;
use crate::limits;
use crate::step::Retry;
use crate::store::{
    Commit, Created, EventKind, ExecutionRecord, HistoryEvent, NewExecution, Status, Store, StoreError, WorkflowInfo,
};
use crate::time::{SharedClock, SystemClock};
use crate::workflow::Workflow;

mod children;
mod commit;
mod error;
mod events;
pub mod hooks;
mod host;
mod lease;
mod operate;
mod registry;
mod run;
mod status;
mod trace;
mod worker;

pub use self::error::EngineError;
pub use self::hooks::{
    Attempt, AttemptOutcome, CommitBatch, Hooks, Outcome, Resumption, RunCause, RunInfo, SuspendReason, Suspension,
    TracingHooks, WaitEnd, WaitKind, WaitOutcome, WaitStart,
};
pub use self::operate::{MAX_REASON_BYTES, MAX_WHO_BYTES, Operator, PURGE_BATCH, PurgeFilter};
pub use self::status::{Delivery, EngineStats, ExecutionStatus, Handle};
pub(crate) use self::trace::human;
pub use self::worker::{WakeSource, Worker};

/// Starts, signals, cancels and reports executions of the workflows registered with it.
///
/// Cheap to clone: clones share everything. Build it with [`Engine::builder`]; run executions
/// with a [`Worker`] from [`Engine::worker`]. See the [module docs](self) for an example.
pub struct Engine<S: Store> {
    shared: Arc<Shared<S>>,
}

impl<S: Store> Clone for Engine<S> {
    fn clone(&self) -> Self {
        Engine { shared: Arc::clone(&self.shared) }
    }
}

/// What every clone of an engine, its workers and its runs share.
pub(crate) struct Shared<S> {
    store: Arc<S>,
    clock: SharedClock,
    registry: Registry,
    committer: Committer,
    lease: Duration,
    poll_interval: Duration,
    /// The retry policy of steps given none, by workflow, and for all others.
    retry_by_workflow: HashMap<&'static str, Retry>,
    default_retry: Retry,
    /// The lease owner of runs started by a sender (an event delivered at once).
    name: String,
    /// New work may be due: wakes a waiting worker.
    work: Notify,
    /// An execution finished: wakes `result` callers.
    finished: Notify,
    /// Executions that cannot run, by id: the version that failed, why, and how often.
    problems: Mutex<HashMap<String, (u64, String, u32)>>,
    running: AtomicUsize,
    /// The executions this engine's runs hold leases on.
    active: lease::Active,
    /// What watches the runs: the `tracing` events, then the user's hooks.
    observers: Arc<hooks::Observers>,
    /// Executions this engine cannot run and holds aside under a long lease, with that lease:
    /// given up when a worker of the engine shuts down, so that another build can take them.
    parked: Mutex<HashMap<String, crate::store::LeaseToken>>,
    /// Set once the workflows' facts are registered with the store.
    registered: OnceCell<()>,
    /// The builds this engine runs, `(workflow, layout fingerprint)`: what its workers claim.
    layouts: Vec<(String, String)>,
    /// A registration failed and was reported.
    registration_warned: AtomicBool,
}

impl<S> Shared<S> {
    /// `new` with its business keys, read from its input by its workflow's facts.
    fn keyed(&self, new: NewExecution) -> NewExecution {
        let Some(workflow) = self.registry.get(&new.workflow) else { return new };
        let keys = workflow.facts().key_values(&new.input).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        new.with_keys(keys)
    }
}

impl<S: Store> Shared<S> {
    /// Registers the facts of every workflow with the store before the engine first starts,
    /// runs or signals an execution, so that tools can draw any execution's workflow
    /// ([`EngineBuilder::build`] cannot: it is not async). Once per engine; tried again at the
    /// next call after a failure, which is reported but stops nothing: the facts serve tools,
    /// not executions.
    async fn register_facts(&self) {
        let register = || async {
            for facts in self.registry.facts() {
                self.store.register_workflow(WorkflowInfo::new(facts)).await?;
            }
            Ok::<(), StoreError>(())
        };
        if let Err(error) = self.registered.get_or_try_init(register).await {
            if self.registration_warned.swap(true, Ordering::Relaxed) {
                tracing::debug!(%error, "cannot register the workflows' facts with the store; will try again");
            } else {
                tracing::warn!(%error, "cannot register the workflows' facts with the store (tools such as `durable graph` need them); will try again");
            }
        }
    }
}

impl<S> Shared<S> {
    /// The retry policy of a step of `workflow` given none.
    fn default_retry(&self, workflow: &str) -> Retry {
        self.retry_by_workflow.get(workflow).unwrap_or(&self.default_retry).clone()
    }

    /// Records that `record` cannot run; returns how often its current version failed.
    fn note_problem(&self, record: &ExecutionRecord, message: &str) -> u32 {
        let mut problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = problems.entry(record.id.clone()).or_insert((record.version, String::new(), 0));
        if entry.0 != record.version {
            *entry = (record.version, String::new(), 0);
        }
        entry.1 = message.to_owned();
        entry.2 += 1;
        entry.2
    }

    /// How logs name `record`'s execution.
    fn subject(&self, record: &ExecutionRecord) -> trace::Subject {
        let facts = self.registry.get(&record.workflow).map(|workflow| workflow.facts());
        trace::Subject::new(&record.workflow, &record.id, facts, &record.input)
    }

    /// Keeps `id`'s problem and its count for `version`, which the run's own commit just wrote
    /// (so that the next failure of that version counts on from it).
    fn problem_moved(&self, id: &str, version: u64) {
        let mut problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = problems.get_mut(id) {
            entry.0 = version;
        }
    }

    fn clear_problem(&self, id: &str) {
        self.problems.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        self.parked.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }

    fn problem(&self, record: &ExecutionRecord) -> Option<String> {
        let problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        problems.get(&record.id).filter(|p| p.0 == record.version).map(|p| p.1.clone())
    }

    fn running_guard(&self) -> RunningGuard<'_> {
        self.running.fetch_add(1, Ordering::Relaxed);
        RunningGuard(&self.running)
    }
}

/// Counts a run in memory while it lives.
struct RunningGuard<'a>(&'a AtomicUsize);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Configures an [`Engine`]; made by [`Engine::builder`].
pub struct EngineBuilder<S: Store> {
    store: S,
    clock: SharedClock,
    registry: Registry,
    duplicate: Option<&'static str>,
    lease: Duration,
    poll_interval: Duration,
    max_batch: usize,
    default_retry: Retry,
    retry_by_workflow: HashMap<&'static str, Retry>,
    observers: hooks::Observers,
}

impl<S: Store> EngineBuilder<S> {
    /// Reads durable time from `clock` (default: [`SystemClock`]). Tests pass a
    /// [`ManualClock`](crate::ManualClock) so that timers fire without sleeping.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Registers a workflow under its name (`facts().name`), so this engine can start and run it.
    pub fn register<W: Workflow>(mut self, workflow: W) -> Self {
        if let Err(name) = self.registry.add(workflow) {
            self.duplicate.get_or_insert(name);
        }
        self
    }

    /// The retry policy of every step that was given none (`step!` without `retry = ..`), in
    /// workflows without a default of their own ([`EngineBuilder::default_retry_for`]).
    ///
    /// Without it, such a step has one attempt ([`Retry::none`]): retrying is a decision about
    /// the step's side effects (is it safe to run twice?), so durable does not make it behind
    /// the user's back. Services whose steps are idempotent can make retrying the norm here:
    ///
    /// ```
    /// use durable_core::prelude::*;
    /// use durable_core::{Engine, MemoryStore};
    /// use std::time::Duration;
    ///
    /// #[durable]
    /// async fn sync_account(id: u64) -> Result<u64, WorkflowError> {
    ///     let balance = step!("fetch", fetch(id).await)?; // retried as the engine says
    ///     let audited = step!("audit", retry = Retry::none(), audit(balance).await)?; // never
    ///     Ok(audited)
    /// }
    /// # async fn fetch(id: u64) -> Result<u64, std::io::Error> { Ok(id) }
    /// # async fn audit(n: u64) -> Result<u64, std::io::Error> { Ok(n) }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = Engine::builder(MemoryStore::new())
    ///     .register(sync_account)
    ///     .default_retry(Retry::exponential(5).initial_delay(Duration::from_millis(200)).full_jitter())
    ///     .build()?;
    /// # Ok::<(), durable_core::EngineError>(())
    /// # }).unwrap();
    /// ```
    pub fn default_retry(mut self, retry: Retry) -> Self {
        self.default_retry = retry;
        self
    }

    /// The retry policy of every step of `workflow` that was given none; see
    /// [`EngineBuilder::default_retry`].
    pub fn default_retry_for<W: Workflow>(mut self, workflow: W, retry: Retry) -> Self {
        self.retry_by_workflow.insert(workflow.facts().name, retry);
        self
    }

    /// Calls `hooks` as executions run (see [`Hooks`]), after the engine's own `tracing`
    /// events and any hooks registered before.
    pub fn hooks(mut self, hooks: impl Hooks) -> Self {
        self.observers.add(hooks);
        self
    }

    /// How long a worker's claim on an execution lasts without renewal (default 30 s). Running
    /// executions renew it every third of it; when a worker dies, others take its executions
    /// over once it expires.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// How often an idle worker looks for due work (default 250 ms). Executions this engine
    /// starts or signals wake a worker of the same engine at once.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(1));
        self
    }

    /// The most commits one store transaction holds (default 512).
    pub fn max_batch(mut self, commits: usize) -> Self {
        self.max_batch = commits.max(1);
        self
    }

    /// Builds the engine. Must run inside a tokio runtime: it spawns the group-commit task.
    ///
    /// Fails if two different workflows were registered with one name, or outside a runtime.
    pub fn build(self) -> Result<Engine<S>, EngineError> {
        if let Some(name) = self.duplicate {
            return Err(EngineError::DuplicateWorkflow(name));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(EngineError::NoRuntime);
        }
        let store = Arc::new(self.store);
        let observers = Arc::new(self.observers);
        let layouts =
            self.registry.facts().map(|facts| (facts.name.to_owned(), facts.fingerprint.to_owned())).collect();
        let shared = Shared {
            committer: Committer::spawn(Arc::clone(&store), self.max_batch, Arc::clone(&observers)),
            store,
            clock: self.clock,
            registry: self.registry,
            lease: self.lease,
            poll_interval: self.poll_interval,
            default_retry: self.default_retry,
            retry_by_workflow: self.retry_by_workflow,
            name: format!("engine-{}-{:08x}", std::process::id(), rand::random::<u32>()),
            work: Notify::new(),
            finished: Notify::new(),
            problems: Mutex::new(HashMap::new()),
            running: AtomicUsize::new(0),
            active: lease::Active::default(),
            observers,
            parked: Mutex::new(HashMap::new()),
            registered: OnceCell::new(),
            registration_warned: AtomicBool::new(false),
            layouts,
        };
        Ok(Engine { shared: Arc::new(shared) })
    }
}

impl<S: Store> Engine<S> {
    /// A builder for an engine on `store`.
    pub fn builder(store: S) -> EngineBuilder<S> {
        EngineBuilder {
            store,
            clock: Arc::new(SystemClock),
            registry: Registry::default(),
            duplicate: None,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
            max_batch: 512,
            default_retry: Retry::none(),
            retry_by_workflow: HashMap::new(),
            observers: hooks::Observers::default(),
        }
    }

    /// A worker named `name` that runs this engine's workflows. The name must be unique among
    /// the workers sharing the store (it owns their leases): a host name plus a number, say.
    pub fn worker(&self, name: impl Into<String>) -> Worker<S> {
        Worker::new(self.clone(), name.into())
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.shared.store
    }

    /// The names of the registered workflows, sorted.
    pub fn workflows(&self) -> Vec<&'static str> {
        self.shared.registry.names()
    }

    /// Counters: group commits so far and runs in memory now.
    pub fn stats(&self) -> EngineStats {
        let commits = self.shared.committer.stats();
        EngineStats {
            batches: commits.batches,
            commits: commits.commits,
            largest_batch: commits.largest_batch,
            running: self.shared.running.load(Ordering::Relaxed),
            start_batches: commits.start_batches,
            starts: commits.starts,
        }
    }

    async fn load(&self, id: &str) -> Result<ExecutionRecord, EngineError> {
        self.shared.store.load(id).await?.ok_or_else(|| EngineError::UnknownExecution(id.to_owned()))
    }

    /// Starts execution `id` of `workflow` with `input`, idempotently: if execution `id`
    /// exists, nothing changes and its handle is returned ([`Handle::is_new`] is `false`),
    /// whatever its input. Workers run it from there.
    ///
    /// Fails if `workflow` is not registered, or `id` belongs to another workflow.
    pub async fn start<W: Workflow>(
        &self,
        workflow: W,
        id: impl Into<String>,
        input: W::Input,
    ) -> Result<Handle, EngineError> {
        let id = id.into();
        limits::check_id(&id)?;
        let name = workflow.facts().name;
        self.registered(name)?;
        let input = serde_json::to_string(&input)
            .map_err(|error| EngineError::InvalidInput { workflow: name.to_owned(), message: error.to_string() })?;
        limits::check_input(&input)?;
        self.start_raw(name, id, input).await
    }

    /// Starts execution `id` of the workflow called `workflow` with `input` as JSON (for tools
    /// such as the command line); see [`Engine::start`]. The input must decode to the
    /// workflow's parameters (one value, a tuple of several as an array, or `null` for none).
    pub async fn start_json(&self, workflow: &str, id: impl Into<String>, input: &str) -> Result<Handle, EngineError> {
        let id = id.into();
        limits::check_workflow_name(workflow).and(limits::check_id(&id)).and(limits::check_input(input))?;
        let erased = self.registered(workflow)?;
        let name = erased.facts().name;
        if let Err(error) = erased.check_input(input) {
            return Err(EngineError::InvalidInput { workflow: name.to_owned(), message: error.to_string() });
        }
        self.start_raw(name, id, input.to_owned()).await
    }

    fn registered(&self, name: &str) -> Result<&Arc<dyn registry::ErasedWorkflow>, EngineError> {
        self.shared
            .registry
            .get(name)
            .ok_or_else(|| EngineError::UnknownWorkflow { name: name.to_owned(), known: self.shared.registry.names() })
    }

    async fn start_raw(&self, name: &'static str, id: String, input: String) -> Result<Handle, EngineError> {
        self.shared.register_facts().await;
        let new = self.shared.keyed(NewExecution::new(id.clone(), name, input, self.shared.clock.now()));
        let created = self.shared.committer.create(vec![new]).await.pop();
        let created = created.unwrap_or_else(|| Err(StoreError::backend("no answer to a start")))?;
        self.started(name, id, created)
    }

    /// Starts many executions of `workflow` at once, each `(id, input)` as by [`Engine::start`]
    /// (idempotently by id), and returns their handles in order.
    ///
    /// The starts go to the store together, a few hundred per transaction, so a bulk start costs
    /// a few syncs rather than one per execution. (Separate [`Engine::start`] calls from many
    /// tasks share transactions the same way.) Every id and input is checked first: if one is
    /// invalid, nothing is started.
    ///
    /// ```
    /// use durable_core::prelude::*;
    /// use durable_core::{Engine, MemoryStore};
    ///
    /// #[durable]
    /// async fn welcome(user: u64) -> Result<u64, WorkflowError> {
    ///     let sent = step!("send", send(user).await)?;
    ///     Ok(sent)
    /// }
    /// # async fn send(user: u64) -> Result<u64, std::io::Error> { Ok(user) }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = Engine::builder(MemoryStore::new()).register(welcome).build()?;
    /// let handles = engine.start_many(welcome, (1..=3).map(|user| (format!("w-{user}"), user))).await?;
    /// assert_eq!(handles.iter().filter(|handle| handle.is_new()).count(), 3);
    /// engine.worker("w").run_until_idle().await?;
    /// assert_eq!(engine.result(welcome, "w-2").await?, Ok(2));
    /// # Ok::<(), durable_core::EngineError>(())
    /// # }).unwrap();
    /// ```
    pub async fn start_many<W: Workflow, I: Into<String>>(
        &self,
        workflow: W,
        executions: impl IntoIterator<Item = (I, W::Input)>,
    ) -> Result<Vec<Handle>, EngineError> {
        let name = workflow.facts().name;
        self.registered(name)?;
        let now = self.shared.clock.now();
        let mut news = Vec::new();
        for (id, input) in executions {
            let id = id.into();
            limits::check_id(&id)?;
            let input = serde_json::to_string(&input)
                .map_err(|error| EngineError::InvalidInput { workflow: name.to_owned(), message: error.to_string() })?;
            limits::check_input(&input)?;
            news.push(self.shared.keyed(NewExecution::new(id, name, input, now)));
        }
        self.shared.register_facts().await;
        let ids: Vec<String> = news.iter().map(|new| new.id.clone()).collect();
        let created = self.shared.committer.create(news).await;
        ids.into_iter().zip(created).map(|(id, created)| self.started(name, id, created?)).collect()
    }

    /// The handle of execution `id` that a start of workflow `name` found, after reporting a
    /// new one.
    fn started(&self, name: &'static str, id: String, created: Created) -> Result<Handle, EngineError> {
        let is_new = created.is_new();
        let record = created.into_record();
        if record.workflow != name {
            return Err(EngineError::WorkflowMismatch { id, existing: record.workflow, requested: name.to_owned() });
        }
        if is_new {
            let subject = self.shared.subject(&record);
            let started = HistoryEvent::new(record.created_at, EventKind::ExecutionStarted);
            let name = subject.name();
            let info = RunInfo { workflow: &record.workflow, execution_id: &record.id, name: &name, worker: None };
            subject.span().in_scope(|| self.shared.observers.event(&info, &started));
            self.shared.work.notify_one();
        }
        Ok(Handle::new(record.id, record.workflow, is_new))
    }

    /// Where execution `id` is: its status, last checkpoint, what it waits for, and a problem
    /// this engine met running it (a corrupt or incompatible state), if any.
    pub async fn status(&self, id: &str) -> Result<ExecutionStatus, EngineError> {
        limits::check_id(id)?;
        let record = self.load(id).await?;
        let problem = self.shared.problem(&record);
        Ok(ExecutionStatus::new(record, problem))
    }

    /// Execution `id`'s history, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, EngineError> {
        limits::check_id(id)?;
        Ok(self.shared.store.history(id).await?)
    }

    /// Waits until execution `id` of `workflow` finishes and returns what its function
    /// returned. Wakes when a run of this engine finishes it, and checks the store every poll
    /// interval for executions finished elsewhere.
    ///
    /// Fails if the execution is unknown, belongs to another workflow, or was cancelled.
    pub async fn result<W: Workflow>(&self, workflow: W, id: &str) -> Result<Result<W::Output, W::Error>, EngineError> {
        limits::check_id(id)?;
        let name = workflow.facts().name;
        loop {
            let finished = self.shared.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            let record = self.load(id).await?;
            if record.workflow != name {
                let (existing, requested) = (record.workflow, name.to_owned());
                return Err(EngineError::WorkflowMismatch { id: id.to_owned(), existing, requested });
            }
            match record.status {
                Status::Succeeded | Status::Failed => {
                    let output = record.output.unwrap_or_default();
                    return serde_json::from_str(&output).map_err(|error| EngineError::BadOutput {
                        id: id.to_owned(),
                        workflow: name,
                        message: error.to_string(),
                    });
                }
                Status::Cancelled => return Err(EngineError::Cancelled(id.to_owned())),
                Status::Running | Status::Suspended => {}
            }
            tokio::select! {
                () = &mut finished => {}
                () = tokio::time::sleep(self.shared.poll_interval) => {}
            }
        }
    }

    /// Cancels execution `id`: it becomes [`Status::Cancelled`] for good. A worker running it
    /// stops at its next commit (its step in progress, if any, finishes first). Its unfinished
    /// child workflows are cancelled with it, and theirs in turn; a parent waiting for it is told
    /// (its wait evaluates to [`ChildError::Cancelled`](crate::ChildError::Cancelled)).
    ///
    /// Fails if the execution is unknown or has already finished.
    pub async fn cancel(&self, id: &str) -> Result<(), EngineError> {
        self.cancel_tree(id, None).await
    }

    /// Cancels execution `id` and leaves its child workflows running; see [`Engine::cancel`].
    pub async fn cancel_leaving_children(&self, id: &str) -> Result<(), EngineError> {
        self.cancel_with(id, None).await
    }

    /// Cancels execution `id` and its unfinished children, and theirs, each with `detail`.
    pub(crate) async fn cancel_tree(&self, id: &str, detail: Option<String>) -> Result<(), EngineError> {
        self.cancel_with(id, detail.clone()).await?;
        let mut parents = vec![id.to_owned()];
        while let Some(parent) = parents.pop() {
            let filter = ListFilter { parent: Some(parent), ..ListFilter::default() };
            for child in self.shared.store.list(filter).await? {
                if child.status.is_terminal() {
                    continue;
                }
                match self.cancel_with(&child.id, detail.clone()).await {
                    Ok(()) => parents.push(child.id),
                    // It finished in between.
                    Err(EngineError::Finished { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(())
    }

    /// Cancels execution `id`, with `detail` (who asked and why) on its `ExecutionCancelled`.
    async fn cancel_with(&self, id: &str, detail: Option<String>) -> Result<(), EngineError> {
        limits::check_id(id)?;
        loop {
            let record = self.load(id).await?;
            if record.status.is_terminal() {
                return Err(EngineError::Finished { id: id.to_owned(), status: record.status });
            }
            let now = self.shared.clock.now();
            let mut commit = Commit::on(&record, now);
            commit.status = Status::Cancelled;
            (commit.wake_at, commit.waiting_for, commit.step) = (None, None, None);
            commit.release_lease = true;
            let mut cancelled = HistoryEvent::new(now, EventKind::ExecutionCancelled);
            cancelled.detail.clone_from(&detail);
            commit.events.push(cancelled.clone());
            commit.notify.extend(children::ended_notice(&record, children::cancelled()));
            match self.shared.store.commit(commit).await {
                Ok(record) => {
                    let subject = self.shared.subject(&record);
                    let name = subject.name();
                    let info =
                        RunInfo { workflow: &record.workflow, execution_id: &record.id, name: &name, worker: None };
                    subject.span().in_scope(|| self.shared.observers.event(&info, &cancelled));
                    self.shared.finished.notify_waiters();
                    return Ok(());
                }
                // A worker committed in between: look again.
                Err(StoreError::Conflict { .. } | StoreError::Terminal(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Sends event `name` with `payload` to execution `id`; see [`Engine::send_event_json`].
    pub async fn send_event(
        &self,
        id: &str,
        name: &str,
        payload: &(impl Serialize + ?Sized),
    ) -> Result<Delivery, EngineError> {
        limits::check_id(id).and(limits::check_event_name(name))?;
        let payload = serde_json::to_string(payload).map_err(|error| EngineError::MalformedPayload {
            id: id.to_owned(),
            event: name.to_owned(),
            message: error.to_string(),
        })?;
        limits::check_payload(&payload)?;
        events::send(self, id, name, &payload, None).await
    }

    /// Sends event `name` with `payload` (JSON) to execution `id`.
    ///
    /// If the execution is suspended waiting for exactly this event and its workflow is
    /// registered here, the event is delivered at once: the payload is decoded to the type the
    /// workflow expects, and a payload that does not decode is refused with
    /// [`EngineError::EventRejected`] while nothing is stored. Otherwise (the workflow has not
    /// reached its `wait!` yet, or a worker is running it) the event is kept in the execution's
    /// inbox and consumed when the workflow waits for it; a payload that does not decode then is
    /// recorded as `EventRejected` in the history and the workflow keeps waiting.
    ///
    /// The deadline decides: if the execution waits for this event with a timeout that has
    /// passed when the event arrives (by this engine's clock), the event is refused with
    /// [`EngineError::DeadlinePassed`] and nothing is stored, even if no worker has acted on the
    /// timeout yet. An event kept in the inbox is consumed only by a wait whose deadline is
    /// later than the event's arrival.
    ///
    /// Fails if `payload` is not JSON, the execution is unknown or has finished, or its
    /// workflow (when registered here) has no `wait!` for an event called `name`
    /// ([`EngineError::UnknownEvent`]: the event could never be consumed).
    pub async fn send_event_json(&self, id: &str, name: &str, payload: &str) -> Result<Delivery, EngineError> {
        limits::check_id(id).and(limits::check_event_name(name)).and(limits::check_payload(payload))?;
        events::send(self, id, name, payload, None).await
    }

    /// Completes the callback whose token is `token` with `result`: a value of the type the
    /// workflow's `wait!(name, callback = ..)` expects, or a [`CallbackFailure`] it receives as
    /// [`CallbackError::Failed`](crate::CallbackError::Failed).
    ///
    /// Delivered as an event is: at once if the execution is suspended at the wait (a payload
    /// that does not decode is refused with [`EngineError::EventRejected`] and the wait goes
    /// on), else through its inbox. The deadlines decide: a completion after the wait's timeout
    /// or heartbeat window is not taken.
    ///
    /// Fails with [`EngineError::UnknownCallback`], changing nothing, for a string that is no
    /// token, a token of an unknown or finished execution, and one whose callback was completed
    /// already or is not (or no longer) awaited.
    pub async fn complete_callback<T: Serialize + ?Sized>(
        &self,
        token: &str,
        result: Result<&T, CallbackFailure>,
    ) -> Result<Delivery, EngineError> {
        let encoded = match result {
            Ok(value) => serde_json::to_value(value).map(|value| serde_json::json!({ "Ok": value })),
            Err(failure) => serde_json::to_value(failure).map(|failure| serde_json::json!({ "Err": failure })),
        };
        let payload = encoded.map(|json| json.to_string()).map_err(|error| EngineError::MalformedPayload {
            id: callback::execution_of(token).unwrap_or_default(),
            event: "callback".to_owned(),
            message: error.to_string(),
        })?;
        limits::check_payload(&payload)?;
        let (id, name) = self.awaited_callback(token).await?;
        events::send_callback(self, &id, &name, &payload).await
    }

    /// Records a heartbeat of the callback whose token is `token`: the external system is still
    /// working on it. A wait with `heartbeat = d` times out with
    /// [`CallbackError::HeartbeatTimedOut`](crate::CallbackError::HeartbeatTimedOut) when no
    /// heartbeat came for `d`. Fails as [`Engine::complete_callback`] does for a token that is
    /// not awaited.
    pub async fn heartbeat_callback(&self, token: &str) -> Result<(), EngineError> {
        let (id, _) = self.awaited_callback(token).await?;
        let now = self.shared.clock.now();
        match self.shared.store.send_event(&id, &callback::heartbeat_name(token), "null", now).await {
            Ok(_) => Ok(()),
            Err(StoreError::Terminal(_) | StoreError::NotFound(_)) => {
                Err(unknown_callback(token, "its execution has finished"))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The execution that waits for the callback with `token`, and the event that completes it.
    async fn awaited_callback(&self, token: &str) -> Result<(String, String), EngineError> {
        let Some(id) = callback::execution_of(token) else {
            return Err(unknown_callback(token, "it is not a callback token"));
        };
        let record = match self.shared.store.load(&id).await? {
            Some(record) => record,
            None => return Err(unknown_callback(token, "no execution has it")),
        };
        if record.status.is_terminal() {
            return Err(unknown_callback(token, "its execution has finished"));
        }
        let name = callback::completion_name(token);
        if record.waiting_for.as_deref() != Some(name.as_str()) {
            return Err(unknown_callback(token, "its execution does not wait for it (unknown, or completed already)"));
        }
        Ok((id, name))
    }

    /// Sends event `name` with `payload` to execution `id` at most once per idempotency `key`:
    /// a send with a key this execution has seen before (from any process, consumed or not)
    /// stores nothing and answers [`Delivery::Duplicate`]. Use it for senders that retry (a
    /// webhook delivered twice, a request repeated after a timeout).
    ///
    /// The event always goes through the execution's inbox (it is answered
    /// [`Delivery::Queued`], and a waiting execution is woken at once), so that the store can
    /// check the key in the same transaction that stores the event. Otherwise as
    /// [`Engine::send_event_json`].
    pub async fn send_event_once(
        &self,
        id: &str,
        name: &str,
        key: &str,
        payload: &(impl Serialize + ?Sized),
    ) -> Result<Delivery, EngineError> {
        let payload = serde_json::to_string(payload).map_err(|error| EngineError::MalformedPayload {
            id: id.to_owned(),
            event: name.to_owned(),
            message: error.to_string(),
        })?;
        limits::check_id(id).and(limits::check_event_name(name)).and(limits::check_event_key(key))?;
        limits::check_payload(&payload)?;
        events::send(self, id, name, &payload, Some(key)).await
    }
}

/// [`EngineError::UnknownCallback`] for `token`, which it shows masked.
fn unknown_callback(token: &str, why: &str) -> EngineError {
    EngineError::UnknownCallback { token: callback::masked(token), why: why.to_owned() }
}
