//! Process-level crash test: the `crash-worker` binary runs the crash workflows (see
//! `bin/crash_worker/workflows.rs`: steps with retries and injected transient failures,
//! at-most-once steps, timers, events sent early and late, `for`/`while`/`loop` loops) on a
//! SQLite file, and this test kills it with SIGKILL at seeded random points, restarts it, and
//! kills it again, until at least [`MIN_KILLS`] kills have happened across the suite. Each round
//! (a fresh database with [`EXECUTIONS`] executions) ends with a run that is left to finish.
//!
//! # Where the kills land
//!
//! Each run draws a kill plan from the seeded RNG: a delay after the process was spawned (most
//! land during start-up), a delay after it printed `@ready` (0.5 to 60 ms, log-uniform), or the
//! n-th occurrence of a phase marker it prints (`@begin`/`@end` of a step body, `@commit` once a
//! group commit is durable, `@claim`, `@idle` when every execution waits), optionally a little
//! later. The phase of a kill is the last marker the process printed before it died: start-up,
//! engine (claiming, between runs), inside a step body, after a body but before its checkpoint
//! was committed, after a commit (between a checkpoint and the next step), or idle (everything
//! in memory finished; executions wait on timers, retry delays or events). The report also counts
//! the kills that interrupted a step body (a `begin` without `end` in the effect log) and those
//! that left executions suspended on a timer or retry delay, or waiting for an event.
//!
//! Durable time in run `r` is the wall clock plus `r` times [`RESTART_JUMP`] (longer than the
//! lease): a restarted worker finds the dead worker's leases expired, as it would after waiting
//! for them, and timers due by then fire at once.
//!
//! Events are sent by a thread of this test through its own connection to the database, never
//! by a worker (a worker killed after sending could not know whether to send again), while
//! workers run and between them. Each is drawn "early" (sent as soon as the execution exists,
//! usually before it reaches its `wait!`) or "late" (sent once the execution is suspended waiting
//! for exactly this event); some are preceded by a payload of the wrong type, which must be
//! refused.
//!
//! # What is checked, per round
//!
//! - The last run exits 0 after every execution finished.
//! - Every execution succeeded, once: status `succeeded`, exactly one `ExecutionSucceeded` in
//!   its history, and its output equal to the output of the same execution run uninterrupted in
//!   this process on a `MemoryStore` with a virtual clock (the reference run), which itself
//!   equals the output computed from the input by hand.
//! - Its history has the reference's shape: the same `StepSucceeded`, `WaitSucceeded` and
//!   `EventReceived` events in the same order (each step instance and event exactly once; see
//!   [`shape`] for timers), one `EventRejected` per wrong-type payload sent, an empty inbox and
//!   no lease left.
//! - Between runs, no execution is lost: none is suspended with neither a wake-up time nor an
//!   awaited event (nothing would ever run it again).
//! - The effect log obeys the rule below.
//!
//! # The rule: completed steps are never re-run
//!
//! A step instance `K` is `(execution, step, iteration)`; its `StepSucceeded` is committed at
//! history seq `s` together with the checkpoint that holds its result, and the k-th
//! `StepSucceeded` of a step in an execution belongs to iteration k (every instance succeeds
//! once, which the shape check confirms). Before starting run `r` the test records each
//! execution's history length `h_r` (no worker is alive then, so it is exactly what earlier runs
//! committed). The run that committed `K` is `c(K)`, the last run with `h_r < s`. Then:
//!
//! 1. no effect line of `K` comes from a run after `c(K)`: once a step's result is committed, no
//!    later process runs its body again;
//! 2. the last effect line of `K` is `end ok`, from run `c(K)`, with the attempt its
//!    `StepSucceeded` records: the committed result is the one that body computed;
//! 3. within one run, each attempt of `K` begins at most once, and every `end` follows its
//!    `begin`: a body runs again only in a later process, that is after a kill interrupted it
//!    before its checkpoint was committed (rules 1 and 2 then bound how late);
//! 4. an at-most-once step's attempt begins at most once across all runs, and only after its
//!    `StepStarted` was committed: an interrupted attempt counts as failed, never runs twice.
//!
//! # Reproducing a failure
//!
//! `DURABLE_CRASH_SEED=<n> cargo test -p durable-tests --test crash -- --nocapture` (a failure
//! prints the seed and keeps its directory). The seed fixes every kill plan and event plan; the
//! exact instruction a delay lands on still depends on timing. `DURABLE_CRASH_KILLS` raises the
//! number of kills for a longer soak.

