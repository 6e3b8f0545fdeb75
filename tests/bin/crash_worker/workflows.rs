//! The workflows of the process-level crash test, shared by the `crash-worker` binary (which runs
//! them on SQLite and gets killed) and the `crash` test (which runs them once uninterrupted, in
//! memory, as the reference).
//!
//! Every step body goes through [`effect`], which appends a `begin` line to the effect log before
//! it does anything and an `end` line before it returns, each written with one `write` on a file
//! opened with `O_APPEND` and synced with `sync_data`:
//!
//! ```text
//! <run> <execution> <step> <iteration> <attempt> begin
//! <run> <execution> <step> <iteration> <attempt> end ok|err
//! ```
//!
//! `run` numbers the worker processes (1, 2, ...; 0 for the reference run), `iteration` is the
//! loop index of a step inside a loop (0 otherwise), and `attempt` is the engine's attempt number,
//! read from the stored record: the body cannot get it any other way.

// Each of the two crates that include this file uses only part of it.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use durable_core::engine::EngineBuilder;
use durable_core::prelude::*;
use durable_core::store::{StepRecord, Store};
use durable_core::{Engine, EngineError, MemoryStore, SqliteStore};
use serde::{Deserialize, Serialize};

/// The lease a crash worker takes on what it runs. Long, so that a busy machine never lets a
/// live worker's lease run out; each restart moves the clock past it (see the test).
pub const LEASE: Duration = Duration::from_secs(5);
/// How often an idle worker looks for due work (timers, retries, events sent by the test).
pub const POLL: Duration = Duration::from_millis(10);
/// A timer that outlives many kills.
pub const TIMER: Duration = Duration::from_millis(300);
/// A timer inside a loop.
pub const SHORT_TIMER: Duration = Duration::from_millis(150);
/// The delay between attempts of a retried step.
pub const RETRY_DELAY: Duration = Duration::from_millis(40);
/// A timeout that never passes during the test.
pub const NEVER: Duration = Duration::from_secs(24 * 3_600);
/// How long a step body works between its `begin` and `end` lines.
pub const BODY_TIME: Duration = Duration::from_millis(1);
/// The attempts of an at-most-once step: every interrupted attempt counts as failed, so it needs
/// many to survive a run of unlucky kills.
pub const AT_MOST_ONCE_ATTEMPTS: u32 = 20;
/// The rounds of event waits in [`approvals`].
pub const APPROVALS: u32 = 3;
/// The iterations of [`batch`].
pub const ITEMS: u32 = 5;
/// The ticks of [`ticker`].
pub const TICKS: u32 = 4;

/// The workflows, by the index of an execution modulo their number.
pub const WORKFLOWS: [&str; 4] = ["order", "batch", "approvals", "ticker"];

/// The steps that run at most once per attempt.
pub const AT_MOST_ONCE_STEPS: [&str; 2] = ["charge", "tick"];

/// The payload of the `payment` event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    /// The amount paid.
    pub amount: u64,
}

/// Whether a step body fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    /// It always succeeds.
    Never,
    /// Its first attempt fails with a transient (retryable) error; later attempts succeed.
    FirstAttempt,
}

/// Reserve (fails once, retried), cool off on a timer, wait for the payment (with a timeout that
/// never passes), charge at most once per attempt, ship.
#[durable]
pub async fn order(ctx: &Ctx, n: u64) -> Result<String, WorkflowError> {
    let reserved = step!(
        "reserve",
        retry = Retry::fixed(3, RETRY_DELAY),
        effect(ctx.execution_id(), "reserve", 0, Fail::FirstAttempt, n * 7 + 3).await
    )?;
    wait!("cool_off", TIMER);
    let payment: Result<Payment, Timeout> = wait!("payment", event, timeout = NEVER);
    let amount = payment?.amount;
    let receipt = step!(
        "charge",
        retry = Retry::fixed(AT_MOST_ONCE_ATTEMPTS, RETRY_DELAY),
        semantics = Semantics::AtMostOncePerAttempt,
        effect(ctx.execution_id(), "charge", 0, Fail::Never, reserved * 1_000 + amount).await
    )?;
    let shipped =
        step!("ship", effect(ctx.execution_id(), "ship", 0, Fail::Never, format!("receipt {receipt}")).await)?;
    Ok(shipped)
}

