//! The floor of the SQLite figures: a plain one-row transaction with rusqlite, the same
//! pragmas as `SqliteStore` (WAL, the same `synchronous`, the same busy timeout), no durable
//! code at all.

use std::path::Path;
use std::time::{Duration, Instant};

use durable_core::store::Synchronous;
use rusqlite::{Connection, TransactionBehavior, params};

use crate::BenchError;

/// Enough written pages for SQLite's WAL to wrap around once (its automatic checkpoint runs at
/// 1,000 pages): see [`Floor::warm_up`].
pub const WARM_UP_PAGES: usize = 1_100;

/// A SQLite file holding one row, updated one transaction at a time.
#[derive(Debug)]
pub struct Floor {
    conn: Connection,
    payload: String,
    counter: u64,
}

impl Floor {
    /// Opens (or creates) the floor's file at `path` with `synchronous`, as `SqliteStore` does.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Self, BenchError> {
        let floor = Floor::reopen(path, synchronous)?;
        floor.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS floor (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, \
             state TEXT NOT NULL) STRICT;
             INSERT OR IGNORE INTO floor (id, version, state) VALUES (1, 0, '');",
        )?;
        Ok(floor)
    }

    /// Opens the floor's existing file at `path` with `synchronous`, running no statement but
    /// the pragmas (as a restarted process would).
    pub fn reopen(path: &Path, synchronous: Synchronous) -> Result<Self, BenchError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        crate::figures::ensure(mode.eq_ignore_ascii_case("wal"), || format!("no WAL mode: {mode}"))?;
        let level = match synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", level)?;
        // About what a small checkpoint writes: a JSON state of a few numbers.
        let payload = r#"{"add":{"i":17,"n":200,"sum":136}}"#.to_owned();
        Ok(Floor { conn, payload, counter: 0 })
    }

    /// One `BEGIN IMMEDIATE; UPDATE one row; COMMIT`, as the store's commits begin and end.
    pub fn transaction(&mut self) -> Result<(), BenchError> {
        self.counter += 1;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("UPDATE floor SET version = ?1, state = ?2 WHERE id = 1", params![self.counter, self.payload])?;
        tx.commit()?;
        Ok(())
    }

    /// The floor of a restart: the time to open the floor's file `template`, copied to `path`
    /// (and synced) first, and commit one transaction on the new connection.
    pub fn restart(template: &Path, path: &Path, synchronous: Synchronous) -> Result<Duration, BenchError> {
        crate::figures::copy_store(template, path)?;
        let start = Instant::now();
        let mut floor = Floor::reopen(path, synchronous)?;
        floor.transaction()?;
        let took = start.elapsed();
        drop(floor);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        Ok(took)
    }

    /// Brings the file to its steady state: SQLite appends to its WAL until a checkpoint (at
    /// 1,000 pages) lets it start over at the beginning, and a sync while the WAL file grows
    /// costs more (the file system's metadata is synced too) than one that rewrites blocks the
    /// file already has. Measuring either side while its WAL grows would be unfair.
    pub fn warm_up(&mut self) -> Result<(), BenchError> {
        self.transactions(WARM_UP_PAGES)?;
        Ok(())
    }

    /// The time of each of `n` transactions in a row.
    pub fn transactions(&mut self, n: usize) -> Result<Vec<Duration>, BenchError> {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            self.transaction()?;
            times.push(start.elapsed());
        }
        Ok(times)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_one_row() {
        let dir = std::env::temp_dir().join(format!("durable-bench-floor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut floor = Floor::open(&dir.join("floor.db"), Synchronous::Normal).unwrap();
        assert_eq!(floor.transactions(3).unwrap().len(), 3);
        let version: u64 = floor.conn.query_row("SELECT version FROM floor", [], |row| row.get(0)).unwrap();
        assert_eq!(version, 3);
        drop(floor);
        let took = Floor::restart(&dir.join("floor.db"), &dir.join("copy.db"), Synchronous::Normal).unwrap();
        assert!(took > Duration::ZERO);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
