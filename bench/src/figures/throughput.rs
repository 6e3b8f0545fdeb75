//! Figure 3: throughput of one worker on SQLite with full durability.
//!
//! `n` executions of three steps each are created first (not timed); then one worker runs them
//! all, up to 256 at once (its default concurrency), and the time from its start to the last
//! execution's end gives executions and steps per second. The engine's group committer writes
//! the checkpoints that the running executions queue up meanwhile in one transaction, one sync
//! to disk; `max_batch(1)` turns that off, to show what shared commits give.

use std::path::Path;
use std::time::{Duration, Instant};

use durable_core::Engine;
use durable_core::store::{AnyStore, ListFilter, SqliteOptions, SqliteStore, Status, Store, Synchronous};

use super::floor::Floor;
use super::{Config, copy_store, ensure, multi_thread, settle};
use crate::BenchError;
use crate::machine::CpuTimes;
use crate::report::{Better, Row, Target};
use crate::stats::Summary;
use crate::workflows::three_steps;

/// Creates `n` executions of [`three_steps`] in the SQLite file at `path`, with
/// `synchronous = NORMAL` since the setup needs no durability.
pub async fn prepare(path: &Path, n: u64) -> Result<(), BenchError> {
    let options = SqliteOptions { synchronous: Synchronous::Normal, ..SqliteOptions::default() };
    let engine = Engine::builder(SqliteStore::open_or_create_with(path, options)?).register(three_steps).build()?;
    for i in 0..n {
        engine.start(three_steps, format!("x-{i:06}"), i).await?;
    }
    drop(engine);
    settle().await;
    Ok(())
}

/// What one throughput run measured.
#[derive(Clone, Debug)]
pub struct Sample {
    /// From the worker's start to the last execution's end.
    pub elapsed: Duration,
    /// Executions run to completion.
    pub executions: u64,
    /// Store transactions the group committer wrote.
    pub batches: u64,
    /// Commits in them.
    pub commits: u64,
    /// The most commits one transaction held.
    pub largest: usize,
    /// The share of the machine's CPU time that was busy during the run (all processes).
    pub cpu_busy: f64,
}

/// Runs every execution in the SQLite file at `path` (full durability) with one worker of
/// `concurrency` and an engine of `max_batch`, and checks that all `n` succeeded.
pub async fn run_all(path: &Path, n: u64, max_batch: usize, concurrency: usize) -> Result<Sample, BenchError> {
    run_all_with(path, Synchronous::Full, n, max_batch, concurrency).await
}

/// [`run_all`] with `synchronous` instead of full durability.
pub async fn run_all_with(
    path: &Path,
    synchronous: Synchronous,
    n: u64,
    max_batch: usize,
    concurrency: usize,
) -> Result<Sample, BenchError> {
    let store = SqliteStore::open_with(path, SqliteOptions { synchronous, ..SqliteOptions::default() })?;
    run_on(store, n, max_batch, concurrency).await
}

/// [`run_all`] through [`AnyStore`], opened from the URL `sqlite:PATH`: what an application
/// that picks its store from configuration runs (row 3y against 3a).
pub async fn run_all_any(path: &Path, n: u64, max_batch: usize, concurrency: usize) -> Result<Sample, BenchError> {
    let store = AnyStore::connect(&format!("sqlite:{}", path.display())).await?;
    ensure(store.kind() == "sqlite", || format!("sqlite:PATH opened a {} store", store.kind()))?;
    run_on(store, n, max_batch, concurrency).await
}

/// Runs every execution in `store` as [`run_all_with`] describes.
async fn run_on<S: Store>(store: S, n: u64, max_batch: usize, concurrency: usize) -> Result<Sample, BenchError> {
    let engine = Engine::builder(store).register(three_steps).max_batch(max_batch).build()?;
    let worker = engine.worker("bench").concurrency(concurrency);
    let (start, cpu) = (Instant::now(), CpuTimes::now());
    worker.run_until_idle().await?;
    let (elapsed, cpu_busy) = (start.elapsed(), CpuTimes::now().busy_since(&cpu));
    let stats = engine.stats();
    let filter = ListFilter { status: Some(Status::Succeeded), ..ListFilter::default() };
    let done = engine.store().list(filter).await?.len() as u64;
    ensure(done == n, || format!("{done} of {n} executions succeeded"))?;
    drop(worker);
    drop(engine);
    settle().await;
    Ok(Sample {
        elapsed,
        executions: n,
        batches: stats.batches,
        commits: stats.commits,
        largest: stats.largest_batch,
        cpu_busy,
    })
}

