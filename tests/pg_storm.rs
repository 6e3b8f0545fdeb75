//! A storm on PostgreSQL: worker processes killed with SIGKILL, stopped with SIGSTOP for longer
//! than their lease, and cut off from the database, all while they run, in a seeded random order.
//!
//! Three `pg-worker` processes (see `bin/pg_worker.rs`) share a fresh schema and run
//! [`executions`] executions of the four test workflows (steps, timers, events, a loop). Until
//! every execution has finished, the test picks one disturbance at a time, [`ACTIONS`] at most:
//! - **kill**: SIGKILL a worker and start a replacement under a new name;
//! - **pause**: SIGSTOP a worker for [`PAUSE`] (longer than its two-second lease), so that others
//!   take its executions over while it is frozen, then SIGCONT it;
//! - **cut**: terminate every worker connection on the server (`pg_terminate_backend`).
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
//! Skipped (with a message) without a PostgreSQL server, unless `DURABLE_PG_URL` is set.

#[path = "bin/pg_worker/workflows.rs"]
mod workflows;

mod pg_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use durable_core::store::{ListFilter, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_pauses_and_cuts_lose_nothing_and_run_nothing_twice_at_once() {
    let Some(url) = server().await else { return };
    let (count, actions) = (executions(), setting("DURABLE_STORM_ACTIONS", ACTIONS as u64) as usize);
    let seed = setting("DURABLE_STORM_SEED", 0x5eed);
    let mut rng = StdRng::seed_from_u64(seed);
    let schema = unique_schema("storm");
    let _guard = SchemaGuard::new(&url, &schema);
    let dir = pg_support::log_dir();
    let engine = pg_support::control_engine(&url, &schema, dir.path()).await;
    let store = engine.store().clone();
    let admin = admin(&url).await;
    // Every worker's connections carry this name (the control engine's are `<schema>_ctl`).
    let worker_connections = vec![format!("{schema}_w")];

    let mut next = 0;
    let mut live = Vec::new();
    for _ in 0..WORKERS {
        live.push(WorkerProcess::start(&url, &schema, &format!("w{next}"), dir.path(), &worker_connections[0]).await);
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
    while done.len() < actions {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..800))).await;
        let records = store.list(ListFilter::default()).await.expect("list");
        if records.len() == count && records.iter().all(|r| r.status.is_terminal()) {
            break;
        }
        assert!(started.elapsed() < LIMIT, "the storm did not end within {LIMIT:?}");
        let k = rng.random_range(0..live.len());
        match rng.random_range(0..3) {
            0 => {
                let mut victim: WorkerProcess = live.remove(k);
                storm.kills.push((victim.name.clone(), victim.kill().await));
                done.push(format!("kill {}", victim.name));
                dead.push(victim);
                let name = format!("w{next}");
                next += 1;
                live.push(WorkerProcess::start(&url, &schema, &name, dir.path(), &worker_connections[0]).await);
            }
            1 => {
                let frozen = &live[k];
                let stopped = frozen.pause();
                tokio::time::sleep(PAUSE).await;
                storm.pauses.push((frozen.name.clone(), stopped, frozen.resume()));
                done.push(format!("pause {}", frozen.name));
            }
            _ => {
                let cut = pg_support::cut_connections(&admin, &worker_connections).await;
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
    logs.push(dir.path().join("sender.log"));
    let findings = pg_support::check_storm(&store, count, &logs, &storm).await;
    assert_eq!(findings.bodies.get("sender").copied().unwrap_or(0), 0, "the test process runs no step body");

    eprintln!(
        "pg_storm (seed {seed}): {count} executions, started in {start_time:?}, all finished {run_time:?} after the \
         first start ({finish_time:?} after the last disturbance); disturbances: {done:?}"
    );
    eprintln!(
        "pg_storm: step bodies by worker: {:?}; committed step results: {:?}; re-runs before the committed run: {}; \
         overlaps allowed because the first body's worker was frozen past its lease: {}",
        findings.bodies,
        findings.committed,
        findings.reruns.len(),
        findings.paused_overlaps.len()
    );
    pg_support::keep_if_asked(dir);
}
