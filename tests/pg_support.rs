//! Shared by the PostgreSQL many-workers tests (`pg_workers`, `pg_connection_loss`): the
//! server, per-test schemas, `pg-worker` processes, sending events, and the checks of the run
//! logs against what the store committed.
//!
//! # The server
//!
//! `DURABLE_PG_URL`, or `postgres://postgres@127.0.0.1:5432/test`. Without the variable, an
//! unreachable server skips the tests with a message on standard error; with it, an unreachable
//! server fails them (whoever set the variable expects them to run; `.ci/run` sets it when the
//! server is up). Each test creates its own schema `durable_test_<pid>_<nanos>_<n>_<tag>` and
//! drops it at the end, also when it fails; schemas left by test processes that were killed are
//! dropped by the next run. These come from `durable_core::testing::postgres`.
//!
//! # The checks ([`check_run`])
//!
//! A *step instance* is `(execution, step, iteration)`; a *run* of it is a `begin` line of a
//! worker's run log and the `end` line that follows it in the same log. Each execution's output
//! names, for each of its step instances, the run whose result was committed (its token
//! `<worker>@<begin-nanos>`). Then:
//!
//! 1. **Every execution succeeded exactly once**, with the expected result: status `succeeded`,
//!    one `ExecutionStarted` and one `ExecutionSucceeded` in its history, one `StepSucceeded`
//!    per step instance, the value computed by hand, no lease left, an empty inbox.
//! 2. **No completed step ran twice**: the committed run of each step instance exists in the
//!    logs, ended, and is the *last* run of that instance to begin. A step instance may have
//!    run before its committed run (at least once), but never after it: once its result was
//!    committed, no worker ran its body again. Each earlier run must be explained by a run that
//!    was cut off before its checkpoint committed; with [`Reruns::OnlyKilled`] (the SIGKILL
//!    test), the only explanation accepted is the killed worker, and the cut-off run must be
//!    the last thing that worker did for that execution (it died there). With
//!    [`Reruns::Counted`] (the connection-loss test), a commit that failed because its
//!    connection was cut explains it too, on any worker; such re-runs are counted and reported.
//! 3. **No execution ran on two workers at once**: the step bodies of one execution, across
//!    all logs, never overlap in time (wall-clock nanoseconds, one clock on one machine). A
//!    body the killed worker began and never ended lasts until the kill. A body that began and
//!    never ended on a worker that was not killed is an error (no run may be abandoned midway
//!    by a live worker in these tests: that would mean a lost lease).
//!
//! Set `DURABLE_PG_KEEP_LOGS=1` to keep the run logs and the workers' standard errors (their
//! `tracing` warnings) after a test; the test prints where.

// Each test crate that includes this file uses only part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use durable_core::store::{EventKind, ListFilter, PostgresOptions, PostgresStore, Status, Store};
use durable_core::{Delivery, Engine, SqliteStore};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio_postgres::Client;

use crate::workflows::{self, Outcome, now_nanos};

// Each test crate that includes this file uses only part of it (as for `dead_code` above).
#[allow(unused_imports)]
pub use durable_core::testing::postgres::{SchemaGuard, admin, server, unique_schema};

/// The test's own engine on `schema`, with the workflows registered, for starting executions
/// and sending events; its connections are named `<schema>_ctl`. Its run log (it should run no
/// step body: an event it delivers at once is committed and left to the workers) is
/// `<dir>/sender.log`, as worker `sender`.
pub async fn control_engine(url: &str, schema: &str, dir: &Path) -> Engine<PostgresStore> {
    let options = PostgresOptions {
        schema: schema.to_owned(),
        pool_size: 4,
        application_name: format!("{schema}_ctl"),
        ..PostgresOptions::default()
    };
    let store = PostgresStore::connect_with(url, options).await.expect("connect to the test server");
    install_sender_log(dir);
    workflows::register(Engine::builder(store))
        .lease(workflows::LEASE)
        .poll_interval(workflows::POLL)
        .build()
        .expect("the control engine")
}

/// Installs the run log of the test's own engine (it should run no step body), once per process:
/// a test that builds a second control engine keeps the first one's log.
fn install_sender_log(dir: &Path) {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| workflows::install(&dir.join("sender.log"), "sender").expect("the sender's run log"));
}