#[path = "bin/crash_worker/workflows.rs"]
mod workflows;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use durable_core::store::{EventKind, ExecutionRecord, HistoryEvent, ListFilter, Status, Store};
use durable_core::{Engine, ManualClock, MemoryStore, SqliteStore, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::runtime::Runtime;

/// The seed when `DURABLE_CRASH_SEED` is not set.
const DEFAULT_SEED: u64 = 20_240_601;
/// Kills across the suite (at least); `DURABLE_CRASH_KILLS` overrides it.
const MIN_KILLS: usize = 200;
/// Kills in one round at most, before its last run is left to finish.
const KILLS_PER_ROUND: usize = 50;
/// Executions per round.
const EXECUTIONS: usize = 16;
/// How far durable time moves forward at each restart: more than a lease.
const RESTART_JUMP: Duration = Duration::from_secs(workflows::LEASE.as_secs() + 1);
/// How long a run waits for the marker it should be killed at before it is killed anyway.
const MARKER_PATIENCE: Duration = Duration::from_millis(150);
/// How long a round's last run may take.
const LAST_RUN_LIMIT: Duration = Duration::from_secs(60);
/// How often the test looks for events to send.
const SEND_EVERY: Duration = Duration::from_millis(10);
/// Markers a run may be killed at, and how many of each at most.
const MARKERS: [(&str, usize); 5] = [("@begin", 12), ("@end", 12), ("@commit", 10), ("@claim", 2), ("@idle", 2)];

#[test]
fn crash() {
    let seed = std::env::var("DURABLE_CRASH_SEED").map_or(DEFAULT_SEED, |s| s.parse().expect("a numeric seed"));
    let min_kills = std::env::var("DURABLE_CRASH_KILLS").map_or(MIN_KILLS, |s| s.parse().expect("a number"));
    let mut guard = Guard { seed, dir: Some(tempfile::tempdir().expect("a temporary directory")) };
    let dir = guard.dir.as_ref().map(|d| d.path().to_owned()).unwrap_or_default();
    eprintln!("crash test: seed {seed} (set DURABLE_CRASH_SEED to change it), directory {}", dir.display());
    let began = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let reference = runtime.block_on(reference_run(&dir));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut totals = Totals::default();
    let mut round = 0;
    while totals.kills < min_kills {
        let budget = (min_kills - totals.kills).min(KILLS_PER_ROUND);
        let mut this = Round::new(&runtime, &dir, round, StdRng::seed_from_u64(rng.random()));
        this.run(budget);
        this.check(&reference, &mut totals);
        totals.rounds += 1;
        round += 1;
    }
    totals.elapsed = began.elapsed();
    eprintln!("{}", totals.report(seed));
    guard.dir.take();
}

/// Prints the seed and keeps the directory if the test fails.
struct Guard {
    seed: u64,
    dir: Option<tempfile::TempDir>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let kept = self.dir.take().map(|dir| dir.keep().display().to_string()).unwrap_or_default();
            eprintln!("crash test FAILED with seed {}: reproduce with DURABLE_CRASH_SEED={}", self.seed, self.seed);
            eprintln!("its databases and effect logs are kept in {kept}");
        }
    }
}

// ------------------------------------------------------------------ the reference run

/// What the uninterrupted run gives, per execution id.
struct Reference {
    outputs: HashMap<String, String>,
    shapes: HashMap<String, Vec<String>>,
}

/// Runs every execution uninterrupted in this process, on a `MemoryStore` with a virtual clock,
/// with every event sent before it starts.
async fn reference_run(dir: &Path) -> Reference {
    let store = MemoryStore::new();
    let log = dir.join("reference-effects.log");
    let effects = workflows::Effects::open(&log, 0, workflows::Lookup::Memory(store.clone()), false);
    workflows::install(effects.expect("the reference effect log opens"));
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let engine = workflows::register(Engine::builder(store.clone()))
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("the reference engine builds");
    let ids = workflows::start_all(&engine, EXECUTIONS).await.expect("the reference executions start");
    for (i, id) in ids.iter().enumerate() {
        for (name, payload) in workflows::events(i) {
            engine.send_event_json(id, name, &payload).await.expect("the reference events are queued");
        }
    }
    let worker = engine.worker("reference");
    for _ in 0..1_000 {
        worker.run_until_idle().await.expect("the reference worker runs");
        let records = store.list(ListFilter::default()).await.expect("the reference store lists");
        if records.iter().all(|r| r.status.is_terminal()) {
            break;
        }
        clock.advance(Duration::from_secs(1));
    }
    let mut reference = Reference { outputs: HashMap::new(), shapes: HashMap::new() };
    let mut histories = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let record = store.load(id).await.unwrap().expect("the reference execution exists");
        assert_eq!(record.status, Status::Succeeded, "reference run of {id}: {record:?}");
        let output = record.output.expect("a finished execution has an output");
        assert_eq!(output, workflows::expected_output(i), "reference output of {id}");
        let history = store.history(id).await.unwrap();
        reference.shapes.insert(id.clone(), shape(&history));
        reference.outputs.insert(id.clone(), output);
        histories.insert(id.clone(), history);
    }
    let lines = parse_effects(&log);
    let runs = [RunStart { number: 0, history: HashMap::new() }];
    let stats = check_effects(&lines, &histories, &runs, &workflows::AT_MOST_ONCE_STEPS)
        .unwrap_or_else(|error| panic!("reference run: {error}"));
    assert_eq!(stats.reruns + stats.interrupted, 0, "the reference run reran no body");
    reference
}

