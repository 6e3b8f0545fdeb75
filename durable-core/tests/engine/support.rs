//! Workflows, side-effect counters, crash switches and engines on both stores.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use durable_core::prelude::*;
use durable_core::store::{ExecutionRecord, Store};
use durable_core::{Engine, ManualClock, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub const HOUR: Duration = Duration::from_secs(3_600);
pub const YEAR: Duration = Duration::from_secs(365 * 24 * 3_600);
/// The engines' lease in these tests.
pub const LEASE: Duration = Duration::from_secs(30);

static COUNTS: LazyLock<Mutex<BTreeMap<String, u32>>> = LazyLock::new(Mutex::default);
static GATES: LazyLock<Mutex<HashMap<String, Gate>>> = LazyLock::new(Mutex::default);

/// A switch in a step body: the body signals `entered`, then waits for `release`.
#[derive(Clone, Default)]
pub struct Gate {
    pub entered: Arc<Notify>,
    pub release: Arc<Notify>,
}

/// Counts one side effect called `what` and returns the new count.
pub fn bump(what: &str) -> u32 {
    let mut counts = COUNTS.lock().unwrap();
    let count = counts.entry(what.to_owned()).or_default();
    *count += 1;
    *count
}

/// How often side effect `what` happened.
pub fn count(what: &str) -> u32 {
    COUNTS.lock().unwrap().get(what).copied().unwrap_or(0)
}

/// Makes the next body that passes the gate `key` signal and wait for its release.
pub fn arm_gate(key: &str) -> Gate {
    let gate = Gate::default();
    GATES.lock().unwrap().insert(key.to_owned(), gate.clone());
    gate
}

/// Makes the next body that passes the gate `key` signal and hang forever; returns the signal.
pub fn arm_hang(key: &str) -> Arc<Notify> {
    arm_gate(key).entered
}

/// Signals and waits for the release if gate `key` was armed, once.
pub async fn gate(key: &str) {
    let armed = GATES.lock().unwrap().remove(key);
    if let Some(gate) = armed {
        gate.entered.notify_one();
        gate.release.notified().await;
    }
}

/// A step body: counts `what` and returns `value`.
pub async fn effect<T>(what: String, value: T) -> Result<T, std::io::Error> {
    tokio::task::yield_now().await;
    bump(&what);
    Ok(value)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub amount: u64,
}

#[durable]
pub async fn greet(name: String) -> Result<String, WorkflowError> {
    let greeting = step!("compose", effect(format!("{name}/compose"), format!("hello, {name}")).await)?;
    Ok(greeting)
}

#[durable]
pub async fn nap(key: String) -> Result<String, WorkflowError> {
    step!("before", effect(format!("{key}/before"), ()).await)?;
    wait!("nap", YEAR);
    step!("after", effect(format!("{key}/after"), ()).await)?;
    Ok(format!("{key} rested"))
}

#[durable]
pub async fn pay(key: String) -> Result<String, WorkflowError> {
    let total = step!("price", effect(format!("{key}/price"), 30u64).await)?;
    let payment: Payment = wait!("payment", event);
    Ok(format!("{key}: paid {} of {total}", payment.amount))
}

#[durable]
pub async fn pay_or_timeout(key: String) -> Result<String, WorkflowError> {
    let payment: Result<Payment, Timeout> = wait!("payment", event, timeout = HOUR);
    match payment {
        Ok(payment) => Ok(format!("{key}: paid {}", payment.amount)),
        Err(timeout) => Ok(format!("{key}: {timeout}")),
    }
}

/// Fails its first `failures` attempts, with up to 3 attempts 10 s apart.
#[durable]
pub async fn flaky_fixed(key: String, failures: u32) -> Result<String, WorkflowError> {
    let result = step!("call", retry = Retry::fixed(3, Duration::from_secs(10)), flaky_call(&key, failures).await);
    match result {
        Ok(value) => Ok(value),
        Err(error) => Ok(format!("gave up: {error}")),
    }
}

/// Fails its first `failures` attempts, with up to 4 attempts 1 s, 2 s, 4 s apart.
#[durable]
pub async fn flaky_exponential(key: String, failures: u32) -> Result<String, WorkflowError> {
    let value = step!("call", retry = Retry::exponential(4), flaky_call(&key, failures).await)?;
    Ok(value)
}

pub async fn flaky_call(key: &str, failures: u32) -> Result<String, std::io::Error> {
    let attempt = bump(&format!("{key}/call"));
    if attempt <= failures {
        return Err(std::io::Error::other(format!("connection refused ({attempt})")));
    }
    Ok(format!("ok after {attempt}"))
}

/// A step that panics on its first `panics` attempts, with up to 3 attempts 10 s apart.
#[durable]
pub async fn panicky(key: String, panics: u32) -> Result<String, WorkflowError> {
    let value = step!("call", retry = Retry::fixed(3, Duration::from_secs(10)), panicky_call(&key, panics).await)?;
    Ok(value)
}

pub async fn panicky_call(key: &str, panics: u32) -> Result<String, std::io::Error> {
    let attempt = bump(&format!("{key}/call"));
    if attempt <= panics {
        panic!("index out of bounds ({attempt})");
    }
    Ok(format!("ok after {attempt}"))
}

/// Panics in its own code after its first checkpoint until `{key}/fixed` is counted.
#[durable]
pub async fn broken(key: String) -> Result<String, WorkflowError> {
    let n = step!("load", effect(format!("{key}/load"), 7u32).await)?;
    assert!(count(&format!("{key}/fixed")) > 0, "unexpected state {n}");
    Ok(format!("{key}: {n}"))
}

/// Waits for `payment`, then panics on an amount of 0 until `{key}/fixed` is counted.
#[durable]
pub async fn pay_strictly(key: String) -> Result<String, WorkflowError> {
    let payment: Payment = wait!("payment", event);
    assert!(payment.amount > 0 || count(&format!("{key}/fixed")) > 0, "a payment of 0");
    let amount = step!("book", effect(format!("{key}/book"), payment.amount).await)?;
    Ok(format!("{key}: booked {amount}"))
}

/// A step whose error is terminal: never retried.
#[durable]
pub async fn declined(key: String) -> Result<String, WorkflowError> {
    let value = step!("charge", retry = Retry::exponential(5), decline(&key).await)?;
    Ok(value)
}

async fn decline(key: &str) -> Result<String, StepError> {
    bump(&format!("{key}/charge"));
    Err(StepError::terminal("card declined"))
}

/// An at-most-once step with `attempts` attempts 1 s apart; its body may hang (see
/// [`arm_gate`]).
#[durable]
pub async fn charge_once(key: String, attempts: u32) -> Result<String, WorkflowError> {
    let policy = Retry::fixed(attempts, Duration::from_secs(1));
    let receipt = step!("charge", retry = policy, semantics = Semantics::AtMostOncePerAttempt, charge(&key).await);
    match receipt {
        Ok(receipt) => Ok(receipt),
        Err(error) => Ok(format!("not charged: {error}")),
    }
}

async fn charge(key: &str) -> Result<String, std::io::Error> {
    let attempt = bump(&format!("{key}/charge"));
    gate(key).await;
    Ok(format!("receipt {attempt}"))
}

/// Two steps; the second may stop at a gate (see [`arm_gate`]).
#[durable]
pub async fn two_steps(key: String) -> Result<String, WorkflowError> {
    let a = step!("a", effect(format!("{key}/a"), 1u32).await)?;
    let b = step!("b", hang_then(&key, a + 1).await)?;
    Ok(format!("{key}: {a} {b}"))
}

async fn hang_then(key: &str, value: u32) -> Result<u32, std::io::Error> {
    bump(&format!("{key}/b"));
    gate(key).await;
    Ok(value)
}

/// Three quick steps: load for the group commit.
#[durable]
pub async fn chain(n: u64) -> Result<u64, WorkflowError> {
    let a = step!("one", effect("chain".to_owned(), n).await)?;
    let b = step!("two", effect("chain".to_owned(), a + 1).await)?;
    let c = step!("three", effect("chain".to_owned(), b + 1).await)?;
    Ok(c)
}

/// One step that takes `secs` seconds of tokio time.
#[durable]
pub async fn slow(secs: u64) -> Result<u64, WorkflowError> {
    let took = step!("slow", take(secs).await)?;
    Ok(took)
}

async fn take(secs: u64) -> Result<u64, std::io::Error> {
    tokio::time::sleep(Duration::from_secs(secs)).await;
    Ok(secs)
}

/// Durable time that follows tokio's clock, so that paused tokio time drives both.
pub struct TokioClock(tokio::time::Instant);

impl TokioClock {
    pub fn new() -> Self {
        TokioClock(tokio::time::Instant::now())
    }
}

impl durable_core::Clock for TokioClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000).saturating_add(self.0.elapsed())
    }
}

