//! Figure 4: resume latency against the number of steps already completed.
//!
//! For each `k`, an execution of [`resume_probe`] runs `k` steps and suspends on a timer; its
//! SQLite file is copied (and synced) before each run. A run then resumes it in one of two
//! [`Mode`]s: as a restarted process (open the store, build an engine whose clock is past the
//! timer, let a worker claim it) or as a worker that has been running (store open, another
//! execution served, then the clock moves past the timer). The `next` step's body stamps when
//! the run reached it; the step after it stamps when `next`'s checkpoint was committed.
//!
//! A replaying runtime would re-run `k` steps' worth of history here; a snapshot resume loads
//! one row whatever `k` is, so the figure should be flat in `k`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::store::{SqliteOptions, SqliteStore, Status, Synchronous};
use durable_core::{Engine, ManualClock, Timestamp};

use super::floor::Floor;
use super::{Config, copy_store, current_thread, ensure, millis, settle};
use crate::BenchError;
use crate::report::{Better, Row, Target};
use crate::stats::Summary;
use crate::workflows::{GATE, resume_probe, take_stamps};

/// The numbers of completed steps measured.
pub const KS: [u64; 4] = [10, 100, 1_000, 10_000];

/// The virtual time the probes are set up at.
const SET_UP_AT: Timestamp = Timestamp::from_millis(1_700_000_000_000);

fn options(synchronous: Synchronous) -> SqliteOptions {
    SqliteOptions { synchronous, ..SqliteOptions::default() }
}

/// Creates the SQLite file `path` holding one execution of [`resume_probe`] that ran `k` steps
/// and now waits on its timer (set up with `synchronous = NORMAL`: the setup needs no
/// durability).
pub async fn prepare(path: &Path, k: u64) -> Result<(), BenchError> {
    let store = SqliteStore::open_or_create_with(path, options(Synchronous::Normal))?;
    let clock = ManualClock::new(SET_UP_AT);
    let engine = Engine::builder(store).clock(Arc::new(clock)).register(resume_probe).build()?;
    engine.start(resume_probe, "probe", k).await?;
    engine.worker("setup").run_until_idle().await?;
    let status = engine.status("probe").await?;
    ensure(status.status == Status::Suspended && status.wake_at.is_some(), || format!("probe is {status:?}"))?;
    drop(engine);
    settle().await;
    Ok(())
}

/// What one resume took, from before the store was opened.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Until the store was open (`SqliteStore::open`).
    pub opened: Duration,
    /// Until the engine was built.
    pub built: Duration,
    /// Until the next step's body ran: open, build, claim, load the snapshot, fire the timer.
    pub reached: Duration,
    /// Until the next step's checkpoint was committed (the step after it began).
    pub committed: Duration,
}

/// How a resume is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// As a restarted process: the clock starts before the store is opened, so the figure
    /// includes opening the file and the first statements on a new connection.
    Restart,
    /// As a worker that has been running: the store is open and has served another execution
    /// (which started, ran a step and suspended) before the clock starts at the worker's claim.
    Running,
}

/// Resumes the execution of the SQLite file `path` (made by [`prepare`]) in `mode`, with
/// `synchronous`.
pub async fn resume(path: &Path, synchronous: Synchronous, mode: Mode) -> Result<Sample, BenchError> {
    take_stamps();
    // A running worker warms up at a time when the probe's timer has not fired yet.
    let early = SET_UP_AT.saturating_add(GATE / 2);
    let due = SET_UP_AT.saturating_add(GATE + Duration::from_secs(1));
    let clock = ManualClock::new(if mode == Mode::Running { early } else { due });
    let mut start = Instant::now();
    let store = SqliteStore::open_with(path, options(synchronous))?;
    let opened = start.elapsed();
    let engine = Engine::builder(store).clock(Arc::new(clock.clone())).register(resume_probe).build()?;
    let built = start.elapsed();
    let worker = engine.worker("restarted");
    if mode == Mode::Running {
        engine.start(resume_probe, "warm-up", 1).await?;
        worker.run_until_idle().await?;
        let status = engine.status("warm-up").await?;
        ensure(status.point.as_deref() == Some("gate"), || format!("the warm-up is at {:?}", status.point))?;
        clock.set(due);
        start = Instant::now();
    }
    worker.run_until_idle().await?;
    let stamps = take_stamps();
    ensure(stamps.len() == 2, || format!("the resumed probe stamped {} times, not twice", stamps.len()))?;
    let status = engine.status("probe").await?;
    ensure(status.point.as_deref() == Some("park"), || format!("the resumed probe is at {:?}", status.point))?;
    drop(worker);
    drop(engine);
    settle().await;
    Ok(Sample { opened, built, reached: stamps[0] - start, committed: stamps[1] - start })
}

