//! A store held up for longer than the lease must not make two workers run one step body at
//! once: the lease runs from the time the store grants it, a worker never runs an execution it
//! already runs, and a run checks its lease before every step body (issue: "a stalled claim runs
//! step bodies twice").
//!
//! Two engines (two workers, each with its own connections, as two processes would have) share
//! one store with a 1 s lease. An execution sleeps on a short timer, then runs three steps of
//! 1.5 s each. Once the timer is due, another connection takes the store's write lock (SQLite: a
//! write transaction) or the executions table (PostgreSQL: `LOCK TABLE`) and holds it for 3 s,
//! three times the lease; the workers start while it is held, so their first claims wait for it.
//! Every step body records when it ran; no two bodies of the execution may overlap, and with no
//! process dying each body runs exactly once. (Before leases ran from their grant, the first
//! claim was granted a lease that had expired while it waited, and the other worker took the
//! execution over in the middle of a body.)

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use durable_core::prelude::*;
use durable_core::store::{PostgresOptions, PostgresStore, Store};
use durable_core::testing::postgres::{SchemaGuard, admin, server, unique_schema};
use durable_core::{Engine, SqliteStore};
use tokio::sync::oneshot;

const LEASE: Duration = Duration::from_secs(1);
const STALL: Duration = Duration::from_secs(3);
const BODY: Duration = Duration::from_millis(1_500);

/// When each step body ran: `(test, step, began, ended)`.
static LEDGER: Mutex<Vec<(String, String, Instant, Instant)>> = Mutex::new(Vec::new());

async fn slow(test: &str, step: &str) -> Result<u32, std::io::Error> {
    let began = Instant::now();
    tokio::time::sleep(BODY).await;
    LEDGER.lock().unwrap().push((test.to_owned(), step.to_owned(), began, Instant::now()));
    Ok(1)
}

#[durable]
async fn stalled(test: String) -> Result<u32, WorkflowError> {
    wait!("due_before_the_stall", Duration::from_millis(100));
    let one = step!("one", slow(&test, "one").await)?;
    let two = step!("two", slow(&test, "two").await)?;
    let three = step!("three", slow(&test, "three").await)?;
    Ok(one + two + three)
}

/// Runs the scenario on two stores over one database; `stall` holds the store up, and says
/// through `locked` when it holds it.
async fn scenario<S: Store + Clone>(
    test: &str,
    a: S,
    b: S,
    stall: impl Future<Output = ()> + Send + 'static,
    locked: oneshot::Receiver<()>,
) {
    let build = |store: S| {
        Engine::builder(store).register(stalled).lease(LEASE).poll_interval(Duration::from_millis(50)).build().unwrap()
    };
    let (first, second) = (build(a), build(b));
    first.start(stalled, "s-1", test.to_owned()).await.unwrap();
    // Run until the timer, then let it fall due with nobody running the execution.
    first.worker("w-a").run_until_idle().await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stall = tokio::spawn(stall);
    locked.await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for (engine, name) in [(first.clone(), "w-a"), (second.clone(), "w-b")] {
        let mut stopped = stopped.clone();
        workers.push(tokio::spawn(async move {
            engine
                .worker(name)
                .run(async move {
                    while !*stopped.borrow_and_update() {
                        let _ = stopped.changed().await;
                    }
                })
                .await;
        }));
    }
    stall.await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(60), first.result(stalled, "s-1")).await;
    stop.send(true).unwrap();
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(result.expect("the execution finishes").unwrap(), Ok(3));

    let ledger: Vec<(String, Instant, Instant)> = LEDGER
        .lock()
        .unwrap()
        .iter()
        .filter(|(of, ..)| of == test)
        .map(|(_, step, began, ended)| (step.clone(), *began, *ended))
        .collect();
    for step in ["one", "two", "three"] {
        let runs = ledger.iter().filter(|(name, ..)| name == step).count();
        assert_eq!(runs, 1, "step {step} ran {runs} times with no process dying: {ledger:?}");
    }
    for (i, (x, x_began, x_ended)) in ledger.iter().enumerate() {
        for (y, y_began, y_ended) in &ledger[i + 1..] {
            let overlap = x_began < y_ended && y_began < x_ended;
            assert!(!overlap, "the bodies of {x} and {y} overlapped: {ledger:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_write_lock_held_past_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stalls.db");
    let (a, b) = (SqliteStore::create(&path).unwrap(), SqliteStore::open(&path).unwrap());
    let (tell, locked) = oneshot::channel();
    let stall = async move {
        tokio::task::spawn_blocking(move || {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
            tell.send(()).unwrap();
            std::thread::sleep(STALL);
            tx.commit().unwrap();
        })
        .await
        .unwrap();
    };
    scenario("sqlite", a, b, stall, locked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_table_locked_past_the_lease() {
    let Some(url) = server().await else { return };
    let schema = unique_schema("stalls");
    let _guard = SchemaGuard::new(&url, &schema);
    let connect = || async {
        let options = PostgresOptions { schema: schema.clone(), pool_size: 4, ..PostgresOptions::default() };
        PostgresStore::connect_with(&url, options).await.unwrap()
    };
    let (a, b) = (connect().await, connect().await);
    let (tell, locked) = oneshot::channel();
    let (url, table) = (url.clone(), format!("\"{schema}\".executions"));
    let stall = async move {
        let client = admin(&url).await;
        client.batch_execute(&format!("BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")).await.unwrap();
        tell.send(()).unwrap();
        tokio::time::sleep(STALL).await;
        client.batch_execute("COMMIT").await.unwrap();
    };
    scenario("postgres", a, b, stall, locked).await;
}
