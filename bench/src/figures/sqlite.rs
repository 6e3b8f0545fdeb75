//! Figure 2: per-step latency of one sequential workflow on SQLite, beside the floor.
//!
//! One execution runs `n` steps in a row on a [`SqliteStore`]; each step body stamps the time
//! it ran, so the time between two stamps is one whole step cycle: the state serialized, the
//! checkpoint committed (one SQLite transaction, synced to disk with `synchronous = FULL`), the
//! next step begun. The floor is a plain one-row transaction with the same pragmas
//! ([`Floor`]), measured in the same run, interleaved with the workflow's runs.

use std::path::Path;
use std::time::{Duration, Instant};

use durable_core::store::{
    Commit, EventKind, ExecutionRecord, HistoryEvent, NewExecution, Snapshot, SqliteOptions, SqliteStore, Store,
    Synchronous,
};
use durable_core::{Clock, Engine, SystemClock, Worker, Workflow};

use super::floor::{Floor, WARM_UP_PAGES};
use super::{Config, current_thread, ensure, micros};
use crate::BenchError;
use crate::report::{Better, Row, Target};
use crate::stats::{Summary, percentile};
use crate::workflows::{stamped_steps, take_stamps};

/// An engine and its worker on one SQLite file, running one execution after the other.
pub struct Sequential {
    engine: Engine<SqliteStore>,
    worker: Worker<SqliteStore>,
    runs: u64,
}

impl Sequential {
    /// Opens the store at `path` with `synchronous` and builds the engine. Must be called inside
    /// a tokio runtime.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Self, BenchError> {
        let store = SqliteStore::open_or_create_with(path, SqliteOptions { synchronous, ..SqliteOptions::default() })?;
        let engine = Engine::builder(store).register(stamped_steps).build()?;
        let worker = engine.worker("bench");
        Ok(Sequential { engine, worker, runs: 0 })
    }

    /// Runs one execution of `n` steps and returns the `n - 1` step cycles between its stamps.
    pub async fn run(&mut self, n: u64) -> Result<Vec<Duration>, BenchError> {
        self.runs += 1;
        let id = format!("sequential-{}", self.runs);
        self.engine.start(stamped_steps, id.as_str(), n).await?;
        take_stamps();
        self.worker.run_until_idle().await?;
        let stamps = take_stamps();
        let result = self.engine.result(stamped_steps, &id).await?;
        ensure(result == Ok(n * n.saturating_sub(1) / 2), || format!("{id} returned {result:?}"))?;
        ensure(stamps.len() as u64 == n, || format!("{id} stamped {} of {n} steps", stamps.len()))?;
        Ok(stamps.windows(2).map(|pair| pair[1] - pair[0]).collect())
    }
}

/// The store alone, without the engine: one `SqliteStore::commit` per checkpoint of the shape
/// the engine writes for a step (the new snapshot, the step record cleared, one
/// `StepSucceeded` history event carrying the state), under a lease as the engine's are.
pub struct StoreOnly {
    store: SqliteStore,
    record: ExecutionRecord,
    fingerprint: String,
    i: u64,
}

impl StoreOnly {
    /// Opens the store at `path` with `synchronous` and creates one execution in it, leased to
    /// this benchmark. Must be called inside a tokio runtime.
    pub async fn open(path: &Path, synchronous: Synchronous) -> Result<Self, BenchError> {
        let store = SqliteStore::open_or_create_with(path, SqliteOptions { synchronous, ..SqliteOptions::default() })?;
        let now = SystemClock.now();
        store.create(NewExecution::new("store-only", "stamped_steps", "200", now)).await?;
        let lease = Duration::from_secs(3_600);
        let clock: durable_core::SharedClock = std::sync::Arc::new(SystemClock);
        let record = store.claim("store-only", "bench", &clock, lease).await?.ok_or("cannot lease the execution")?;
        let fingerprint = stamped_steps.facts().fingerprint.to_owned();
        Ok(StoreOnly { store, record, fingerprint, i: 0 })
    }