/// Measures figure 4.
pub fn run(config: &Config) -> Result<Vec<Row>, BenchError> {
    let runs = config.runs(15, 3);
    let scratch = config.scratch("resume")?;
    let rt = current_thread()?;
    let mut sizes = Vec::new();
    for k in KS {
        let template = scratch.file(&format!("template-{k}.db"));
        rt.block_on(prepare(&template, k))?;
        super::checkpoint(&template)?;
        sizes.push(std::fs::metadata(&template)?.len());
    }
    let floor_file = scratch.file("floor.db");
    let mut floor = Floor::open(&floor_file, Synchronous::Full)?;
    floor.warm_up()?;
    let mut restarts = Vec::new();
    let cases = [
        (Synchronous::Full, Mode::Restart, &KS[..]),
        (Synchronous::Full, Mode::Running, &KS[..]),
        (Synchronous::Normal, Mode::Running, &[KS[0], KS[3]][..]),
    ];
    let mut samples: Vec<Vec<(u64, Sample)>> = vec![Vec::new(); cases.len()];
    let mut floors = Vec::new();
    let path = scratch.file("run.db");
    for run in 0..=runs {
        for (case, (synchronous, mode, ks)) in cases.iter().enumerate() {
            for &k in *ks {
                copy_store(&scratch.file(&format!("template-{k}.db")), &path)?;
                let sample = rt.block_on(resume(&path, *synchronous, *mode))?;
                // The first round warms up the page cache and the code paths.
                if run > 0 {
                    samples[case].push((k, sample));
                }
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
        }
        let tx = floor.transactions(20)?;
        let restart = Floor::restart(&floor_file, &scratch.file("floor-run.db"), Synchronous::Full)?;
        if run > 0 {
            floors.push(tx.iter().map(|d| millis(*d)).sum::<f64>() / tx.len() as f64);
            restarts.push(millis(restart));
        }
    }
    let floor = Summary::of(&floors);
    let restart_floor = Summary::of(&restarts);
    let of = |case: usize, k: u64, pick: fn(&Sample) -> Duration| -> Summary {
        let values: Vec<f64> = samples[case].iter().filter(|(kk, _)| *kk == k).map(|(_, s)| millis(pick(s))).collect();
        Summary::of(&values)
    };
    let mut rows = Vec::new();
    let full = "SQLite WAL, synchronous=FULL";
    let flat = |family: &str| Target::RowRatio { of: format!("{family}-{}", KS[0]), ratio: 1.2 };
    for (i, &k) in KS.iter().enumerate() {
        let name = format!("after a restart, {k} steps done: open, claim, load, reach the next step");
        let mut row = Row::new(&format!("4a-{k}"), &name, "ms", full, Better::Lower, of(0, k, |s| s.reached))
            .floor("open + first one-row transaction", restart_floor.clone())
            .note(format!(
                "file of {} KiB after {k} steps; of the median, opening the store takes {:.3} ms, building the \
                 engine {:.3} ms, the claim, load and run to the step the rest",
                sizes[i] / 1024,
                of(0, k, |s| s.opened).median,
                of(0, k, |s| s.built - s.opened).median,
            ));
        if k == KS[3] {
            row = row.target(flat("4a")).target(Target::Value { bound: 1.0 });
        }
        rows.push(row);
    }
    for &k in &KS {
        let name = format!("after a restart, {k} steps done: until the next step's checkpoint is committed");
        let mut row = Row::new(&format!("4b-{k}"), &name, "ms", full, Better::Lower, of(0, k, |s| s.committed));
        if k == KS[3] {
            row = row.target(flat("4b"));
        }
        rows.push(row);
    }
    // The claim is not synced (a lease change), so reaching the step waits for no sync; the
    // step's checkpoint is the first synced write, which the floor compares with.
    for &k in &KS {
        let name = format!("running worker, {k} steps done: claim, load, reach the next step");
        let mut row = Row::new(&format!("4w-{k}"), &name, "ms", full, Better::Lower, of(1, k, |s| s.reached));
        if k == KS[3] {
            row = row.target(flat("4w")).target(Target::Value { bound: 1.0 });
        }
        rows.push(row);
    }
    for &k in &[KS[0], KS[3]] {
        let name = format!("running worker, {k} steps done: until the next step's checkpoint is committed");
        let mut row = Row::new(&format!("4x-{k}"), &name, "ms", full, Better::Lower, of(1, k, |s| s.committed))
            .floor("one-row transaction", floor.clone());
        if k == KS[3] {
            row = row.target(flat("4x"));
        }
        rows.push(row);
    }
    for &k in &[KS[0], KS[3]] {
        let name = format!("running worker, {k} steps done, reach the next step, no sync to disk");
        let normal = "SQLite WAL, synchronous=NORMAL";
        let mut row = Row::new(&format!("4n-{k}"), &name, "ms", normal, Better::Lower, of(2, k, |s| s.reached));
        if k == KS[3] {
            row = row.target(flat("4n")).target(Target::Value { bound: 1.0 });
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_resumes() {
        let _stamps = crate::workflows::STAMPS_IN_USE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = std::env::temp_dir().join(format!("durable-bench-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = current_thread().unwrap();
        let (template, path) = (dir.join("t.db"), dir.join("r.db"));
        rt.block_on(prepare(&template, 3)).unwrap();
        for mode in [Mode::Restart, Mode::Running] {
            copy_store(&template, &path).unwrap();
            let sample = rt.block_on(resume(&path, Synchronous::Normal, mode)).unwrap();
            assert!(sample.committed >= sample.reached);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        drop(rt);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
