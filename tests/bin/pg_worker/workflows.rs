//! The workflows of the PostgreSQL many-workers tests, shared by the `pg-worker` binary (which
//! runs them) and the tests (which start them, send their events and check their results).
//!
//! Every step body goes through [`effect`], which appends a line to its process's run log
//! before it does anything and another once it is done, each written with one `write` on a file
//! opened with `O_APPEND` and synced with `sync_data`:
//!
//! ```text
//! begin <execution> <step> <iteration> <worker> <unix-nanos>
//! end <execution> <step> <iteration> <worker> <unix-nanos>
//! ```
//!
//! `iteration` is the loop index of a step inside a loop (0 otherwise) and the timestamps are
//! wall-clock nanoseconds since the epoch, one clock for every process of the machine. The body
//! returns, with its value, a token `<worker>@<begin-nanos>` naming the run of the body that
//! computed it; each workflow collects the tokens of the step results it was given into its
//! output, so that the test knows which run of each step was the one committed.

// Each of the two crates that include this file uses only part of it.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use durable_core::engine::EngineBuilder;
use durable_core::prelude::*;
use durable_core::store::Store;
use durable_core::{Engine, EngineError};
use serde::{Deserialize, Serialize};

/// The lease a worker takes on what it runs: short, so that a killed worker's executions are
/// taken over within about this long.
pub const LEASE: Duration = Duration::from_secs(2);
/// How often an idle worker looks for due work (timers are not announced by `NOTIFY`).
pub const POLL: Duration = Duration::from_millis(100);
/// The tick of [`looper`].
pub const TICK: Duration = Duration::from_millis(50);
/// The iterations of [`looper`].
pub const ITEMS: u32 = 3;
/// How long [`reminder`] waits for a reply nobody sends.
pub const REPLY_TIMEOUT: Duration = Duration::from_millis(250);

/// The workflows, by the index of an execution modulo their number.
pub const WORKFLOWS: [&str; 4] = ["pipeline", "approval", "looper", "reminder"];

/// What every workflow returns: a value computed from its input (and events), and the tokens of
/// the runs whose step results it was given, as `<step>/<iteration>=<worker>@<begin-nanos>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Computed from the input and the events received.
    pub value: u64,
    /// The committed run of each step instance, in the order the workflow took them.
    pub runs: Vec<String>,
}

/// Step, timer, step: the timer lasts 50 to 300 ms depending on the input.
#[durable]
pub async fn pipeline(ctx: &Ctx, n: u64) -> Result<Outcome, WorkflowError> {
    let (fetched, fetch_run) = step!("fetch", effect(ctx.execution_id(), "fetch", 0, n * 3).await)?;
    wait!("cool", pipeline_timer(n));
    let (stored, store_run) = step!("store", effect(ctx.execution_id(), "store", 0, fetched + 1).await)?;
    Ok(Outcome { value: stored, runs: vec![tagged("fetch", 0, fetch_run), tagged("store", 0, store_run)] })
}

/// Step, an event `approve` (a `u64` the test sends), step.
#[durable]
pub async fn approval(ctx: &Ctx, n: u64) -> Result<Outcome, WorkflowError> {
    let (opened, open_run) = step!("open", effect(ctx.execution_id(), "open", 0, n).await)?;
    let vote: u64 = wait!("approve", event);
    let (closed, close_run) = step!("close", effect(ctx.execution_id(), "close", 0, opened * 1_000 + vote).await)?;
    Ok(Outcome { value: closed, runs: vec![tagged("open", 0, open_run), tagged("close", 0, close_run)] })
}

/// A `for` loop of a step and a short timer, then a last step.
#[durable]
pub async fn looper(ctx: &Ctx, n: u64) -> Result<Outcome, WorkflowError> {
    let mut acc = n;
    let mut runs: Vec<String> = Vec::new();
    for k in 0..ITEMS {
        let (next, item_run) =
            step!("item", effect(ctx.execution_id(), "item", k, acc.wrapping_mul(31) + u64::from(k)).await)?;
        runs.push(tagged("item", k, item_run));
        acc = next;
        wait!("tick", TICK);
    }
    let (total, total_run) = step!("total", effect(ctx.execution_id(), "total", 0, acc + 1).await)?;
    runs.push(tagged("total", 0, total_run));
    Ok(Outcome { value: total, runs })
}

