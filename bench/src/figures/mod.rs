//! The figures: each measures several runs and returns its table rows.
//!
//! A figure's `run` is synchronous and builds the tokio runtime it needs; the `async fn`s it
//! calls for one run are public so that the criterion benches measure exactly the same thing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::BenchError;

pub mod composition;
pub mod floor;
pub mod memory;
pub mod postgres;
pub mod resume;
pub mod sqlite;
pub mod starts;
pub mod steps;
pub mod throughput;

/// How a whole run is configured.
#[derive(Clone, Debug)]
pub struct Config {
    /// Smaller sizes and fewer runs: a smoke run that finishes in about a minute.
    pub quick: bool,
    /// A directory for the SQLite files (each figure makes and removes its own subdirectory).
    pub dir: PathBuf,
    /// The PostgreSQL server for figure 6, if any.
    pub postgres: Option<String>,
    /// The `durable-bench` executable, for the figures that measure separate processes.
    pub exe: PathBuf,
}

impl Config {
    /// `full` runs normally, `quick` runs with `--quick`.
    pub fn runs(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }

    /// A fresh, empty directory for one figure's files under [`Config::dir`].
    pub fn scratch(&self, name: &str) -> Result<Scratch, BenchError> {
        let path = self.dir.join(format!("durable-bench-{}-{name}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
        Ok(Scratch { path })
    }
}

/// A directory removed when dropped.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A single-threaded tokio runtime (timers and I/O enabled): no cross-thread wake-ups.
pub fn current_thread() -> Result<Runtime, BenchError> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// A multi-threaded tokio runtime with one worker per core, as `#[tokio::main]` makes.
pub fn multi_thread() -> Result<Runtime, BenchError> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// `d` in microseconds.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `d` in milliseconds.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Fails with `message` unless `ok`.
pub fn ensure(ok: bool, message: impl FnOnce() -> String) -> Result<(), BenchError> {
    if ok { Ok(()) } else { Err(message().into()) }
}

/// Folds the WAL of the SQLite file at `path` into the file and empties it, so that the file
/// alone holds everything (and its size is what is stored).
pub fn checkpoint(path: &Path) -> Result<(), BenchError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// Copies the SQLite file `template` (checkpointed first) to `to`, and syncs the copy so that
/// writing it back does not land in the measurement.
pub fn copy_store(template: &Path, to: &Path) -> Result<(), BenchError> {
    checkpoint(template)?;
    std::fs::copy(template, to)?;
    std::fs::File::open(to)?.sync_all()?;
    if let Some(dir) = to.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Lets the tasks of dropped engines (their group committers, which hold the store) end.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}