/// The events that must appear exactly as in the reference run: `kind point`, in order, with
/// a run of `WaitSucceeded` of one timer counted once. The engine records `WaitSucceeded` each
/// time a run resumes from a fired timer's state, which happens again until the checkpoint after
/// the next step: after a retry delay of that step (also in the reference run) or a kill.
fn shape(history: &[HistoryEvent]) -> Vec<String> {
    let kept = [EventKind::StepSucceeded, EventKind::WaitSucceeded, EventKind::EventReceived, EventKind::EventTimedOut];
    let mut shape: Vec<String> = Vec::new();
    for event in history.iter().filter(|e| kept.contains(&e.kind) || e.kind.as_str().starts_with("Execution")) {
        let entry = format!("{} {}", event.kind, event.point.as_deref().unwrap_or("-"));
        if event.kind != EventKind::WaitSucceeded || shape.last() != Some(&entry) {
            shape.push(entry);
        }
    }
    shape
}

/// How many `WaitSucceeded` events [`shape`] counted once with the one before.
fn repeated_waits(history: &[HistoryEvent]) -> usize {
    let waits = history.iter().filter(|e| e.kind == EventKind::WaitSucceeded).count();
    waits - shape(history).iter().filter(|entry| entry.starts_with("WaitSucceeded")).count()
}

// ------------------------------------------------------------------ rounds

/// What a round's store looks like between runs.
struct View {
    records: HashMap<String, ExecutionRecord>,
    histories: HashMap<String, Vec<HistoryEvent>>,
}

impl View {
    fn received(&self, id: &str, name: &str) -> usize {
        let history = self.histories.get(id).map(Vec::as_slice).unwrap_or_default();
        history.iter().filter(|e| e.kind == EventKind::EventReceived && e.point.as_deref() == Some(name)).count()
    }
}

/// An event the test sends to one execution.
struct Planned {
    id: String,
    name: &'static str,
    /// Its position among the events of this name the execution waits for.
    index: usize,
    payload: String,
    /// Sent as soon as the execution exists, rather than once it waits for it.
    early: bool,
    /// Preceded by a payload of the wrong type.
    bad_first: bool,
    sent: bool,
}

/// When a run is killed.
#[derive(Clone, Copy, Debug)]
enum KillPlan {
    AfterSpawn(Duration),
    AfterReady(Duration),
    AtMarker { marker: &'static str, nth: usize, extra: Duration },
}

impl KillPlan {
    fn draw(rng: &mut StdRng) -> Self {
        let log_uniform = |rng: &mut StdRng, low: f64, high: f64| {
            Duration::from_secs_f64((low.ln() + rng.random::<f64>() * (high.ln() - low.ln())).exp() / 1_000.0)
        };
        match rng.random_range(0..100) {
            0..20 => KillPlan::AfterSpawn(log_uniform(rng, 1.0, 25.0)),
            20..55 => KillPlan::AfterReady(log_uniform(rng, 0.5, 60.0)),
            _ => {
                let (marker, most) = MARKERS[rng.random_range(0..MARKERS.len())];
                let extra = [0, 0, 0, 100, 500, 2_000][rng.random_range(0..6)];
                KillPlan::AtMarker { marker, nth: rng.random_range(1..=most), extra: Duration::from_micros(extra) }
            }
        }
    }
}

/// Where a killed run was, by the last marker it printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Startup,
    Engine,
    InStepBody,
    BeforeCommit,
    AfterCommit,
    Idle,
}

impl Phase {
    fn of(lines: &[String]) -> Self {
        let last = lines.iter().rev().find(|line| line.starts_with('@'));
        match last.and_then(|line| line.split(' ').next()) {
            None | Some("@start") => Phase::Startup,
            Some("@begin") => Phase::InStepBody,
            Some("@end") => Phase::BeforeCommit,
            Some("@commit") => Phase::AfterCommit,
            Some("@idle") => Phase::Idle,
            Some(_) => Phase::Engine,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Phase::Startup => "during start-up (before @ready)",
            Phase::Engine => "in the engine (claiming, starting runs)",
            Phase::InStepBody => "inside a step body",
            Phase::BeforeCommit => "after a step body, before its checkpoint committed",
            Phase::AfterCommit => "after a commit, before the next step",
            Phase::Idle => "idle: everything in memory done, executions waiting",
        }
    }
}