/// Measures figure 3.
pub fn run(config: &Config) -> Result<Vec<Row>, BenchError> {
    let scratch = config.scratch("throughput")?;
    let rt = multi_thread()?;
    let mut rows = Vec::new();
    let shared_n: u64 = if config.quick { 2_000 } else { 10_000 };
    let single_n: u64 = if config.quick { 300 } else { 2_000 };
    let mut floor = Floor::open(&scratch.file("floor.db"), Synchronous::Full)?;
    floor.warm_up()?;
    let cases = [
        ("3a", Synchronous::Full, 512, shared_n),
        ("3n", Synchronous::Normal, 512, shared_n),
        ("3c", Synchronous::Full, 1, single_n),
    ];
    for (figure, synchronous, max_batch, n) in cases {
        let template = scratch.file(&format!("template-{n}.db"));
        if !template.exists() {
            rt.block_on(prepare(&template, n))?;
        }
        let runs = config.runs(5, 2);
        let (mut samples, mut floors, mut any_rates) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..runs {
            let path = scratch.file(&format!("run-{figure}-{run}.db"));
            copy_store(&template, &path)?;
            samples.push(rt.block_on(run_all_with(&path, synchronous, n, max_batch, 256))?);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            if figure == "3a" {
                // Interleaved with 3a, so that both see the same machine.
                copy_store(&template, &path)?;
                let sample = rt.block_on(run_all_any(&path, n, max_batch, 256))?;
                any_rates.push(sample.executions as f64 / sample.elapsed.as_secs_f64());
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            let tx = floor.transactions(100)?;
            floors.push(tx.len() as f64 / tx.iter().sum::<Duration>().as_secs_f64());
        }
        let rates: Vec<f64> = samples.iter().map(|s| s.executions as f64 / s.elapsed.as_secs_f64()).collect();
        let commits: u64 = samples.iter().map(|s| s.commits).sum();
        let batches: u64 = samples.iter().map(|s| s.batches).sum();
        let largest = samples.iter().map(|s| s.largest).max().unwrap_or(0);
        let per_exec = commits as f64 / (n as f64 * samples.len() as f64);
        let busy: Vec<f64> = samples.iter().map(|s| s.cpu_busy * 100.0).collect();
        let note = format!(
            "{n} executions per run, worker concurrency 256; {per_exec:.1} commits per execution, \
             {:.1} commits per transaction on average, at most {largest}; CPU {:.0}% busy (median, all cores)",
            commits as f64 / batches.max(1) as f64,
            Summary::of(&busy).median,
        );
        let full = "SQLite WAL, synchronous=FULL";
        match figure {
            "3a" => {
                let steps: Vec<f64> = rates.iter().map(|r| r * 3.0).collect();
                let name = "executions of 3 steps per second, one worker (group commit)";
                rows.push(
                    Row::new("3a", name, "exec/s", full, Better::Higher, Summary::of(&rates))
                        .target(Target::Value { bound: 5_000.0 })
                        .note(note),
                );
                let name = "steps per second, same runs";
                rows.push(
                    Row::new("3b", name, "steps/s", full, Better::Higher, Summary::of(&steps))
                        .target(Target::Value { bound: 15_000.0 }),
                );
                let ratio = Summary::of(&any_rates).median / Summary::of(&rates).median;
                let name = "3a through AnyStore (sqlite:PATH), runs interleaved with 3a";
                rows.push(
                    Row::new("3y", name, "exec/s", full, Better::Higher, Summary::of(&any_rates))
                        .note(format!("{ratio:.3}x the median of 3a")),
                );
            }
            "3n" => {
                let name = "executions of 3 steps per second, one worker, no sync to disk";
                let normal = "SQLite WAL, synchronous=NORMAL";
                rows.push(Row::new("3n", name, "exec/s", normal, Better::Higher, Summary::of(&rates)).note(note));
            }
            _ => {
                // Without shared commits every commit is one synced transaction: the floor is
                // the rate of plain one-row transactions over the commits an execution makes.
                let bound: Vec<f64> = floors.iter().map(|tx_per_s| tx_per_s / per_exec).collect();
                let name = "executions of 3 steps per second, max_batch(1): no shared commits";
                rows.push(
                    Row::new("3c", name, "exec/s", full, Better::Higher, Summary::of(&rates))
                        .floor("one-row transactions/s ÷ commits per execution", Summary::of(&bound))
                        .note(note),
                );
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_throughput_run() {
        let dir = std::env::temp_dir().join(format!("durable-bench-tp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = multi_thread().unwrap();
        let (template, path) = (dir.join("t.db"), dir.join("r.db"));
        rt.block_on(prepare(&template, 20)).unwrap();
        copy_store(&template, &path).unwrap();
        let sample = rt.block_on(run_all(&path, 20, 512, 8)).unwrap();
        assert_eq!(sample.executions, 20);
        // Row 3y: the same through AnyStore, which checks that all 20 succeeded.
        let any = dir.join("any.db");
        copy_store(&template, &any).unwrap();
        assert_eq!(rt.block_on(run_all_any(&any, 20, 512, 8)).unwrap().executions, 20);
        drop(rt);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
