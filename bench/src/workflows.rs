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
