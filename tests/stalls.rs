//! A store held up for longer than the lease must not make two workers run one step body at
//! once: the lease runs from the time the store grants it, a worker never runs an execution it
//! already runs, and a run checks its lease before every step body (issue: "a stalled claim runs
//! step bodies twice").
//!
//! Two engines (two workers, each with its own connections, as two processes would have) share
//! one store with a 1 s lease. An execution sleeps on a short timer, then runs three steps of
//! 1.5 s each. While the timer falls due, another connection holds the store's write lock (SQLite:
//! a write transaction) or the executions table (PostgreSQL: `LOCK TABLE`) for 3 s, three times
//! the lease. Every step body records when it ran; no two bodies of the execution may overlap,
//! and with no process dying each body runs exactly once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use durable_core::prelude::*;
use durable_core::store::{PostgresOptions, PostgresStore, Store};
use durable_core::testing::postgres::{SchemaGuard, admin, server, unique_schema};
use durable_core::{Engine, SqliteStore};

const LEASE: Duration = Duration::from_secs(1);
const STALL: Duration = Duration::from_secs(3);
const BODY: Duration = Duration::from_millis(1_500);

/// When each step body ran: `(step, worker thread's engine, began, ended)`.
static LEDGER: Mutex<Vec<(String, Instant, Instant)>> = Mutex::new(Vec::new());

async fn slow(step: &str) -> Result<u32, std::io::Error> {
    let began = Instant::now();
    tokio::time::sleep(BODY).await;
    LEDGER.lock().unwrap().push((step.to_owned(), began, Instant::now()));
    Ok(1)
}

#[durable]
async fn stalled(steps: u32) -> Result<u32, WorkflowError> {
    wait!("due_during_the_stall", Duration::from_millis(300));
    let one = step!("one", slow("one").await)?;
    let two = step!("two", slow("two").await)?;
    let three = step!("three", slow("three").await)?;
    Ok(steps + one + two + three)
}

/// Runs the scenario on two stores over one database; `stall` holds the store up.
async fn scenario<S: Store + Clone>(a: S, b: S, stall: impl std::future::Future<Output = ()>) {
    LEDGER.lock().unwrap().clear();
    let build = |store: S| {
        Engine::builder(store).register(stalled).lease(LEASE).poll_interval(Duration::from_millis(50)).build().unwrap()
    };
    let (first, second) = (build(a), build(b));
    first.start(stalled, "s-1", 0).await.unwrap();
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
    stall.await;
    let result = tokio::time::timeout(Duration::from_secs(60), first.result(stalled, "s-1")).await;
    stop.send(true).unwrap();
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(result.expect("the execution finishes").unwrap(), Ok(3));

    let ledger = LEDGER.lock().unwrap().clone();
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
    let (a, b) = (SqliteStore::open(&path).unwrap(), SqliteStore::open(&path).unwrap());
    let stall = async {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            // Begin while the timer runs, hold the write lock until well after it is due.
            std::thread::sleep(Duration::from_millis(100));
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
            std::thread::sleep(STALL);
            tx.commit().unwrap();
        })
        .await
        .unwrap();
    };
    scenario(a, b, stall).await;
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
    let stall = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let client = admin(&url).await;
        let lock = format!("BEGIN; LOCK TABLE \"{schema}\".executions IN ACCESS EXCLUSIVE MODE");
        client.batch_execute(&lock).await.unwrap();
        tokio::time::sleep(STALL).await;
        client.batch_execute("COMMIT").await.unwrap();
    };
    scenario(a, b, stall).await;
}