/// What the test knew when run `number` started: each execution's history length.
struct RunStart {
    number: u32,
    history: HashMap<String, u64>,
}

/// How a run ended.
enum Ended {
    Killed(Phase),
    Finished(Vec<String>),
}

struct Round<'a> {
    runtime: &'a Runtime,
    index: usize,
    database: PathBuf,
    effects: PathBuf,
    store: SqliteStore,
    rng: StdRng,
    plan: Vec<Planned>,
    starts: Vec<RunStart>,
    phases: BTreeMap<Phase, usize>,
    kills: usize,
    killed_waiting_timer: usize,
    killed_waiting_event: usize,
    last_run: Vec<String>,
}

impl<'a> Round<'a> {
    fn new(runtime: &'a Runtime, root: &Path, index: usize, mut rng: StdRng) -> Self {
        let dir = root.join(format!("round-{index}"));
        std::fs::create_dir_all(&dir).expect("the round's directory");
        let database = dir.join("durable.db");
        let store = SqliteStore::create(&database).expect("the test creates the round's database");
        let mut plan = Vec::new();
        for i in 0..EXECUTIONS {
            let (id, _, _) = workflows::execution(i);
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (name, payload) in workflows::events(i) {
                let index = seen.entry(name).or_default();
                let (early, bad_first) = (rng.random_bool(0.5), rng.random_bool(0.25));
                plan.push(Planned { id: id.clone(), name, index: *index, payload, early, bad_first, sent: false });
                *index += 1;
            }
        }
        Round {
            runtime,
            index,
            effects: dir.join("effects.log"),
            database,
            store,
            rng,
            plan,
            starts: Vec::new(),
            phases: BTreeMap::new(),
            kills: 0,
            killed_waiting_timer: 0,
            killed_waiting_event: 0,
            last_run: Vec::new(),
        }
    }

    fn observe(&self) -> View {
        observe(self.runtime, &self.store)
    }

    /// Kills runs until `budget` kills or until a run finishes by itself, then lets one finish;
    /// a thread sends the planned events meanwhile.
    fn run(&mut self, budget: usize) {
        let plan = std::mem::take(&mut self.plan);
        let store = self.store.clone();
        let stop = AtomicBool::new(false);
        self.plan = std::thread::scope(|scope| {
            let sender = scope.spawn(|| send_events(&stop, &store, plan));
            let stopping = StopOnDrop(&stop);
            self.kill_and_restart(budget);
            drop(stopping);
            sender.join().expect("the event sender does not panic")
        });
    }

    fn kill_and_restart(&mut self, budget: usize) {
        let mut number = 0;
        loop {
            number += 1;
            let view = self.observe();
            check_not_lost(&view, self.index, number);
            if number > 1 {
                self.count_waiting(&view);
            }
            let history = view.histories.iter().map(|(id, h)| (id.clone(), h.len() as u64)).collect();
            self.starts.push(RunStart { number, history });
            let plan = (self.kills < budget).then(|| KillPlan::draw(&mut self.rng));
            match self.execute(number, plan) {
                Ended::Killed(phase) => {
                    self.kills += 1;
                    *self.phases.entry(phase).or_default() += 1;
                }
                Ended::Finished(lines) => {
                    self.last_run = lines;
                    return;
                }
            }
        }
    }

    /// After a kill: whether executions were left waiting on a timer or retry, or an event.
    fn count_waiting(&mut self, view: &View) {
        let suspended = view.records.values().filter(|r| r.status == Status::Suspended);
        let (events, timers): (Vec<_>, Vec<_>) = suspended.partition(|r| r.waiting_for.is_some());
        self.killed_waiting_timer += usize::from(!timers.is_empty());
        self.killed_waiting_event += usize::from(!events.is_empty());
    }