/// A clock at a fixed, recognizable start.
pub fn clock() -> ManualClock {
    ManualClock::new(Timestamp::from_millis(1_700_000_000_000))
}

/// An engine on `store` with every test workflow, on `clock`.
pub fn engine<S: Store>(store: S, clock: &ManualClock) -> Engine<S> {
    Engine::builder(store)
        .clock(Arc::new(clock.clone()))
        .lease(LEASE)
        .register(greet)
        .register(nap)
        .register(pay)
        .register(pay_or_timeout)
        .register(flaky_fixed)
        .register(flaky_exponential)
        .register(declined)
        .register(charge_once)
        .register(two_steps)
        .register(chain)
        .register(panicky)
        .register(broken)
        .register(pay_strictly)
        .build()
        .expect("the engine builds")
}

/// The record without its lease: what a run may change even when it leaves the execution alone.
pub fn without_lease(mut record: ExecutionRecord) -> ExecutionRecord {
    record.lease = None;
    record
}

/// One test per store: `both!(check)` runs `check(store, tag)` on a `MemoryStore` and on a
/// `SqliteStore` in a temporary directory; `tag` tells them apart in counter keys.
macro_rules! both {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(durable_core::MemoryStore::new(), concat!("memory-", stringify!($check))).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = durable_core::SqliteStore::create(dir.path().join("durable.db")).unwrap();
                    super::$check(store, concat!("sqlite-", stringify!($check))).await;
                }
            )*
        }
    };
}
pub(crate) use both;

