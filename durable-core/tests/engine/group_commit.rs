//! Group commit: many concurrent executions share store transactions.

use std::time::Instant;

use durable_core::store::{ListFilter, Status, Store};
use durable_core::{MemoryStore, SqliteStore};

use crate::support::{chain, clock, engine};

const EXECUTIONS: u64 = 200;

/// Runs many executions at once; `batches` asks that commits shared transactions, which only a
/// store that waits for the disk guarantees (commits queue up behind its sync).
async fn run_many<S: Store>(store: S, what: &str, batches: bool) {
    let clock = clock();
    let engine = engine(store, &clock);
    for n in 0..EXECUTIONS {
        engine.start(chain, format!("c-{n:03}"), n).await.unwrap();
    }
    let started = Instant::now();
    let runs = engine.worker("w-1").concurrency(256).run_until_idle().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(runs, EXECUTIONS as usize, "each execution ran once, to its end");
    let done = engine.store().list(ListFilter { status: Some(Status::Succeeded), ..ListFilter::default() });
    assert_eq!(done.await.unwrap().len(), EXECUTIONS as usize);
    assert_eq!(engine.result(chain, "c-007").await.unwrap(), Ok(9));

    let stats = engine.stats();
    assert_eq!(stats.commits, EXECUTIONS * 4, "three checkpoints and the result each");
    eprintln!(
        "{what}: {EXECUTIONS} executions, {} commits in {} transactions (average {:.1}, largest {}) in {elapsed:?}",
        stats.commits,
        stats.batches,
        stats.average_batch(),
        stats.largest_batch
    );
    if batches {
        assert!(stats.average_batch() > 1.0, "commits shared transactions: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_executions_share_sqlite_transactions() {
    let dir = tempfile::tempdir().unwrap();
    run_many(SqliteStore::create(dir.path().join("durable.db")).unwrap(), "sqlite", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_executions_share_memory_transactions() {
    run_many(MemoryStore::new(), "memory", false).await;
}
