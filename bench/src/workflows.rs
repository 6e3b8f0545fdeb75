//! The workflows the benchmarks run, and the step bodies that time them.
//!
//! Step bodies do no work of their own ([`small`] returns its argument), so what a figure
//! measures is the runtime: state serialization, history, the store, the commits.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use durable_core::prelude::*;

/// How long [`resume_probe`] waits at its gate: the benchmark moves its virtual clock past it.
pub const GATE: Duration = Duration::from_secs(60);

/// How long [`resume_probe`] and [`sleeper`] wait at the end: long enough never to fire while
/// a benchmark runs.
pub const PARK: Duration = Duration::from_secs(86_400);

/// The smallest step body: returns `value`.
pub async fn small(value: u64) -> Result<u64, std::io::Error> {
    Ok(value)
}

static STAMPS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

/// A step body that records when it ran (see [`take_stamps`]) and returns `value`.
pub async fn stamp(value: u64) -> Result<u64, std::io::Error> {
    STAMPS.lock().unwrap_or_else(PoisonError::into_inner).push(Instant::now());
    Ok(value)
}

/// Held by tests that read [`take_stamps`], which is global: the test harness runs tests on
/// several threads.
#[cfg(test)]
pub(crate) static STAMPS_IN_USE: Mutex<()> = Mutex::new(());

/// The instants at which [`stamp`] ran since the last call, oldest first; clears them.
pub fn take_stamps() -> Vec<Instant> {
    std::mem::take(&mut *STAMPS.lock().unwrap_or_else(PoisonError::into_inner))
}

/// `n` steps in `for i in 0..n`: the loop as users write it.
///
/// Each checkpoint stores what the loop has left so that a resumed loop goes on with the rest:
/// the range left, or (before the macro kept ranges as ranges) every remaining number.
#[durable]
pub async fn for_steps(n: u64) -> Result<u64, WorkflowError> {
    let mut sum = 0u64;
    for i in 0..n {
        sum += step!("add", small(i).await)?;
    }
    Ok(sum)
}

/// `n` steps in a `while` loop over a counter: each checkpoint holds three numbers.
#[durable]
pub async fn while_steps(n: u64) -> Result<u64, WorkflowError> {
    let mut i = 0u64;
    let mut sum = 0u64;
    while i < n {
        sum += step!("add", small(i).await)?;
        i += 1;
    }
    Ok(sum)
}

/// `n` steps whose bodies record when they ran ([`stamp`]): the time between two stamps is one
/// step's whole cycle (its checkpoint committed, the next step begun).
#[durable]
pub async fn stamped_steps(n: u64) -> Result<u64, WorkflowError> {
    let mut i = 0u64;
    let mut sum = 0u64;
    while i < n {
        sum += step!("add", stamp(i).await)?;
        i += 1;
    }
    Ok(sum)
}

/// Three steps in a row: the unit of the throughput figures.
#[durable]
pub async fn three_steps(x: u64) -> Result<u64, WorkflowError> {
    let a = step!("one", small(x).await)?;
    let b = step!("two", small(a + 1).await)?;
    let c = step!("three", small(b + 1).await)?;
    Ok(c)
}

/// Runs `k` steps, then waits on a timer ([`GATE`]); resumed, it runs `next` (whose body
/// stamps the moment the resumed run reached it) and `after_next` (whose body stamps the moment
/// `next`'s checkpoint was committed), then parks on a long timer.
#[durable]
pub async fn resume_probe(k: u64) -> Result<u64, WorkflowError> {
    let mut i = 0u64;
    let mut sum = 0u64;
    while i < k {
        sum += step!("before", small(i).await)?;
        i += 1;
    }
    wait!("gate", GATE);
    let reached = step!("next", stamp(sum).await)?;
    let committed = step!("after_next", stamp(reached).await)?;
    wait!("park", PARK);
    Ok(committed)
}

/// One step, then a timer of a day ([`PARK`]): a suspended execution for the memory figure.
#[durable]
pub async fn sleeper(id: u64) -> Result<u64, WorkflowError> {
    let value = step!("prepare", small(id).await)?;
    wait!("nap", PARK);
    Ok(value)
}

/// Branches of [`map_steps`] with an index at or past this never finish (`u64::MAX`: none), so
/// that figure 8 can stop a map half-way with a known set of committed branches.
pub static HANG_FROM: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

/// Branch bodies of [`map_steps`] that ran to their end, in this process.
pub static BRANCHES_RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The branch body of [`map_steps`]: returns `i`, or never returns if `i` is at or past
/// [`HANG_FROM`].
pub async fn branch(i: u64) -> Result<u64, std::io::Error> {
    use std::sync::atomic::Ordering;
    if i >= HANG_FROM.load(Ordering::Relaxed) {
        std::future::pending::<()>().await;
    }
    BRANCHES_RUN.fetch_add(1, Ordering::Relaxed);
    Ok(i)
}

/// How many branches of [`map_steps`] run at once.
pub const MAP_CONCURRENCY: usize = 64;

/// One `map!` over `0..n` whose branch bodies return their item ([`branch`]), 64 at a time;
/// returns the sum of the items.
#[durable]
pub async fn map_steps(n: u64) -> Result<u64, WorkflowError> {
    let batch = map!("each", 0..n, |i| branch(i).await, max_concurrency = MAP_CONCURRENCY)?;
    Ok(batch.into_result()?.into_iter().sum())
}

/// Starts `n` child workflows of [`three_steps`] (`start!` with `key = i`), then waits for each
/// in turn; returns the sum of their results.
#[durable]
pub async fn fan_out(n: u64) -> Result<u64, WorkflowError> {
    let mut children = Vec::new();
    for i in 0..n {
        children.push(start!("start", three_steps, i, key = i));
    }
    let mut sum = 0u64;
    for child in children {
        sum += wait!("join", child = child)?;
    }
    Ok(sum)
}