/// A `for` loop of steps (some fail once and are retried with exponential backoff) with a timer
/// every other iteration, then a last step.
#[durable]
pub async fn batch(ctx: &Ctx, n: u64) -> Result<u64, WorkflowError> {
    let mut acc: u64 = 0;
    for k in 0..ITEMS {
        let fail = if k % 3 == 1 { Fail::FirstAttempt } else { Fail::Never };
        let value = step!(
            "item",
            retry = Retry::exponential(3).initial_delay(RETRY_DELAY),
            effect(ctx.execution_id(), "item", k, fail, n * 100 + u64::from(k)).await
        )?;
        acc = acc.wrapping_mul(31).wrapping_add(value);
        if k % 2 == 1 {
            wait!("breather", SHORT_TIMER);
        }
    }
    let total = step!("total", effect(ctx.execution_id(), "total", 0, Fail::Never, acc).await)?;
    Ok(total)
}

/// A `while` loop of event waits (the same event name each round), each followed by a step.
#[durable]
pub async fn approvals(ctx: &Ctx, n: u64) -> Result<u64, WorkflowError> {
    let mut acc = step!("open", effect(ctx.execution_id(), "open", 0, Fail::Never, n).await)?;
    let mut round: u32 = 0;
    while round < APPROVALS {
        let vote: u64 = wait!("approve", event);
        let fail = if round == 1 { Fail::FirstAttempt } else { Fail::Never };
        let next = step!(
            "record",
            retry = Retry::fixed(3, RETRY_DELAY),
            effect(ctx.execution_id(), "record", round, fail, acc * 31 + vote).await
        )?;
        acc = next;
        round += 1;
    }
    Ok(acc)
}

/// A `loop` of at-most-once steps (one fails once) with a timer between them, left by `break`.
#[durable]
pub async fn ticker(ctx: &Ctx, n: u64) -> Result<Vec<u64>, WorkflowError> {
    let mut seen: Vec<u64> = Vec::new();
    let mut k: u32 = 0;
    loop {
        let fail = if k == 2 { Fail::FirstAttempt } else { Fail::Never };
        let value = step!(
            "tick",
            retry = Retry::fixed(AT_MOST_ONCE_ATTEMPTS, RETRY_DELAY),
            semantics = Semantics::AtMostOncePerAttempt,
            effect(ctx.execution_id(), "tick", k, fail, n * 10 + u64::from(k)).await
        )?;
        seen.push(value);
        k += 1;
        if k == TICKS {
            break;
        }
        wait!("interval", SHORT_TIMER);
    }
    Ok(seen)
}

/// Registers the crash workflows.
pub fn register<S: Store>(builder: EngineBuilder<S>) -> EngineBuilder<S> {
    builder.register(order).register(batch).register(approvals).register(ticker)
}

/// Execution `i`: its id, its workflow and its input.
pub fn execution(i: usize) -> (String, &'static str, u64) {
    (format!("crash-{i}"), WORKFLOWS[i % WORKFLOWS.len()], i as u64 + 1)
}

/// Starts executions `0..count` idempotently (a restart finds them started) and returns their
/// ids.
pub async fn start_all<S: Store>(engine: &Engine<S>, count: usize) -> Result<Vec<String>, EngineError> {
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let (id, workflow, n) = execution(i);
        match workflow {
            "order" => engine.start(order, id.clone(), n).await?,
            "batch" => engine.start(batch, id.clone(), n).await?,
            "approvals" => engine.start(approvals, id.clone(), n).await?,
            _ => engine.start(ticker, id.clone(), n).await?,
        };
        ids.push(id);
    }
    Ok(ids)
}

/// The events execution `i` waits for, in the order it consumes them: `(name, JSON payload)`.
pub fn events(i: usize) -> Vec<(&'static str, String)> {
    let (_, workflow, n) = execution(i);
    match workflow {
        "order" => vec![("payment", serde_json::json!({ "amount": payment_amount(n) }).to_string())],
        "approvals" => (0..APPROVALS).map(|round| ("approve", vote(n, round).to_string())).collect(),
        _ => Vec::new(),
    }
}

fn payment_amount(n: u64) -> u64 {
    100 + n
}

fn vote(n: u64, round: u32) -> u64 {
    n * 10 + u64::from(round) + 1
}