/// The test's own engine on the SQLite store at `path` (which it creates), as
/// [`control_engine`] is on PostgreSQL.
pub fn control_engine_sqlite(path: &Path, dir: &Path) -> Engine<SqliteStore> {
    let store = SqliteStore::create(path).expect("a new SQLite store");
    install_sender_log(dir);
    workflows::register(Engine::builder(store))
        .lease(workflows::LEASE)
        .poll_interval(workflows::POLL)
        .build()
        .expect("the control engine")
}

/// A `pg-worker` process, killed if it is dropped while still running (a failed test).
pub struct WorkerProcess {
    /// Its worker name (the owner of its leases).
    pub name: String,
    /// Its run log.
    pub log: PathBuf,
    /// Its standard error (its `tracing` output).
    pub stderr: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl WorkerProcess {
    /// Starts worker `name` on `schema`, its connections named `application_name`, and waits
    /// until it says it is ready (connected and listening).
    pub async fn start(url: &str, schema: &str, name: &str, dir: &Path, application_name: &str) -> Self {
        let log = dir.join(format!("{name}.log"));
        let stderr = dir.join(format!("{name}.err"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_pg-worker"))
            .args([url, schema, name])
            .arg(&log)
            .arg(application_name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("a file for the worker's stderr"))
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .spawn()
            .expect("the pg-worker binary starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("a piped stdout")).lines();
        let mut worker = WorkerProcess { name: name.to_owned(), log, stderr, child, stdin, stdout };
        let ready = tokio::time::timeout(Duration::from_secs(30), worker.stdout.next_line()).await;
        match ready {
            Ok(Ok(Some(line))) if line == "ready" => worker,
            other => panic!("worker {name} did not get ready ({other:?}): {}", worker.stderr_tail()),
        }
    }

    /// The last lines of its standard error.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Kills it with SIGKILL and reaps it; returns the wall-clock nanoseconds once it is dead.
    pub async fn kill(&mut self) -> u128 {
        self.child.kill().await.expect("SIGKILL reaches the worker");
        now_nanos()
    }

    /// Stops it where it stands with SIGSTOP (it keeps its connections and its leases run out);
    /// returns the wall-clock nanoseconds once the signal was sent.
    pub fn pause(&self) -> u128 {
        self.signal("-STOP");
        now_nanos()
    }

    /// Lets a paused worker go on with SIGCONT; returns the wall-clock nanoseconds before the
    /// signal is sent.
    pub fn resume(&self) -> u128 {
        let at = now_nanos();
        self.signal("-CONT");
        at
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("a running worker has a pid").to_string();
        let sent = std::process::Command::new("kill").args([signal, &pid]).status().expect("the kill command runs");
        assert!(sent.success(), "kill {signal} {pid} failed");
    }

    /// Closes its standard input, which tells it to stop, and waits until it has exited 0.
    pub async fn stop(&mut self) {
        self.stdin.take();
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            other => panic!("worker {} did not stop cleanly ({other:?}): {}", self.name, self.stderr_tail()),
        }
    }
}

/// What the event sender did.
#[derive(Debug, Default)]
pub struct Sent {
    /// Events delivered at once to an execution waiting for them.
    pub delivered: AtomicUsize,
    /// Events queued in an inbox (sent before the workflow reached its wait).
    pub queued: AtomicUsize,
    /// Sends that failed and were tried again.
    pub retried: AtomicUsize,
}

/// Whether execution `i`'s event is sent right after it starts (usually before it waits): one
/// in eight of those that wait for one.
pub fn early(i: usize) -> bool {
    workflows::event(i).is_some() && (i / workflows::WORKFLOWS.len()).is_multiple_of(8)
}

/// Starts the executions of `range`, `streams` at a time, sending the [`early`] events right
/// after their executions start; returns how long it took.
pub async fn start_all(
    engine: &Engine<impl Store>,
    range: std::ops::Range<usize>,
    streams: usize,
    sent: &Arc<Sent>,
) -> Duration {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for stream in 0..streams {
        let (engine, sent, range) = (engine.clone(), Arc::clone(sent), range.clone());
        tasks.spawn(async move {
            for i in range.skip(stream).step_by(streams) {
                workflows::start(&engine, i).await.expect("start an execution");
                if early(i) {
                    let mut pending: BTreeMap<String, (&'static str, u64)> = BTreeMap::new();
                    let id = workflows::execution(i).0;
                    pending.extend(workflows::event(i).map(|event| (id.clone(), event)));
                    while !pending.is_empty() {
                        send_one(&engine, &mut pending, &id, &sent).await;
                    }
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a starter task");
    }
    started.elapsed()
}

/// Sends its event to each of executions `0..count` that waits for one, except the [`early`]
/// ones, once the store shows it waiting; returns once all are sent or `stop` is set.
pub async fn send_events<S: Store>(engine: Engine<S>, count: usize, stop: Arc<AtomicBool>, sent: Arc<Sent>) {
    let mut pending: BTreeMap<String, (&'static str, u64)> = (0..count)
        .filter(|&i| !early(i))
        .filter_map(|i| workflows::event(i).map(|event| (workflows::execution(i).0, event)))
        .collect();
    while !pending.is_empty() && !stop.load(Ordering::Relaxed) {
        let filter = ListFilter { status: Some(Status::Suspended), ..ListFilter::default() };
        let waiting: Vec<String> = match engine.store().list(filter).await {
            Ok(records) => records
                .into_iter()
                .filter(|r| r.waiting_for.is_some() && pending.contains_key(&r.id))
                .map(|r| r.id)
                .collect(),
            Err(_) => Vec::new(),
        };
        for id in waiting {
            send_one(&engine, &mut pending, &id, &sent).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send_one(
    engine: &Engine<impl Store>,
    pending: &mut BTreeMap<String, (&'static str, u64)>,
    id: &str,
    sent: &Sent,
) {
    let Some(&(name, payload)) = pending.get(id) else { return };
    match engine.send_event(id, name, &payload).await {
        Ok(Delivery::Delivered) => sent.delivered.fetch_add(1, Ordering::Relaxed),
        Ok(Delivery::Queued | Delivery::Duplicate) => sent.queued.fetch_add(1, Ordering::Relaxed),
        Err(error) => {
            eprintln!("sending {name} to {id} failed, will try again: {error}");
            sent.retried.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    pending.remove(id);
}

/// Waits until all of executions `0..count` have finished; panics after `limit`, listing the
/// unfinished ones. Returns how long it took.
pub async fn wait_all_finished(store: &impl Store, count: usize, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let records = store.list(ListFilter::default()).await.expect("list the executions");
        let unfinished: Vec<_> = records.iter().filter(|r| !r.status.is_terminal()).collect();
        if records.len() == count && unfinished.is_empty() {
            return started.elapsed();
        }
        if started.elapsed() > limit {
            let sample: Vec<_> = unfinished.iter().take(10).collect();
            panic!("{} of {count} executions unfinished after {limit:?}, e.g. {sample:#?}", unfinished.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One run of a step body, from a run log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The worker that ran it.
    pub worker: String,
    /// `(execution, step, iteration)`.
    pub key: (String, String, u32),
    /// When it began (wall-clock nanoseconds).
    pub begin: u128,
    /// When it ended, if it did.
    pub end: Option<u128>,
}

/// The runs in the run log at `path`, in the order they began.
pub fn read_runs(path: &Path) -> Vec<Run> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut runs: Vec<Run> = Vec::new();
    let mut open: HashMap<(String, String, u32), usize> = HashMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [what, execution, step, iteration, worker, at] = fields.as_slice() else {
            panic!("{}: malformed line `{line}`", path.display());
        };
        let key = (execution.to_string(), step.to_string(), iteration.parse().expect("an iteration"));
        let at: u128 = at.parse().expect("a timestamp");
        match *what {
            "begin" => {
                open.insert(key.clone(), runs.len());
                runs.push(Run { worker: worker.to_string(), key, begin: at, end: None });
            }
            "end" => {
                let index = open.remove(&key).unwrap_or_else(|| panic!("{}: `{line}` ends nothing", path.display()));
                assert!(at >= runs[index].begin, "{}: `{line}` ends before it began", path.display());
                runs[index].end = Some(at);
            }
            _ => panic!("{}: malformed line `{line}`", path.display()),
        }
    }
    runs
}

/// How re-runs of a step instance (runs before its committed run) are judged; see the module
/// docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reruns {
    /// Only the killed worker, in the last thing it did for that execution, may have left one.
    OnlyKilled,
    /// Any worker whose commit failed (its connection was cut) may have left one; counted.
    Counted,
}

/// What [`check_run`] measured.
#[derive(Debug, Default)]
pub struct Findings {
    /// Step bodies run, by worker.
    pub bodies: BTreeMap<String, usize>,
    /// Executions each worker ran at least one step body of.
    pub executions: BTreeMap<String, usize>,
    /// Step results each worker computed that were committed.
    pub committed: BTreeMap<String, usize>,
    /// Runs of step instances before their committed run: `(worker, execution, step, iteration)`.
    pub reruns: Vec<(String, String, String, u32)>,
    /// Overlapping bodies the paused-process rule allowed (storms only): `(execution, paused
    /// worker's run, the other run)`.
    pub paused_overlaps: Vec<(String, Run, Run)>,
}

/// Checks executions `0..count` and the run logs of `logs` against the rules of the module docs;
/// `killed` is the killed worker and when it was dead, if one was.
pub async fn check_run(
    store: &impl Store,
    count: usize,
    logs: &[PathBuf],
    killed: Option<(&str, u128)>,
    reruns: Reruns,
) -> Findings {
    let mut findings = Findings::default();
    let mut by_execution: HashMap<String, Vec<Run>> = HashMap::new();
    for log in logs {
        for run in read_runs(log) {
            *findings.bodies.entry(run.worker.clone()).or_default() += 1;
            by_execution.entry(run.key.0.clone()).or_default().push(run);
        }
    }
    for runs in by_execution.values() {
        let workers: HashSet<&str> = runs.iter().map(|run| run.worker.as_str()).collect();
        for worker in workers {
            *findings.executions.entry(worker.to_owned()).or_default() += 1;
        }
    }
    let known: HashSet<String> = (0..count).map(|i| workflows::execution(i).0).collect();
    let strangers: Vec<&String> = by_execution.keys().filter(|id| !known.contains(*id)).collect();
    assert!(strangers.is_empty(), "step bodies ran for unknown executions {strangers:?}");

    for i in 0..count {
        let (id, workflow, _) = workflows::execution(i);
        let runs = by_execution.remove(&id).unwrap_or_default();
        let committed = check_execution(store, i, &runs).await;
        check_exclusive(&id, &runs, killed);
        check_reruns(&id, workflow, &runs, &committed, killed, reruns, &mut findings);
    }
    findings
}

/// Rule 1 for execution `i`; returns the committed run of each of its step instances, as
/// `(step, iteration, worker, begin)`.
async fn check_execution(store: &impl Store, i: usize, runs: &[Run]) -> Vec<(String, u32, String, u128)> {
    let (id, workflow, _) = workflows::execution(i);
    let record = store.load(&id).await.expect("load").unwrap_or_else(|| panic!("EXECUTION LOST: {id}"));
    let history = store.history(&id).await.expect("history");
    assert_eq!(record.status, Status::Succeeded, "{id} ({workflow}) succeeded: {record:#?}");
    let count = |kind: EventKind| history.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count(EventKind::ExecutionStarted), 1, "{id} started exactly once");
    assert_eq!(count(EventKind::ExecutionSucceeded), 1, "{id} succeeded exactly once");
    assert!(record.lease.is_none(), "{id} holds no lease: {:?}", record.lease);
    assert!(store.inbox(&id).await.expect("inbox").is_empty(), "{id} consumed its events");
    let steps = workflows::steps(i);
    let succeeded: Vec<&str> =
        history.iter().filter(|e| e.kind == EventKind::StepSucceeded).filter_map(|e| e.point.as_deref()).collect();
    let expected: Vec<&str> = steps.iter().map(|(step, _)| *step).collect();
    assert_eq!(succeeded, expected, "{id}: one StepSucceeded per step instance, in order");

    let output = record.output.as_deref().unwrap_or_default();
    let returned: Result<Outcome, serde_json::Value> =
        serde_json::from_str(output).unwrap_or_else(|e| panic!("{id}: output `{output}`: {e}"));
    let outcome = returned.unwrap_or_else(|error| panic!("{id} returned an error: {error}"));
    assert_eq!(outcome.value, workflows::expected_value(i), "{id} ({workflow}) returned the expected value");
    assert_eq!(outcome.runs.len(), steps.len(), "{id}: one committed run per step instance: {outcome:?}");
    let mut committed = Vec::new();
    for ((step, iteration), token) in steps.iter().zip(&outcome.runs) {
        let parsed = token
            .strip_prefix(&format!("{step}/{iteration}="))
            .and_then(|run| run.split_once('@'))
            .and_then(|(worker, begin)| Some((worker.to_owned(), begin.parse::<u128>().ok()?)));
        let Some((worker, begin)) = parsed else {
            panic!("{id}: malformed run token `{token}` for {step}/{iteration}")
        };
        let run = runs
            .iter()
            .find(|run| run.worker == worker && run.begin == begin && run.key.1 == *step && run.key.2 == *iteration);
        let run = run.unwrap_or_else(|| panic!("{id}: the committed run {token} is in no run log"));
        assert!(run.end.is_some(), "{id}: the committed run {token} never ended");
        committed.push((step.to_string(), *iteration, worker, begin));
    }
    committed
}

/// Rule 3: the step bodies of one execution never overlap.
pub fn check_exclusive(id: &str, runs: &[Run], killed: Option<(&str, u128)>) {
    let mut intervals: Vec<(u128, u128, &Run)> = runs
        .iter()
        .map(|run| {
            let end = match (run.end, killed) {
                (Some(end), _) => end,
                (None, Some((worker, at))) if worker == run.worker => at,
                (None, _) => panic!("{id}: a step body began and never ended on a live worker: {run:?}"),
            };
            (run.begin, end, run)
        })
        .collect();
    intervals.sort_by_key(|(begin, _, _)| *begin);
    let mut latest: Option<(u128, &Run)> = None;
    for (begin, end, run) in intervals {
        if let Some((until, other)) = latest
            && begin <= until
        {
            panic!("{id} RAN ON TWO WORKERS AT ONCE: {run:?} began before {other:?} ended");
        }
        if latest.is_none_or(|(until, _)| end > until) {
            latest = Some((end, run));
        }
    }
    if let Some((worker, at)) = killed {
        for run in runs.iter().filter(|run| run.worker == worker) {
            assert!(run.begin <= at && run.end.is_none_or(|end| end <= at), "{id}: {run:?} after the kill");
        }
    }
}

/// Rule 2: the committed run of each step instance (`(step, iteration, worker, begin)`) is its
/// last run; earlier runs are explained.
pub fn check_reruns(
    id: &str,
    workflow: &str,
    runs: &[Run],
    committed: &[(String, u32, String, u128)],
    killed: Option<(&str, u128)>,
    reruns: Reruns,
    findings: &mut Findings,
) {
    let instances: HashSet<(&str, u32)> = committed.iter().map(|(step, k, _, _)| (step.as_str(), *k)).collect();
    for run in runs {
        assert!(
            instances.contains(&(run.key.1.as_str(), run.key.2)),
            "{id} ({workflow}): a run of a step instance it does not have: {run:?}"
        );
    }
    for (step, iteration, worker, begin) in committed {
        *findings.committed.entry(worker.clone()).or_default() += 1;
        for run in runs.iter().filter(|run| run.key.1 == *step && run.key.2 == *iteration) {
            if run.worker == *worker && run.begin == *begin {
                continue;
            }
            assert!(
                run.begin < *begin,
                "{id}: step {step}/{iteration} RAN AGAIN AFTER ITS RESULT WAS COMMITTED: committed run \
                 {worker}@{begin}, later run {run:?}"
            );
            if reruns == Reruns::OnlyKilled {
                let Some((dead, _)) = killed.filter(|(dead, _)| *dead == run.worker) else {
                    panic!("{id}: step {step}/{iteration} ran twice, and not because its worker was killed: {run:?}");
                };
                let last = runs.iter().filter(|r| r.worker == dead).map(|r| r.begin).max();
                assert_eq!(
                    last,
                    Some(run.begin),
                    "{id}: {dead} re-ran {step}/{iteration} but was not killed there: {run:?}"
                );
            }
            findings.reruns.push((run.worker.clone(), id.to_owned(), step.clone(), *iteration));
        }
    }
}

/// What a storm did to the workers: kills `(worker, dead at)` and pauses `(worker, stopped at,
/// continued at)`, in wall-clock nanoseconds.
#[derive(Debug, Default)]
pub struct Storm {
    /// Workers killed with SIGKILL.
    pub kills: Vec<(String, u128)>,
    /// Workers stopped with SIGSTOP and continued with SIGCONT.
    pub pauses: Vec<(String, u128, u128)>,
}

/// [`check_run`] after a storm: the same rules 1 and 2 (re-runs before the committed run are
/// counted, whatever caused them), and rule 3 with the one exception the README documents for a
/// paused process. Two bodies of one execution may overlap only if the one that began first
/// ran on a worker that was paused while it ran (its lease ran out and another worker took the
/// execution over), that body was not the one whose result was committed, and the other began
/// after the pause started. A body that never ended must be one a killed worker began before it
/// died, or one a paused worker was in: woken, it found its lease gone and dropped the run.
pub async fn check_storm(store: &impl Store, count: usize, logs: &[PathBuf], storm: &Storm) -> Findings {
    let mut findings = Findings::default();
    let mut by_execution: HashMap<String, Vec<Run>> = HashMap::new();
    for log in logs {
        for run in read_runs(log) {
            *findings.bodies.entry(run.worker.clone()).or_default() += 1;
            by_execution.entry(run.key.0.clone()).or_default().push(run);
        }
    }
    for i in 0..count {
        let (id, workflow, _) = workflows::execution(i);
        let runs = by_execution.remove(&id).unwrap_or_default();
        let committed = check_execution(store, i, &runs).await;
        let allowed = check_exclusive_in_storm(&id, &runs, &committed, storm);
        findings.paused_overlaps.extend(allowed.into_iter().map(|(first, second)| (id.clone(), first, second)));
        check_reruns(&id, workflow, &runs, &committed, None, Reruns::Counted, &mut findings);
    }
    assert!(by_execution.is_empty(), "step bodies ran for unknown executions {:?}", by_execution.keys());
    findings
}

/// Rule 3 of [`check_storm`]; returns the overlaps the pause exception allowed.
pub fn check_exclusive_in_storm(
    id: &str,
    runs: &[Run],
    committed: &[(String, u32, String, u128)],
    storm: &Storm,
) -> Vec<(Run, Run)> {
    let mut allowed = Vec::new();
    // A body that never ended was cut short: by the death of its worker, or by a paused worker
    // that woke, found its lease gone and dropped the run where it stood.
    let ended = |run: &Run| match run.end {
        Some(end) => end,
        None => {
            let died = storm.kills.iter().find(|(worker, at)| *worker == run.worker && run.begin <= *at);
            let woke =
                storm.pauses.iter().find(|(worker, _, continued)| *worker == run.worker && run.begin <= *continued);
            match (died, woke) {
                (Some((_, at)), _) => *at,
                (None, Some((_, _, continued))) => *continued,
                (None, None) => panic!("{id}: a step body began and never ended on a live worker: {run:?}"),
            }
        }
    };
    let mut sorted: Vec<&Run> = runs.iter().collect();
    sorted.sort_by_key(|run| run.begin);
    for (i, first) in sorted.iter().enumerate() {
        let first_end = ended(first);
        for second in sorted[i + 1..].iter().take_while(|second| second.begin <= first_end) {
            let paused = storm.pauses.iter().find(|(worker, stopped, continued)| {
                *worker == first.worker && *stopped < first_end && *continued > first.begin && second.begin >= *stopped
            });
            let committed_first =
                committed.iter().any(|(_, _, worker, begin)| *worker == first.worker && *begin == first.begin);
            assert!(
                paused.is_some() && !committed_first,
                "{id} RAN ON TWO WORKERS AT ONCE: {second:?} began before {first:?} ended \
                 (pauses: {:?})",
                storm.pauses
            );
            allowed.push(((*first).clone(), (*second).clone()));
        }
    }
    allowed
}

/// Cuts, from the server side, every connection whose `application_name` is one of `names`,
/// and waits until the server has closed them all; returns how many there were.
pub async fn cut_connections(admin: &Client, names: &[String]) -> usize {
    let find = "SELECT pid FROM pg_stat_activity WHERE application_name = ANY($1) AND pid <> pg_backend_pid()";
    let pids: Vec<i32> = admin.query(find, &[&names]).await.expect("find").iter().map(|row| row.get(0)).collect();
    admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", &[&pids]).await.expect("cut");
    let alive = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)";
    for _ in 0..500 {
        let left: i64 = admin.query_one(alive, &[&pids]).await.expect("count").get(0);
        if left == 0 {
            return pids.len();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server did not close the connections it was told to");
}

/// How many connections each of `names` has open now.
pub async fn connections(admin: &Client, names: &[String]) -> BTreeMap<String, i64> {
    let query = "SELECT application_name, count(*) FROM pg_stat_activity WHERE application_name = ANY($1) \
                 GROUP BY application_name";
    let rows = admin.query(query, &[&names]).await.expect("count connections");
    let mut counts: BTreeMap<String, i64> = names.iter().map(|name| (name.clone(), 0)).collect();
    for row in rows {
        counts.insert(row.get(0), row.get(1));
    }
    counts
}

/// A temporary directory for the run logs and the workers' standard errors.
pub fn log_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("durable-pg-").tempdir().expect("a temporary directory")
}

/// Keeps `dir` (and says where) if `DURABLE_PG_KEEP_LOGS` is set; otherwise it is removed.
pub fn keep_if_asked(dir: tempfile::TempDir) {
    if std::env::var_os("DURABLE_PG_KEEP_LOGS").is_some() {
        eprintln!("run logs and worker logs kept in {}", dir.keep().display());
    }
}
