//! Worker processes whose database connections are cut, again and again, while they run.
//!
//! Three `pg-worker` processes (see `bin/pg_worker.rs`) share a fresh schema, each naming its
//! connections `<schema>_w<k>` (the test's own engine uses `<schema>_ctl`, so it is never cut,
//! and tests running at the same time have other names). This test starts [`FIRST_WAVE`]
//! executions and, while they run, cuts every connection of the workers (pooled and listening)
//! with `pg_terminate_backend` [`CUTS`] times: each time another seventh of them has finished,
//! once every worker is connected again. A worker that finds its connection dead retries on a
//! fresh one; a commit that was in flight fails, its run stops and releases its lease, and a
//! worker runs the execution again from its last checkpoint.
//!
//! After the last cut the test waits until every worker is connected again (its listener is
//! back), then starts [`SECOND_WAVE`] more executions, which the workers must run as well.
//! Once everything has finished the workers are stopped, and the rules of `pg_support.rs` are
//! checked over all executions: each succeeded exactly once with the expected result and one
//! `StepSucceeded` per step instance, no step ran again after its result was committed (a step
//! whose commit was cut may have run again before that: those re-runs are counted), and no two
//! step bodies of one execution ever overlapped.
//!
//! Skipped (with a message) without a PostgreSQL server, unless `DURABLE_PG_URL` is set.

#[path = "bin/pg_worker/workflows.rs"]
mod workflows;

mod pg_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use durable_core::store::{ListFilter, Store};

use crate::pg_support::{Reruns, SchemaGuard, Sent, WorkerProcess, admin, server, unique_schema};

/// Worker processes.
const WORKERS: usize = 3;
/// Executions started before the cuts.
const FIRST_WAVE: usize = 300;
/// Executions started after the last cut.
const SECOND_WAVE: usize = 40;
/// Times every worker connection is cut.
const CUTS: usize = 6;
/// The most the executions may take to finish.
const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_carry_on_when_their_connections_are_cut() {
    let Some(url) = server().await else { return };
    let test_started = Instant::now();
    let schema = unique_schema("cut");
    let _guard = SchemaGuard::new(&url, &schema);
    let dir = pg_support::log_dir();
    let engine = pg_support::control_engine(&url, &schema, dir.path()).await;
    let store = engine.store().clone();
    let admin = admin(&url).await;

    let names: Vec<String> = (0..WORKERS).map(|k| format!("{schema}_w{k}")).collect();
    let mut workers = Vec::new();
    for (k, name) in names.iter().enumerate() {
        workers.push(WorkerProcess::start(&url, &schema, &format!("w{k}"), dir.path(), name).await);
    }

    let total = FIRST_WAVE + SECOND_WAVE;
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Sent::default());
    let starter = {
        let (engine, sent) = (engine.clone(), Arc::clone(&sent));
        tokio::spawn(async move { pg_support::start_all(&engine, 0..FIRST_WAVE, 4, &sent).await })
    };
    let sender = tokio::spawn(pg_support::send_events(engine.clone(), total, Arc::clone(&stop), Arc::clone(&sent)));

    // Cut every worker connection, again and again, while executions run: each time another
    // seventh of the first wave has finished.
    let mut cuts = Vec::new();
    for n in 1..=CUTS {
        let milestone = FIRST_WAVE * n / (CUTS + 1);
        let unfinished = loop {
            let records = store.list(ListFilter::default()).await.expect("list");
            let finished = records.iter().filter(|r| r.status.is_terminal()).count();
            if finished >= milestone {
                break FIRST_WAVE - finished;
            }
            assert!(started.elapsed() < LIMIT, "only {finished} executions finished in {LIMIT:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // Each cut finds every worker connected again (at least its listener).
        wait_connected(&admin, &names).await;
        let cut = pg_support::cut_connections(&admin, &names).await;
        assert!(cut >= WORKERS, "cut {n} found every worker's listening connection at least: {cut}");
        cuts.push((started.elapsed(), cut, unfinished));
    }

    // Every worker connects again by itself: its listener comes back without any call.
    let reconnected = wait_connected(&admin, &names).await;
    let first_wave_start = starter.await.expect("the starter");
    let second_wave_start = pg_support::start_all(&engine, FIRST_WAVE..total, 2, &sent).await;

    let finish_time = pg_support::wait_all_finished(&store, total, LIMIT.saturating_sub(started.elapsed())).await;
    let run_time = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    sender.await.expect("the event sender");
    for worker in &mut workers {
        worker.stop().await;
    }
    let failed_commits: Vec<usize> = workers
        .iter()
        .map(|worker| std::fs::read_to_string(&worker.stderr).unwrap_or_default())
        .map(|text| text.lines().filter(|line| line.contains("stopping the run, its commit failed")).count())
        .collect();

    let mut logs: Vec<_> = workers.iter().map(|worker| worker.log.clone()).collect();
    logs.push(dir.path().join("sender.log"));
    let findings = pg_support::check_run(&store, total, &logs, None, Reruns::Counted).await;
    assert_eq!(findings.bodies.get("sender").copied().unwrap_or(0), 0, "the test process runs no step body");
    for k in 0..WORKERS {
        let worker = format!("w{k}");
        assert!(findings.executions.get(&worker).is_some_and(|&n| n > 0), "{worker} ran executions: {findings:?}");
    }

    eprintln!(
        "pg_connection_loss: {total} executions on {WORKERS} worker processes ({FIRST_WAVE} started in \
         {first_wave_start:?}, {SECOND_WAVE} more after the cuts in {second_wave_start:?}); all finished {run_time:?} \
         after the first start ({finish_time:?} after the second wave started); test took {:?}",
        test_started.elapsed()
    );
    eprintln!(
        "pg_connection_loss: {CUTS} cuts as (time since the first start, connections cut, executions of the first \
         wave unfinished): {cuts:?}; \
         every worker connected again {reconnected:?} after the last cut"
    );
    eprintln!(
        "pg_connection_loss: runs stopped by a failed commit, by worker: {failed_commits:?}; step bodies run again \
         before their result was committed: {} {:?}",
        findings.reruns.len(),
        findings.reruns
    );
    eprintln!(
        "pg_connection_loss: executions with step bodies run, by worker: {:?}; step bodies: {:?}; committed: {:?}",
        findings.executions, findings.bodies, findings.committed
    );
    eprintln!(
        "pg_connection_loss: events {} delivered at once, {} queued, {} retried",
        sent.delivered.load(Ordering::Relaxed),
        sent.queued.load(Ordering::Relaxed),
        sent.retried.load(Ordering::Relaxed)
    );
    pg_support::keep_if_asked(dir);
}

/// Waits until every name of `names` has a connection open, failing after 15 seconds; returns
/// how long it took.
async fn wait_connected(admin: &tokio_postgres::Client, names: &[String]) -> Duration {
    let waiting = Instant::now();
    loop {
        let counts = pg_support::connections(admin, names).await;
        if counts.values().all(|&n| n > 0) {
            return waiting.elapsed();
        }
        assert!(waiting.elapsed() < Duration::from_secs(15), "workers did not reconnect: {counts:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