/// What execution `i` returns, computed from its input without running it: the stored output
/// (the JSON of the function's `Result`).
pub fn expected_output(i: usize) -> String {
    let (_, workflow, n) = execution(i);
    let value = match workflow {
        "order" => serde_json::json!(format!("receipt {}", (n * 7 + 3) * 1_000 + payment_amount(n))),
        "batch" => {
            let acc = (0..ITEMS).fold(0u64, |acc, k| acc.wrapping_mul(31).wrapping_add(n * 100 + u64::from(k)));
            serde_json::json!(acc)
        }
        "approvals" => serde_json::json!((0..APPROVALS).fold(n, |acc, round| acc * 31 + vote(n, round))),
        _ => serde_json::json!((0..TICKS).map(|k| n * 10 + u64::from(k)).collect::<Vec<_>>()),
    };
    serde_json::json!({ "Ok": value }).to_string()
}

// ------------------------------------------------------------------ the effect log

/// Where a step body reads its execution's stored record (to learn its attempt number).
#[derive(Clone)]
pub enum Lookup {
    /// The worker's SQLite store.
    Sqlite(SqliteStore),
    /// The reference run's in-memory store.
    Memory(MemoryStore),
}

impl Lookup {
    async fn step(&self, id: &str) -> Option<StepRecord> {
        let record = match self {
            Lookup::Sqlite(store) => store.load(id).await,
            Lookup::Memory(store) => store.load(id).await,
        };
        record.unwrap_or_else(|error| panic!("cannot load {id}: {error}")).and_then(|record| record.step)
    }
}

/// What step bodies need: the run number, the effect log, the store, and whether to print phase
/// markers on stdout.
pub struct Effects {
    run: u32,
    log: Mutex<File>,
    lookup: Lookup,
    markers: bool,
}

impl Effects {
    /// Opens (creating it if needed) the effect log at `path` for appending.
    pub fn open(path: &Path, run: u32, lookup: Lookup, markers: bool) -> std::io::Result<Self> {
        let log = OpenOptions::new().append(true).create(true).open(path)?;
        Ok(Effects { run, log: Mutex::new(log), lookup, markers })
    }

    fn append(&self, line: &str) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let written = log.write_all(line.as_bytes()).and_then(|()| log.sync_data());
        written.unwrap_or_else(|error| panic!("cannot append to the effect log: {error}"));
    }
}

static EFFECTS: OnceLock<Effects> = OnceLock::new();

/// Installs what step bodies use; once per process.
pub fn install(effects: Effects) {
    if EFFECTS.set(effects).is_err() {
        panic!("the effect log is installed once per process");
    }
}

/// Prints a phase marker (`@name details`) on stdout if this process prints them.
pub fn marker(line: std::fmt::Arguments<'_>) {
    if EFFECTS.get().is_some_and(|effects| effects.markers) {
        println!("@{line}");
    }
}

/// A step body: logs `begin`, works for [`BODY_TIME`], logs `end`, and returns `value` (or, on
/// the first attempt of a step told to fail, a transient error).
pub async fn effect<T>(
    execution: &str,
    step: &'static str,
    iteration: u32,
    fail: Fail,
    value: T,
) -> Result<T, StepError> {
    let effects = EFFECTS.get().expect("the effect log is installed");
    // The record as last committed: a retry delay that passed, or the marker an at-most-once
    // attempt persisted before its body, tells which attempt this is.
    let attempt = match effects.lookup.step(execution).await {
        Some(record) if record.point == step && record.started => record.attempt,
        Some(record) if record.point == step => record.attempt + 1,
        _ => 1,
    };
    let key = format!("{} {execution} {step} {iteration} {attempt}", effects.run);
    effects.append(&format!("{key} begin\n"));
    marker(format_args!("begin {execution} {step} {iteration} {attempt}"));
    tokio::time::sleep(BODY_TIME).await;
    let ok = !(fail == Fail::FirstAttempt && attempt == 1);
    effects.append(&format!("{key} end {}\n", if ok { "ok" } else { "err" }));
    marker(format_args!("end {execution} {step} {iteration} {attempt}"));
    if ok { Ok(value) } else { Err(StepError::retryable(format!("injected transient failure of {step}"))) }
}