    /// Runs worker process `number`; kills it as `plan` says, or lets it finish.
    fn execute(&mut self, number: u32, plan: Option<KillPlan>) -> Ended {
        let offset = RESTART_JUMP.as_millis() * u128::from(number);
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-worker"))
            .arg(&self.database)
            .arg(&self.effects)
            .args([number.to_string(), EXECUTIONS.to_string(), offset.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the crash worker starts");
        let spawned = Instant::now();
        let (lines, stderr) = read_output(&mut child);
        let mut child = WorkerProcess(child);
        let mut seen = Vec::new();
        let (mut ready, mut hits) = (None, 0);
        let kill = loop {
            let deadline = match plan {
                None => spawned + LAST_RUN_LIMIT,
                Some(KillPlan::AfterSpawn(delay)) => spawned + delay,
                Some(KillPlan::AfterReady(delay)) => ready.map_or(spawned + MARKER_PATIENCE, |at| at + delay),
                Some(KillPlan::AtMarker { .. }) => spawned + MARKER_PATIENCE,
            };
            let now = Instant::now();
            if now >= deadline {
                if plan.is_none() {
                    let view = self.observe();
                    let unfinished: Vec<_> = view.records.values().filter(|r| !r.status.is_terminal()).collect();
                    panic!("round {} run {number} did not finish in {LAST_RUN_LIMIT:?}: {unfinished:#?}", self.index);
                }
                break true;
            }
            match lines.recv_timeout(deadline - now) {
                Ok(line) => {
                    if line == "@ready" {
                        ready = Some(Instant::now());
                    }
                    let hit = matches!(plan, Some(KillPlan::AtMarker { marker, .. }) if line.split(' ').next() == Some(marker));
                    seen.push(line);
                    if let (true, Some(KillPlan::AtMarker { nth, extra, .. })) = (hit, plan) {
                        hits += 1;
                        if hits == nth {
                            std::thread::sleep(extra);
                            break true;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break false,
            }
        };
        if kill {
            // SIGKILL; fails only if the process has already been reaped, which it has not.
            child.0.kill().expect("SIGKILL reaches the crash worker");
        }
        let status = child.0.wait().expect("the crash worker is reaped");
        seen.extend(lines.iter());
        let stderr = stderr.join().unwrap_or_default();
        match (status.signal(), status.success()) {
            (Some(9), _) => Ended::Killed(Phase::of(&seen)),
            (_, true) => Ended::Finished(seen),
            _ => panic!("round {} run {number} failed ({}): {stderr}\n{}", self.index, describe(status), tail(&seen)),
        }
    }

    /// The checks of a finished round (see the crate docs); adds its numbers to `totals`.
    fn check(&self, reference: &Reference, totals: &mut Totals) {
        let round = self.index;
        let view = self.observe();
        assert_eq!(view.records.len(), EXECUTIONS, "round {round}: executions in the store");
        assert!(self.last_run.contains(&"@done".to_owned()), "round {round}: the last run ends with @done");
        for i in 0..EXECUTIONS {
            let (id, _, _) = workflows::execution(i);
            let record = &view.records[&id];
            let history = &view.histories[&id];
            let expected = &reference.outputs[&id];
            assert_eq!(record.status, Status::Succeeded, "round {round}: {id} succeeded: {record:?}");
            assert_eq!(record.output.as_ref(), Some(expected), "round {round}: {id} has the uninterrupted output");
            let summary = format!("summary {id} succeeded {expected}");
            assert!(self.last_run.contains(&summary), "round {round}: the last run reports `{summary}`");
            let count = |kind: EventKind| history.iter().filter(|e| e.kind == kind).count();
            assert_eq!(count(EventKind::ExecutionSucceeded), 1, "round {round}: {id} succeeded exactly once");
            assert_eq!(count(EventKind::ExecutionStarted), 1, "round {round}: {id} started exactly once");
            assert_eq!(shape(history), reference.shapes[&id], "round {round}: {id} has the uninterrupted history");
            totals.repeated_waits += repeated_waits(history);
            let bad = self.plan.iter().filter(|p| p.id == id && p.bad_first).count();
            assert_eq!(count(EventKind::EventRejected), bad, "round {round}: {id} refused each wrong payload");
            assert!(self.plan.iter().filter(|p| p.id == id).all(|p| p.sent), "round {round}: {id} got its events");
            let inbox = self.runtime.block_on(self.store.inbox(&id)).expect("the test reads an inbox");
            assert!(inbox.is_empty(), "round {round}: {id} consumed every event: {inbox:?}");
            assert_eq!(record.lease, None, "round {round}: {id} holds no lease");
        }
        let lines = parse_effects(&self.effects);
        let effects = check_effects(&lines, &view.histories, &self.starts, &workflows::AT_MOST_ONCE_STEPS)
            .unwrap_or_else(|error| panic!("round {round}: {error}"));
        totals.add(self, &effects);
    }
}

/// Reads every execution and its history.
fn observe(runtime: &Runtime, store: &SqliteStore) -> View {
    runtime.block_on(async {
        let records = store.list(ListFilter::default()).await.expect("the test lists executions");
        let mut view = View { records: HashMap::new(), histories: HashMap::new() };
        for record in records {
            let history = store.history(&record.id).await.expect("the test reads a history");
            view.histories.insert(record.id.clone(), history);
            view.records.insert(record.id.clone(), record);
        }
        view
    })
}

/// Until `stop`, sends every planned event when it is due: an early one once its execution
/// exists, a late one once its execution is suspended waiting for exactly it; in order per
/// execution. Returns the plan with what was sent.
fn send_events(stop: &AtomicBool, store: &SqliteStore, mut plan: Vec<Planned>) -> Vec<Planned> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    while !stop.load(Ordering::Relaxed) {
        let view = observe(&runtime, store);
        let mut blocked: HashSet<String> = HashSet::new();
        for planned in &mut plan {
            if planned.sent || blocked.contains(&planned.id) {
                continue;
            }
            let waits = view.records.get(&planned.id).is_some_and(|record| {
                record.status == Status::Suspended
                    && record.waiting_for.as_deref() == Some(planned.name)
                    && view.received(&planned.id, planned.name) == planned.index
            });
            let exists = view.records.contains_key(&planned.id);
            if !((exists && planned.early) || waits) {
                blocked.insert(planned.id.clone());
                continue;
            }
            let now = Timestamp::from_millis(0);
            runtime.block_on(async {
                if planned.bad_first {
                    let wrong = r#"{"wrong":"type"}"#;
                    store.send_event(&planned.id, planned.name, wrong, now).await.expect("a wrong payload is queued");
                }
                store.send_event(&planned.id, planned.name, &planned.payload, now).await.expect("an event is queued");
            });
            planned.sent = true;
        }
        std::thread::sleep(SEND_EVERY);
    }
    plan
}

/// Sets the flag when dropped, also when the test panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Fails if an execution can never run again: suspended with neither a wake-up time nor an
/// awaited event, no worker would ever claim it.
fn check_not_lost(view: &View, round: usize, run: u32) {
    for record in view.records.values() {
        let lost = record.status == Status::Suspended && record.wake_at.is_none() && record.waiting_for.is_none();
        assert!(
            !lost,
            "EXECUTION LOST before round {round} run {run}: {} is suspended with nothing to wake it: {record:?}\n\
             history: {:#?}",
            record.id,
            view.histories[&record.id]
                .iter()
                .rev()
                .take(6)
                .map(|e| (e.seq, e.kind, e.point.clone(), e.detail.clone()))
                .collect::<Vec<_>>()
        );
    }
}

/// A worker process that is killed if the test panics, so that no worker outlives it.
struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Reads the child's stdout lines into a channel, and its stderr into a string.
fn read_output(child: &mut Child) -> (Receiver<String>, JoinHandle<String>) {
    let stdout = child.stdout.take().expect("a piped stdout");
    let mut stderr = child.stderr.take().expect("a piped stderr");
    let (send, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    (lines, errors)
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => "unknown status".to_owned(),
    }
}

fn tail(lines: &[String]) -> String {
    lines[lines.len().saturating_sub(20)..].join("\n")
}

// ------------------------------------------------------------------ the effect log

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    execution: String,
    step: String,
    iteration: u32,
}

#[derive(Clone, Debug)]
struct Effect {
    run: u32,
    key: Key,
    attempt: u32,
    /// `None` for `begin`, `Some(ok)` for `end`.
    end: Option<bool>,
}

fn parse_effects(path: &Path) -> Vec<Effect> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(text.is_empty() || text.ends_with('\n'), "{}: every effect line is whole", path.display());
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let parsed = match fields.as_slice() {
                [run, execution, step, iteration, attempt, what @ ..] => {
                    let end = match what {
                        ["begin"] => Some(None),
                        ["end", "ok"] => Some(Some(true)),
                        ["end", "err"] => Some(Some(false)),
                        _ => None,
                    };
                    match (run.parse(), iteration.parse(), attempt.parse(), end) {
                        (Ok(run), Ok(iteration), Ok(attempt), Some(end)) => {
                            let key = Key { execution: execution.to_string(), step: step.to_string(), iteration };
                            Some(Effect { run, key, attempt, end })
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            parsed.unwrap_or_else(|| panic!("{}: malformed effect line `{line}`", path.display()))
        })
        .collect()
}

/// What the effect log says about a round.
#[derive(Debug, Default)]
struct EffectStats {
    /// Step bodies that began.
    bodies: usize,
    /// Bodies that began again with an attempt that had begun in an earlier run.
    reruns: usize,
    /// Bodies that began and did not end in their run (a kill interrupted them).
    interrupted: usize,
    /// Bodies that returned the injected transient failure.
    failures: usize,
    /// Step instances whose body ran in more than one run.
    rerun_steps: usize,
    /// Runs whose kill interrupted at least one body.
    runs_killed_in_a_body: usize,
}

/// Returns the error `format!(..)` from the enclosing function unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(format!($($message)+));
        }
    };
}

/// Checks the rule of the crate docs (the effect log against the histories); see there.
/// `at_most_once` names the at-most-once steps.
fn check_effects(
    lines: &[Effect],
    histories: &HashMap<String, Vec<HistoryEvent>>,
    starts: &[RunStart],
    at_most_once: &[&str],
) -> Result<EffectStats, String> {
    // Each step instance's commit (seq, attempt), and the at-most-once attempts marked started.
    let mut committed: HashMap<Key, (u64, u32)> = HashMap::new();
    let mut started: HashSet<(Key, u32)> = HashSet::new();
    for (id, history) in histories {
        let mut successes: HashMap<&str, u32> = HashMap::new();
        for event in history {
            let Some(step) = event.point.as_deref() else { continue };
            let iteration = successes.get(step).copied().unwrap_or(0);
            let key = Key { execution: id.clone(), step: step.to_owned(), iteration };
            let attempt = event.attempt.unwrap_or(0);
            match event.kind {
                EventKind::StepStarted => {
                    started.insert((key, attempt));
                }
                EventKind::StepSucceeded => {
                    committed.insert(key, (event.seq, attempt));
                    successes.insert(step, iteration + 1);
                }
                _ => {}
            }
        }
    }
    let mut by_key: BTreeMap<&Key, Vec<&Effect>> = BTreeMap::new();
    for line in lines {
        by_key.entry(&line.key).or_default().push(line);
    }
    for key in committed.keys() {
        ensure!(by_key.contains_key(key), "{key:?} succeeded without its body running");
    }
    let mut stats = EffectStats::default();
    let mut killed_in_body: HashSet<u32> = HashSet::new();
    for (key, effects) in &by_key {
        let Some(&(seq, attempt)) = committed.get(*key) else {
            return Err(format!("a body of {key:?} ran but the step never succeeded: {effects:?}"));
        };
        // The run that committed it: the last one that started before the commit.
        let known = |start: &RunStart| start.history.get(&key.execution).copied().unwrap_or(0);
        let committer = starts.iter().filter(|start| known(start) < seq).map(|start| start.number).max();
        let Some(committer) = committer else {
            return Err(format!("{key:?}: no run started before its commit (seq {seq})"));
        };
        for effect in effects {
            ensure!(
                effect.run <= committer,
                "COMPLETED STEP RE-RUN: {key:?} was committed (history seq {seq}) by run {committer}, \
                 yet run {} ran its body again: {effects:?}",
                effect.run
            );
        }
        let last = effects.last().ok_or("a key has lines")?;
        ensure!(
            last.run == committer && last.end == Some(true) && last.attempt == attempt,
            "{key:?}: the committed result (attempt {attempt}, run {committer}) is not the one its last body \
             computed: {effects:?}"
        );
        // Within a run: each attempt begins once, each end follows its begin.
        let mut open: HashMap<(u32, u32), bool> = HashMap::new();
        let mut runs: HashSet<u32> = HashSet::new();
        let at_most_once = at_most_once.contains(&key.step.as_str());
        let mut attempts_begun: HashSet<u32> = HashSet::new();
        for effect in effects {
            let slot = (effect.run, effect.attempt);
            match effect.end {
                None => {
                    let again = open.insert(slot, true).is_some();
                    ensure!(!again, "{key:?}: attempt {} began twice in run {}: {effects:?}", slot.1, slot.0);
                    stats.bodies += 1;
                    runs.insert(effect.run);
                    if !attempts_begun.insert(effect.attempt) {
                        stats.reruns += 1;
                        ensure!(!at_most_once, "AT-MOST-ONCE VIOLATED: {key:?} attempt {} ran twice", effect.attempt);
                    }
                    let marked = started.contains(&((*key).clone(), effect.attempt));
                    ensure!(
                        !at_most_once || marked,
                        "{key:?}: at-most-once attempt {} ran without a StepStarted",
                        effect.attempt
                    );
                }
                Some(ok) => {
                    let begun = open.insert(slot, false) == Some(true);
                    ensure!(begun, "{key:?}: an end without its begin: {effects:?}");
                    stats.failures += usize::from(!ok);
                }
            }
        }
        for ((run, _), still_open) in open {
            if still_open {
                stats.interrupted += 1;
                killed_in_body.insert(run);
            }
        }
        stats.rerun_steps += usize::from(runs.len() > 1);
    }
    stats.runs_killed_in_a_body = killed_in_body.len();
    Ok(stats)
}

/// The rule checker itself, on made-up logs: it accepts a body re-run after a kill that came
/// before the commit, and refuses one after it, a committed result another body computed, and a
/// second run of an at-most-once attempt.
#[test]
fn the_rule_refuses_what_it_should() {
    let step = |seq, kind, attempt| {
        let mut event = HistoryEvent::new(Timestamp::from_millis(0), kind).with_point("s", "f.rs", 1);
        event.seq = seq;
        event.attempt = Some(attempt);
        event
    };
    let line = |run, attempt, end| Effect {
        run,
        key: Key { execution: "e".to_owned(), step: "s".to_owned(), iteration: 0 },
        attempt,
        end,
    };
    // Runs 1 and 2 started with 1 history event; run 3 after the commit at seq 3.
    let starts: Vec<RunStart> = [(1, 1), (2, 1), (3, 4)]
        .into_iter()
        .map(|(number, known)| RunStart { number, history: HashMap::from([("e".to_owned(), known)]) })
        .collect();
    let history = HashMap::from([(
        "e".to_owned(),
        vec![step(2, EventKind::StepStarted, 1), step(3, EventKind::StepSucceeded, 1)],
    )]);
    let check = |lines: &[Effect], steps: &[&str]| check_effects(lines, &history, &starts, steps);
    // Killed in flight in run 1, ran again and committed in run 2: fine.
    let rerun = [line(1, 1, None), line(2, 1, None), line(2, 1, Some(true))];
    let stats = check(&rerun, &[]).expect("a re-run before the commit is allowed");
    assert_eq!((stats.bodies, stats.reruns, stats.interrupted), (2, 1, 1));
    // Ran again in run 3, after the commit.
    let late = [line(1, 1, None), line(2, 1, None), line(2, 1, Some(true)), line(3, 1, None)];
    assert!(check(&late, &[]).unwrap_err().contains("COMPLETED STEP RE-RUN"));
    // The committed attempt 1 is not the body's last result.
    let other = [line(2, 1, None), line(2, 1, Some(false)), line(2, 2, None), line(2, 2, Some(true))];
    assert!(check(&other, &[]).unwrap_err().contains("is not the one its last body computed"));
    // An at-most-once attempt that ran twice.
    assert!(check(&rerun, &["s"]).unwrap_err().contains("AT-MOST-ONCE VIOLATED"));
    // Twice in one run.
    let twice = [line(2, 1, None), line(2, 1, None), line(2, 1, Some(true))];
    assert!(check(&twice, &[]).unwrap_err().contains("began twice in run 2"));
}

// ------------------------------------------------------------------ the report

#[derive(Default)]
struct Totals {
    rounds: usize,
    runs: usize,
    kills: usize,
    phases: BTreeMap<Phase, usize>,
    killed_waiting_timer: usize,
    killed_waiting_event: usize,
    effects: EffectStats,
    repeated_waits: usize,
    elapsed: Duration,
}

impl Totals {
    fn add(&mut self, round: &Round<'_>, effects: &EffectStats) {
        self.runs += round.starts.len();
        self.kills += round.kills;
        for (phase, count) in &round.phases {
            *self.phases.entry(*phase).or_default() += count;
        }
        self.killed_waiting_timer += round.killed_waiting_timer;
        self.killed_waiting_event += round.killed_waiting_event;
        self.effects.bodies += effects.bodies;
        self.effects.reruns += effects.reruns;
        self.effects.interrupted += effects.interrupted;
        self.effects.failures += effects.failures;
        self.effects.rerun_steps += effects.rerun_steps;
        self.effects.runs_killed_in_a_body += effects.runs_killed_in_a_body;
    }

    fn report(&self, seed: u64) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "crash test passed: seed {seed}, {} kills in {} runs over {} rounds of {EXECUTIONS} executions, {:.1} s",
            self.kills,
            self.runs,
            self.rounds,
            self.elapsed.as_secs_f64()
        );
        for (phase, count) in &self.phases {
            let _ = writeln!(text, "  {count:4} kills {}", phase.describe());
        }
        let e = &self.effects;
        let _ = writeln!(text, "  {:4} kills interrupted a step body", e.runs_killed_in_a_body);
        let _ = writeln!(text, "  {:4} kills left executions suspended on a timer or retry", self.killed_waiting_timer);
        let _ = writeln!(text, "  {:4} kills left executions waiting for an event", self.killed_waiting_event);
        let _ = write!(
            text,
            "  {} step bodies ran: {} interrupted, {} re-ran an attempt after a kill ({} step instances ran in \
             more than one run), {} injected failures",
            e.bodies, e.interrupted, e.reruns, e.rerun_steps, e.failures
        );
        let _ = write!(text, "\n  {} WaitSucceeded recorded again for a timer that had fired", self.repeated_waits);
        text
    }
}
