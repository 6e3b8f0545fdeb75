//! Figure 5: the memory of a worker holding many suspended executions, and what each costs on
//! disk.
//!
//! `n` executions of [`sleeper`] are created in a SQLite file (not timed). A separate worker
//! process (this binary, `--child-memory`) reads its resident memory (`VmRSS`), runs them all
//! until each waits on its day-long timer, and reads it again. A suspended execution is a row
//! in the store and nothing in the worker, so the growth must not depend on `n`: it is measured
//! for two sizes and the slope between them is the worker memory per suspended execution.
//! The bytes stored per execution are the growth of the checkpointed SQLite file over `n`.

use std::path::Path;
use std::process::Command;

use durable_core::store::{SqliteOptions, SqliteStore, Synchronous};
use durable_core::{Engine, EngineError};
use serde::{Deserialize, Serialize};

use super::{Config, checkpoint, copy_store, ensure, multi_thread, settle};
use crate::BenchError;
use crate::machine::{proc_status_bytes, rss_bytes};
use crate::report::{Better, Row, Target};
use crate::stats::Summary;
use crate::workflows::sleeper;

/// Creates `n` executions of [`sleeper`] (not yet run) in the SQLite file at `path`, with
/// `synchronous = NORMAL` since the setup needs no durability.
pub async fn prepare(path: &Path, n: u64) -> Result<(), BenchError> {
    let options = SqliteOptions { synchronous: Synchronous::Normal, ..SqliteOptions::default() };
    let engine = Engine::builder(SqliteStore::open_or_create_with(path, options)?).register(sleeper).build()?;
    for i in 0..n {
        engine.start(sleeper, format!("s-{i:07}"), i).await?;
    }
    drop(engine);
    settle().await;
    Ok(())
}

/// What the worker process measured.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ChildReport {
    /// `VmRSS` with the store open and the engine built, before running anything.
    pub rss_before: u64,
    /// `VmRSS` once every execution waits on its timer.
    pub rss_after: u64,
    /// `VmHWM`: the most resident memory the process had.
    pub peak: u64,
    /// Runs the worker made.
    pub runs: usize,
    /// Runs in memory at the end (must be 0).
    pub running: usize,
}

/// The worker process of figure 5: runs everything due in the SQLite file at `path` (full
/// durability) and reports its memory.
pub fn child(path: &Path) -> Result<ChildReport, BenchError> {
    let rt = multi_thread()?;
    rt.block_on(async {
        let engine = Engine::builder(SqliteStore::open(path)?).register(sleeper).build()?;
        let worker = engine.worker("memory");
        let rss_before = rss_bytes();
        let runs = worker.run_until_idle().await?;
        let rss_after = rss_bytes();
        let running = engine.stats().running;
        Ok::<_, EngineError>(ChildReport { rss_before, rss_after, peak: proc_status_bytes("VmHWM"), runs, running })
    })
    .map_err(Into::into)
}

/// Runs [`child`] in a new process of `exe` and returns its report.
pub fn spawn_child(exe: &Path, path: &Path) -> Result<ChildReport, BenchError> {
    let output = Command::new(exe).arg("--child-memory").arg(path).output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure(output.status.success(), || {
        format!("the memory worker failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr))
    })?;
    let line = stdout.lines().last().unwrap_or_default();
    Ok(serde_json::from_str(line)?)
}

/// `SELECT count(*)` of executions with `status` in the SQLite file at `path`.
fn count(path: &Path, status: &str) -> Result<u64, BenchError> {
    let conn = rusqlite::Connection::open(path)?;
    Ok(conn.query_row("SELECT count(*) FROM executions WHERE status = ?1", [status], |row| row.get(0))?)
}

/// The size of the SQLite file at `path` once its WAL is folded in.
fn stored_bytes(path: &Path) -> Result<u64, BenchError> {
    checkpoint(path)?;
    let conn = rusqlite::Connection::open(path)?;
    let pages: u64 = conn.query_row("PRAGMA page_count", [], |row| row.get(0))?;
    let size: u64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    Ok(pages * size)
}

const MIB: f64 = 1024.0 * 1024.0;

/// Measures figure 5.
pub fn run(config: &Config) -> Result<Vec<Row>, BenchError> {
    let runs = config.runs(3, 1);
    let (small, big): (u64, u64) = if config.quick { (5_000, 20_000) } else { (10_000, 100_000) };
    let scratch = config.scratch("memory")?;
    let rt = multi_thread()?;
    let empty = scratch.file("empty.db");
    rt.block_on(prepare(&empty, 0))?;
    let empty_bytes = stored_bytes(&empty)?;
    let mut growth = [Vec::new(), Vec::new()];
    let mut after = [Vec::new(), Vec::new()];
    let mut stored = Vec::new();
    let mut history = 0.0;
    for (i, n) in [small, big].into_iter().enumerate() {
        let template = scratch.file(&format!("template-{n}.db"));
        rt.block_on(prepare(&template, n))?;
        for _ in 0..runs {
            let path = scratch.file("run.db");
            copy_store(&template, &path)?;
            let report = spawn_child(&config.exe, &path)?;
            let suspended = count(&path, "suspended")?;
            ensure(suspended == n && report.running == 0, || format!("{suspended} of {n} suspended: {report:?}"))?;
            growth[i].push((report.rss_after as f64 - report.rss_before as f64) / MIB);
            after[i].push(report.rss_after as f64 / MIB);
            if n == big {
                stored.push((stored_bytes(&path)? - empty_bytes) as f64 / n as f64);
                let conn = rusqlite::Connection::open(&path)?;
                let events: u64 = conn.query_row("SELECT count(*) FROM history", [], |row| row.get(0))?;
                history = events as f64 / n as f64;
            }
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        std::fs::remove_file(&template)?;
    }
    let slope: Vec<f64> = growth[1].iter().zip(&growth[0]).map(|(b, s)| (b - s) * MIB / (big - small) as f64).collect();
    let store = "SQLite WAL, synchronous=FULL";
    let mut rows = Vec::new();
    for (i, n) in [small, big].into_iter().enumerate() {
        let name = format!("worker RSS growth after running {n} executions until suspended");
        let note = format!("RSS at the end {:.1} MiB (median)", Summary::of(&after[i]).median);
        rows.push(Row::new(&format!("5a-{n}"), &name, "MiB", store, Better::Lower, Summary::of(&growth[i])).note(note));
    }
    rows.push(
        Row::new(
            "5b",
            &format!("worker RSS per suspended execution: slope between {small} and {big}"),
            "bytes/exec",
            store,
            Better::Lower,
            Summary::of(&slope),
        )
        .target(Target::Value { bound: 16.0 })
        .note("0 means the worker holds nothing per suspended execution; a few bytes either way is allocator noise"),
    );
    rows.push(
        Row::new(
            "5c",
            "bytes stored per suspended execution",
            "bytes/exec",
            store,
            Better::Lower,
            Summary::of(&stored),
        )
        .note(format!(
            "SQLite file growth over {big} executions after a WAL checkpoint (page_count x page_size); \
                 {history:.1} history events per execution"
        )),
    );
    Ok(rows)
}
