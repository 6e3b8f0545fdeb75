//! A storm: worker processes killed with SIGKILL, stopped with SIGSTOP for longer than their
//! lease, and (on PostgreSQL) cut off from the database, all while they run, in a seeded random
//! order; on PostgreSQL and on SQLite.
//!
//! Three `pg-worker` processes (see `bin/pg_worker.rs`) share a fresh schema (or SQLite file) and run
//! [`executions`] executions of the four test workflows (steps, timers, events, a loop). Until
//! every execution has finished, the test picks one disturbance at a time, [`ACTIONS`] at most:
//! - **kill**: SIGKILL a worker and start a replacement under a new name;
//! - **pause**: SIGSTOP a worker for [`PAUSE`] (longer than its two-second lease), so that others
//!   take its executions over while it is frozen, then SIGCONT it;
//! - **cut** (PostgreSQL): terminate every worker connection on the server (`pg_terminate_backend`).
//!
//! Then the ledger is checked (`pg_support::check_storm`): every execution succeeded exactly
//! once with the expected result and one `StepSucceeded` per step; no step body ran again after
//! its result was committed; and no two step bodies of one execution overlapped, except where
//! the rule for a paused process allows it (the body the frozen worker was inside when its lease
//! ran out, whose result was then refused).
//!
//! `DURABLE_STORM_SEED` picks the order of the disturbances (the seed used is printed), and
//! `DURABLE_STORM_EXECUTIONS` / `DURABLE_STORM_ACTIONS` make a longer storm than CI's:
//!
//! ```sh
//! DURABLE_STORM_EXECUTIONS=2000 DURABLE_STORM_ACTIONS=200 cargo test -p durable-tests --test pg_storm -- --nocapture
//! ```
//!
//! The PostgreSQL storm is skipped (with a message) without a server, unless `DURABLE_PG_URL` is set.

#[path = "bin/pg_worker/workflows.rs"]
mod workflows;

mod pg_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use durable_core::Engine;
use durable_core::store::{ListFilter, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

use crate::pg_support::{SchemaGuard, Sent, Storm, WorkerProcess, admin, server, unique_schema};

/// Worker processes alive at any time.
const WORKERS: usize = 3;
/// Disturbances at most (in CI).
const ACTIONS: usize = 9;
/// How long a paused worker stays frozen: longer than its lease.
const PAUSE: Duration = Duration::from_millis(2_600);
/// Executions started together, every quarter of a second.
const WAVE: usize = 20;
/// The most the storm may take.
const LIMIT: Duration = Duration::from_secs(240);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// Executions started (CI: 400).
fn executions() -> usize {
    setting("DURABLE_STORM_EXECUTIONS", 400) as usize
}

/// Both storms in one test: the run log of the test's own engine is installed once per process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_pauses_and_cuts_lose_nothing_and_run_nothing_twice_at_once() {
    let dir = pg_support::log_dir();
    let path = dir.path().join("storm.db");
    let engine = pg_support::control_engine_sqlite(&path, dir.path());
    let target = Target { url: format!("sqlite:{}", path.display()), schema: "main".into(), connections: "-".into() };
    storm("sqlite", engine, &target, None, dir).await;

    let Some(url) = server().await else { return };
    let schema = unique_schema("storm");
    let _guard = SchemaGuard::new(&url, &schema);
    let dir = pg_support::log_dir();
    let engine = pg_support::control_engine(&url, &schema, dir.path()).await;
    // Every worker's connections carry this name (the control engine's are `<schema>_ctl`).
    let connections = format!("{schema}_w");
    let target = Target { url: url.clone(), schema, connections: connections.clone() };
    storm("postgres", engine, &target, Some((admin(&url).await, vec![connections])), dir).await;
}

/// Where the workers run: their database url, schema and connection name.
struct Target {
    url: String,
    schema: String,
    connections: String,
}

impl Target {
    async fn worker(&self, name: &str, dir: &std::path::Path) -> WorkerProcess {
        WorkerProcess::start(&self.url, &self.schema, name, dir, &self.connections).await
    }
}