/// One test per store, as [`both`] does, and on PostgreSQL too when the `postgres` feature is on
/// (skipped, visibly, without a server).
macro_rules! stores {
    ($($check:ident),* $(,)?) => {
        $crate::support::both!($($check),*);
        #[cfg(feature = "postgres")]
        mod postgres {
            use durable_core::testing::postgres::{SchemaGuard, server, unique_schema};
            use durable_core::store::{PostgresOptions, PostgresStore};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(url) = server().await else { return };
                    let schema = unique_schema("children");
                    let _guard = SchemaGuard::new(&url, &schema);
                    let options = PostgresOptions { schema, ..PostgresOptions::default() };
                    let store = PostgresStore::connect_with(&url, options).await.unwrap();
                    super::$check(store, concat!("postgres-", stringify!($check))).await;
                }
            )*
        }
    };
}
pub(crate) use stores;

/// Runs the `durable` command line on the SQLite file `path` with `args`.
#[cfg(feature = "cli")]
pub async fn durable_cli(path: &std::path::Path, args: &[&str]) -> Result<String, durable_core::cli::CliError> {
    let mut all = vec!["durable".to_owned(), "--database".to_owned(), path.display().to_string()];
    all.extend(args.iter().map(|arg| (*arg).to_owned()));
    durable_core::cli::run_args(all).await
}