/// Step, an event `reply` that never comes (its short timeout passes), step.
#[durable]
pub async fn reminder(ctx: &Ctx, n: u64) -> Result<Outcome, WorkflowError> {
    let (reminded, remind_run) = step!("remind", effect(ctx.execution_id(), "remind", 0, n + 5).await)?;
    let reply: Result<u64, Timeout> = wait!("reply", event, timeout = REPLY_TIMEOUT);
    let answer = reply.unwrap_or(0);
    let (escalated, escalate_run) =
        step!("escalate", effect(ctx.execution_id(), "escalate", 0, reminded * 2 + answer).await)?;
    Ok(Outcome { value: escalated, runs: vec![tagged("remind", 0, remind_run), tagged("escalate", 0, escalate_run)] })
}

/// The timer of [`pipeline`] for input `n`.
pub fn pipeline_timer(n: u64) -> Duration {
    Duration::from_millis(50 + (n * 37) % 251)
}

fn tagged(step: &str, iteration: u32, run: String) -> String {
    format!("{step}/{iteration}={run}")
}

/// Registers the workflows.
pub fn register<S: Store>(builder: EngineBuilder<S>) -> EngineBuilder<S> {
    builder.register(pipeline).register(approval).register(looper).register(reminder)
}

/// Execution `i`: its id, its workflow and its input.
pub fn execution(i: usize) -> (String, &'static str, u64) {
    (format!("e-{i:04}"), WORKFLOWS[i % WORKFLOWS.len()], i as u64 + 1)
}

/// Starts execution `i`.
pub async fn start<S: Store>(engine: &Engine<S>, i: usize) -> Result<(), EngineError> {
    let (id, workflow, n) = execution(i);
    match workflow {
        "pipeline" => engine.start(pipeline, id, n).await?,
        "approval" => engine.start(approval, id, n).await?,
        "looper" => engine.start(looper, id, n).await?,
        _ => engine.start(reminder, id, n).await?,
    };
    Ok(())
}

/// The event execution `i` waits for, if any: its name and payload.
pub fn event(i: usize) -> Option<(&'static str, u64)> {
    let (_, workflow, n) = execution(i);
    (workflow == "approval").then_some(("approve", vote(n)))
}

fn vote(n: u64) -> u64 {
    n % 7 + 1
}

/// The step instances of execution `i`, as `(step, iteration)`, in order.
pub fn steps(i: usize) -> Vec<(&'static str, u32)> {
    match execution(i).1 {
        "pipeline" => vec![("fetch", 0), ("store", 0)],
        "approval" => vec![("open", 0), ("close", 0)],
        "looper" => (0..ITEMS).map(|k| ("item", k)).chain([("total", 0)]).collect(),
        _ => vec![("remind", 0), ("escalate", 0)],
    }
}

/// The value execution `i` must return, computed by hand.
pub fn expected_value(i: usize) -> u64 {
    let (_, workflow, n) = execution(i);
    match workflow {
        "pipeline" => n * 3 + 1,
        "approval" => n * 1_000 + vote(n),
        "looper" => (0..ITEMS).fold(n, |acc, k| acc.wrapping_mul(31) + u64::from(k)) + 1,
        _ => (n + 5) * 2,
    }
}

/// This process's run log.
struct RunLog {
    file: Arc<File>,
    worker: String,
}

static LOG: OnceLock<RunLog> = OnceLock::new();

/// Opens (appending) the run log at `path` for the step bodies of this process, which run as
/// worker `worker`. Once per process.
pub fn install(path: &Path, worker: &str) -> std::io::Result<()> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let log = RunLog { file: Arc::new(file), worker: worker.to_owned() };
    LOG.set(log).map_err(|_| std::io::Error::other("the run log is already installed"))
}

/// Wall-clock nanoseconds since the epoch.
pub fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

/// Appends `line` to the run log and syncs it, off the async threads.
async fn append(line: String) -> std::io::Result<()> {
    let log = LOG.get().ok_or_else(|| std::io::Error::other("no run log installed in this process"))?;
    let file = Arc::clone(&log.file);
    tokio::task::spawn_blocking(move || {
        (&*file).write_all(line.as_bytes())?;
        file.sync_data()
    })
    .await
    .map_err(std::io::Error::other)?
}

/// A step body: logs `begin`, works for 5 to 19 ms (its side effect), logs `end`, and returns
/// `value` with the token of this run.
pub async fn effect<T>(execution: &str, step: &str, iteration: u32, value: T) -> Result<(T, String), std::io::Error> {
    let worker = LOG.get().map(|log| log.worker.as_str()).unwrap_or("?");
    let began = now_nanos();
    append(format!("begin {execution} {step} {iteration} {worker} {began}\n")).await?;
    let work = 5 + (began / 1_000 % 15) as u64;
    tokio::time::sleep(Duration::from_millis(work)).await;
    append(format!("end {execution} {step} {iteration} {worker} {}\n", now_nanos())).await?;
    Ok((value, format!("{worker}@{began}")))
}