    /// Commits `n` checkpoints one after the other and returns the time of each.
    pub async fn run(&mut self, n: u64) -> Result<Vec<Duration>, BenchError> {
        let mut times = Vec::with_capacity(n as usize);
        for _ in 0..n {
            self.i += 1;
            let (i, now) = (self.i, SystemClock.now());
            let state = format!(r#"{{"add":{{"i":{i},"n":200,"sum":{}}}}}"#, i * 7);
            let event = HistoryEvent::new(now, EventKind::StepSucceeded)
                .with_point("add", file!(), line!())
                .with_attempt(1)
                .with_detail("attempt 1, took 0 ms")
                .with_state(state.clone());
            let mut commit = Commit::on(&self.record, now);
            commit.lease = self.record.lease.as_ref().map(|lease| lease.token());
            commit.snapshot = Some(Snapshot { point: "add".to_owned(), fingerprint: self.fingerprint.clone(), state });
            commit.step = None;
            commit.events.push(event);
            let start = Instant::now();
            self.record = self.store.commit(commit).await?;
            times.push(start.elapsed());
        }
        Ok(times)
    }
}

fn mean_micros(times: &[Duration]) -> f64 {
    times.iter().map(|d| micros(*d)).sum::<f64>() / times.len().max(1) as f64
}

/// Measures figure 2, with `synchronous = FULL` (the default, the figure) and `NORMAL` (to show
/// what the sync to disk costs).
pub fn run(config: &Config) -> Result<Vec<Row>, BenchError> {
    // Short runs, the floor's interleaved with the workflow's, so that both see the same disk:
    // other processes' writes make single syncs take milliseconds now and then.
    let runs = config.runs(15, 3);
    let steps: u64 = if config.quick { 50 } else { 100 };
    let scratch = config.scratch("sqlite-latency")?;
    let rt = current_thread()?;
    let mut rows = Vec::new();
    for (figure, synchronous, label) in [("2", Synchronous::Full, "FULL"), ("2n", Synchronous::Normal, "NORMAL")] {
        let mut floor = Floor::open(&scratch.file(&format!("floor-{label}.db")), synchronous)?;
        let mut sequential =
            rt.block_on(async { Sequential::open(&scratch.file(&format!("store-{label}.db")), synchronous) })?;
        let mut store_only =
            rt.block_on(StoreOnly::open(&scratch.file(&format!("commits-{label}.db")), synchronous))?;
        // Warm-up: the statement caches, and each WAL file past its first wrap-around (a step
        // writes about three pages, the floor one; see `Floor::warm_up`).
        floor.warm_up()?;
        rt.block_on(sequential.run(WARM_UP_PAGES as u64 / 2))?;
        rt.block_on(store_only.run(WARM_UP_PAGES as u64 / 2))?;
        let (mut values, mut floors, mut cycles, mut transactions) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut commits = Vec::new();
        for _ in 0..runs {
            let tx = floor.transactions(steps as usize)?;
            let store = rt.block_on(store_only.run(steps))?;
            let steps = rt.block_on(sequential.run(steps))?;
            floors.push(mean_micros(&tx));
            commits.push(mean_micros(&store));
            values.push(mean_micros(&steps));
            transactions.extend(tx.iter().map(|d| micros(*d)));
            cycles.extend(steps.iter().map(|d| micros(*d)));
        }
        let note = format!(
            "{label}: one execution of {steps} steps per run; single step cycles p50 {:.0} µs, p99 {:.0} µs; \
             single floor transactions p50 {:.0} µs, p99 {:.0} µs",
            percentile(&cycles, 50.0),
            percentile(&cycles, 99.0),
            percentile(&transactions, 50.0),
            percentile(&transactions, 99.0),
        );
        let name = format!("one sequential workflow, per step (synchronous = {label})");
        let store = format!("SQLite WAL, synchronous={label}");
        let mut row = Row::new(figure, &name, "µs/step", &store, Better::Lower, Summary::of(&values))
            .floor("one-row transaction", Summary::of(&floors))
            .note(note);
        if synchronous == Synchronous::Full {
            row = row.target(Target::FloorRatio { ratio: 1.3 });
        }
        rows.push(row);
        let name = format!("the store alone: SqliteStore::commit of one step's checkpoint (synchronous = {label})");
        rows.push(
            Row::new(&format!("{figure}s"), &name, "µs/commit", &store, Better::Lower, Summary::of(&commits))
                .floor("one-row transaction", Summary::of(&floors)),
        );
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_sequential_run() {
        let _stamps = crate::workflows::STAMPS_IN_USE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = std::env::temp_dir().join(format!("durable-bench-seq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = current_thread().unwrap();
        let mut sequential = rt.block_on(async { Sequential::open(&dir.join("s.db"), Synchronous::Normal) }).unwrap();
        assert_eq!(rt.block_on(sequential.run(5)).unwrap().len(), 4);
        drop(sequential);
        drop(rt);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
