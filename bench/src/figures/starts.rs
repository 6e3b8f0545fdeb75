//! Figure 7: starting work. 1,000 workflows of three steps, from the application's
//! `engine.start` calls to the last result, one process, SQLite with full durability; a worker
//! of the same engine runs them as they come.
//!
//! - 7a: the application calls `engine.start` 1,000 times, one after the other;
//! - 7b: 64 tasks of the application call it at once (1,000 calls in all);
//! - 7c: one `engine.start_many` of the 1,000.
//!
//! Starts go through the engine's group committer, as checkpoints do: concurrent starts share
//! a synced transaction, and a bulk start takes one per 512. The floor is SQLite's one-row
//! synced transactions per second on the same disk in the same run: what one start per
//! transaction could reach at best.

use std::path::Path;
use std::time::{Duration, Instant};

use durable_core::Engine;
use durable_core::engine::EngineStats;
use durable_core::store::{SqliteStore, Synchronous};

use super::floor::Floor;
use super::{Config, ensure, multi_thread};
use crate::BenchError;
use crate::report::{Better, Row, Target};
use crate::stats::Summary;
use crate::workflows::three_steps;

/// How the application starts the workflows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Starts {
    /// `engine.start`, one call after the other.
    OneByOne,
    /// `engine.start` from this many tasks at once.
    Concurrent(usize),
    /// One `engine.start_many`.
    Bulk,
}

/// Starts `n` workflows of three steps in a new SQLite file at `path` as `how` says, with a
/// worker of the same engine running; returns the time from the first start to the last
/// result, and the engine's counters.
pub async fn run_once(path: &Path, n: u64, how: Starts) -> Result<(Duration, EngineStats), BenchError> {
    let engine = Engine::builder(SqliteStore::create(path)?).register(three_steps).build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = engine.worker("bench");
    let running = tokio::spawn(async move {
        worker
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    let ids: Vec<String> = (0..n).map(|i| format!("s-{i:06}")).collect();
    let began = Instant::now();
    match how {
        Starts::OneByOne => {
            for (i, id) in ids.iter().enumerate() {
                engine.start(three_steps, id.clone(), i as u64).await?;
            }
        }
        Starts::Concurrent(tasks) => {
            let mut set = tokio::task::JoinSet::new();
            for task in 0..tasks {
                let (engine, ids) = (engine.clone(), ids.clone());
                set.spawn(async move {
                    for (i, id) in ids.into_iter().enumerate().skip(task).step_by(tasks) {
                        engine.start(three_steps, id, i as u64).await?;
                    }
                    Ok::<(), durable_core::EngineError>(())
                });
            }
            while let Some(done) = set.join_next().await {
                done.map_err(|e| format!("a starting task failed: {e}"))??;
            }
        }
        Starts::Bulk => {
            engine.start_many(three_steps, ids.iter().cloned().zip(0..n)).await?;
        }
    }
    for (i, id) in ids.iter().enumerate() {
        let result = engine.result(three_steps, id).await?;
        ensure(result == Ok(i as u64 + 2), || format!("{id} returned {result:?}"))?;
    }
    let elapsed = began.elapsed();
    let _ = stop.send(());
    running.await.map_err(|e| format!("the worker failed: {e}"))?;
    Ok((elapsed, engine.stats()))
}

/// Measures figure 7.
pub fn run(config: &Config) -> Result<Vec<Row>, BenchError> {
    let scratch = config.scratch("starts")?;
    let rt = multi_thread()?;
    let n: u64 = 1_000;
    let runs = config.runs(5, 2);
    let mut floor = Floor::open(&scratch.file("floor.db"), Synchronous::Full)?;
    floor.warm_up()?;
    let mut rows = Vec::new();
    let cases = [
        ("7a", "one engine.start after the other", Starts::OneByOne),
        ("7b", "engine.start from 64 tasks at once", Starts::Concurrent(64)),
        ("7c", "one engine.start_many", Starts::Bulk),
    ];
    for (figure, how_named, how) in cases {
        let (mut rates, mut floors, mut batches) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..runs {
            let path = scratch.file(&format!("{figure}-{run}.db"));
            let (elapsed, stats) = rt.block_on(run_once(&path, n, how))?;
            rates.push(n as f64 / elapsed.as_secs_f64());
            batches.push(stats.start_batches as f64);
            let tx = floor.transactions(100)?;
            floors.push(tx.len() as f64 / tx.iter().sum::<Duration>().as_secs_f64());
        }
        let name = format!("workflows of 3 steps per second, from {n} starts to the last result: {how_named}");
        let note = format!(
            "start transactions per run (median): {:.0} for {n} starts; a worker of the same engine runs them as \
             they come",
            Summary::of(&batches).median
        );
        rows.push(
            Row::new(figure, &name, "workflows/s", "SQLite WAL, synchronous=FULL", Better::Higher, Summary::of(&rates))
                .floor("one-row synced transactions/s", Summary::of(&floors))
                .target(Target::Value { bound: 5_000.0 })
                .note(note),
        );
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_of_starting_runs_everything() {
        let dir = std::env::temp_dir().join(format!("durable-bench-starts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = multi_thread().unwrap();
        for (i, how) in [Starts::OneByOne, Starts::Concurrent(8), Starts::Bulk].into_iter().enumerate() {
            let (_, stats) = rt.block_on(run_once(&dir.join(format!("{i}.db")), 40, how)).unwrap();
            assert_eq!(stats.starts, 40);
            if how == Starts::Bulk {
                assert_eq!(stats.start_batches, 1);
            }
        }
        drop(rt);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