/// The storm, on the store of `engine` (the test's own) and of the workers at `target`; `cut`
/// is the admin connection and the connection names to cut, where cutting means something.
async fn storm<S: Store + Clone>(
    what: &str,
    engine: Engine<S>,
    target: &Target,
    cut: Option<(Client, Vec<String>)>,
    dir: tempfile::TempDir,
) {
    let (count, actions) = (executions(), setting("DURABLE_STORM_ACTIONS", ACTIONS as u64) as usize);
    let seed = setting("DURABLE_STORM_SEED", 0x5eed);
    let mut rng = StdRng::seed_from_u64(seed);
    let store = engine.store().clone();

    let mut next = 0;
    let mut live = Vec::new();
    for _ in 0..WORKERS {
        live.push(target.worker(&format!("w{next}"), dir.path()).await);
        next += 1;
    }
    let mut dead = Vec::new();

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Sent::default());
    // Started in waves, so that the storm meets executions in every stage for its whole length.
    let starter = {
        let (engine, sent) = (engine.clone(), Arc::clone(&sent));
        tokio::spawn(async move {
            let mut took = Duration::ZERO;
            for wave in (0..count).step_by(WAVE) {
                took += pg_support::start_all(&engine, wave..(wave + WAVE).min(count), 2, &sent).await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            took
        })
    };
    let sender = tokio::spawn(pg_support::send_events(engine.clone(), count, Arc::clone(&stop), Arc::clone(&sent)));

    let mut storm = Storm::default();
    let mut done = Vec::new();
    let kinds = if cut.is_some() { 3 } else { 2 };
    while done.len() < actions {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..800))).await;
        let records = store.list(ListFilter::default()).await.expect("list");
        if records.len() == count && records.iter().all(|r| r.status.is_terminal()) {
            break;
        }
        assert!(started.elapsed() < LIMIT, "the storm did not end within {LIMIT:?}");
        let k = rng.random_range(0..live.len());
        match (rng.random_range(0..kinds), &cut) {
            (0, _) => {
                let mut victim: WorkerProcess = live.remove(k);
                storm.kills.push((victim.name.clone(), victim.kill().await));
                done.push(format!("kill {}", victim.name));
                dead.push(victim);
                live.push(target.worker(&format!("w{next}"), dir.path()).await);
                next += 1;
            }
            (1, _) | (_, None) => {
                let frozen = &live[k];
                let stopped = frozen.pause();
                tokio::time::sleep(PAUSE).await;
                storm.pauses.push((frozen.name.clone(), stopped, frozen.resume()));
                done.push(format!("pause {}", frozen.name));
            }
            (_, Some((admin, names))) => {
                let cut = pg_support::cut_connections(admin, names).await;
                done.push(format!("cut {cut}"));
            }
        }
    }

    let finish_time = pg_support::wait_all_finished(&store, count, LIMIT.saturating_sub(started.elapsed())).await;
    let run_time = started.elapsed();
    let start_time = starter.await.expect("the starter");
    stop.store(true, Ordering::Relaxed);
    sender.await.expect("the event sender");
    for worker in &mut live {
        worker.stop().await;
    }

    let mut logs: Vec<_> = live.iter().chain(&dead).map(|worker| worker.log.clone()).collect();
    logs.push(dir.path().join("sender.log")); // the first storm's directory holds it; a missing log is empty
    let findings = pg_support::check_storm(&store, count, &logs, &storm).await;
    assert_eq!(findings.bodies.get("sender").copied().unwrap_or(0), 0, "the test process runs no step body");

    eprintln!(
        "storm on {what} (seed {seed}): {count} executions, started in {start_time:?}, all finished {run_time:?} after \
         the first start ({finish_time:?} after the last disturbance); disturbances: {done:?}"
    );
    eprintln!(
        "storm on {what}: step bodies by worker: {:?}; committed step results: {:?}; re-runs before the committed \
         run: {}; overlaps allowed because the first body's worker was frozen past its lease: {}",
        findings.bodies,
        findings.committed,
        findings.reruns.len(),
        findings.paused_overlaps.len()
    );
    pg_support::keep_if_asked(dir);
}
