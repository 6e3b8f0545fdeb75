//! Many worker processes on one PostgreSQL schema, one of them killed with SIGKILL mid-run.
//!
//! Four `pg-worker` processes (see `bin/pg_worker.rs`) share a fresh schema. This test starts
//! [`EXECUTIONS`] executions of four workflows (steps; timers of 50 to 300 ms; an event the test
//! sends through its own engine, early for some and once the execution waits for the rest; an
//! event wait whose timeout passes) and, once [`KILL_AFTER`] have finished and the first worker
//! holds a lease on a running execution, kills that worker with SIGKILL and starts a
//! replacement. The workers lease what they run for two seconds, so the executions the killed
//! worker held are taken over by the others about two seconds later.
//!
//! Once every execution has finished (within [`LIMIT`]), the workers are stopped and the test
//! checks, from the store and the workers' run logs (the rules are in `pg_support.rs`): every
//! execution succeeded exactly once with the expected result; no completed step ran again (a
//! step body ran more than once only when the killed worker died after beginning it and before
//! its checkpoint was committed: that run was the last thing the killed worker did for that
//! execution, the execution was leased to it when it died, and the committed run is always the
//! last one); no two step bodies of one execution ever overlapped in time, on any two workers.
//!
//! It prints what it measured: how long the run took, how long the takeover of the killed
//! worker's executions took, and how many executions and step bodies each worker ran.
//!
//! Skipped (with a message) without a PostgreSQL server, unless `DURABLE_PG_URL` is set.

#[path = "bin/pg_worker/workflows.rs"]
mod workflows;

mod pg_support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use durable_core::store::{ListFilter, Store};

use crate::pg_support::{Reruns, SchemaGuard, Sent, WorkerProcess, read_runs, server, unique_schema};

/// Executions started.
const EXECUTIONS: usize = 500;
/// Worker processes at the start.
const WORKERS: usize = 4;
/// Finished executions before the kill.
const KILL_AFTER: usize = 150;
/// The most the executions may take to finish.
const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_one_killed_with_sigkill() {
    let Some(url) = server().await else { return };
    let test_started = Instant::now();
    let schema = unique_schema("workers");
    let _guard = SchemaGuard::new(&url, &schema);
    let dir = pg_support::log_dir();
    let engine = pg_support::control_engine(&url, &schema, dir.path()).await;
    let store = engine.store().clone();

    let mut workers = Vec::new();
    for k in 0..WORKERS {
        workers.push(WorkerProcess::start(&url, &schema, &format!("w{k}"), dir.path(), &schema).await);
    }

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Sent::default());
    let starter = {
        let (engine, sent) = (engine.clone(), Arc::clone(&sent));
        tokio::spawn(async move { pg_support::start_all(&engine, 0..EXECUTIONS, 4, &sent).await })
    };
    let sender =
        tokio::spawn(pg_support::send_events(engine.clone(), EXECUTIONS, Arc::clone(&stop), Arc::clone(&sent)));

    // Kill the first worker once enough executions have finished and it is running some.
    let victim = workers[0].name.clone();
    let waited = Instant::now();
    let (finished_at_kill, started_at_kill) = loop {
        let records = store.list(ListFilter::default()).await.expect("list");
        let finished = records.iter().filter(|r| r.status.is_terminal()).count();
        let running = records.iter().filter(|r| !r.status.is_terminal() && leased_to(r, &victim)).count();
        if finished >= KILL_AFTER && running > 0 {
            break (finished, records.len());
        }
        assert!(waited.elapsed() < LIMIT, "{victim} never held a lease after {KILL_AFTER} executions finished");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let killed_at = workers[0].kill().await;
    let killed_instant = Instant::now();
    let held: Vec<String> = store
        .list(ListFilter::default())
        .await
        .expect("list")
        .into_iter()
        .filter(|r| !r.status.is_terminal() && leased_to(r, &victim))
        .map(|r| r.id)
        .collect();
    workers.push(WorkerProcess::start(&url, &schema, &format!("w{WORKERS}"), dir.path(), &schema).await);

    // How long until no execution is leased to the dead worker any more.
    let mut taken_over: HashMap<String, Duration> = HashMap::new();
    while taken_over.len() < held.len() {
        for id in &held {
            if taken_over.contains_key(id) {
                continue;
            }
            let record = store.load(id).await.expect("load").expect("a held execution exists");
            if record.status.is_terminal() || !leased_to(&record, &victim) {
                taken_over.insert(id.clone(), killed_instant.elapsed());
            }
        }
        assert!(
            killed_instant.elapsed() < Duration::from_secs(30),
            "the killed worker's executions were not taken over"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let takeover = taken_over.values().max().copied().unwrap_or_default();

    let finish_time = pg_support::wait_all_finished(&store, EXECUTIONS, LIMIT.saturating_sub(started.elapsed())).await;
    let run_time = started.elapsed();
    let start_time = starter.await.expect("the starter");
    stop.store(true, Ordering::Relaxed);
    sender.await.expect("the event sender");
    for worker in workers.iter_mut().skip(1) {
        worker.stop().await;
    }

    let mut logs: Vec<_> = workers.iter().map(|worker| worker.log.clone()).collect();
    logs.push(dir.path().join("sender.log"));
    let findings =
        pg_support::check_run(&store, EXECUTIONS, &logs, Some((&victim, killed_at)), Reruns::OnlyKilled).await;

    for (_, id, step, iteration) in &findings.reruns {
        assert!(held.contains(id), "{id}: {step}/{iteration} ran twice, but {victim} did not hold {id} when it died");
    }

    // The killed worker's executions, from the logs: when another worker first ran a step of each.
    let mut first_after: BTreeMap<String, u128> = BTreeMap::new();
    for log in &logs {
        for run in read_runs(log) {
            if run.worker != victim && run.begin > killed_at && held.contains(&run.key.0) {
                let first = first_after.entry(run.key.0.clone()).or_insert(run.begin);
                *first = (*first).min(run.begin);
            }
        }
    }
    let mut resumed: Vec<u128> = first_after.values().map(|at| (at - killed_at) / 1_000_000).collect();
    resumed.sort_unstable();
    let sender_bodies = findings.bodies.get("sender").copied().unwrap_or(0);
    assert_eq!(sender_bodies, 0, "the test process delivers events but runs no step body");
    assert!(!held.is_empty(), "the killed worker held executions");
    assert!(
        findings.executions.get(&format!("w{WORKERS}")).is_some_and(|&n| n > 0),
        "the replacement worker ran executions: {findings:?}"
    );

    eprintln!(
        "pg_workers: {EXECUTIONS} executions on {WORKERS} worker processes + 1 replacement; started in {start_time:?}, \
         all finished {run_time:?} after the first start (the last {finish_time:?} after the takeover); \
         test took {:?}",
        test_started.elapsed()
    );
    eprintln!(
        "pg_workers: killed {victim} (SIGKILL) with {finished_at_kill} of {started_at_kill} started executions \
         finished, holding {} running executions; all taken over (leases moved or finished) within \
         {takeover:?} of the kill (lease {:?}); first step bodies by other workers after the kill, ms: {resumed:?}",
        held.len(),
        workflows::LEASE
    );
    eprintln!(
        "pg_workers: events {} delivered at once, {} queued, {} retried",
        sent.delivered.load(Ordering::Relaxed),
        sent.queued.load(Ordering::Relaxed),
        sent.retried.load(Ordering::Relaxed)
    );
    eprintln!(
        "pg_workers: executions with step bodies run, by worker: {:?}; step bodies: {:?}; committed step results: {:?}",
        findings.executions, findings.bodies, findings.committed
    );
    eprintln!("pg_workers: step bodies re-run because {victim} died before their checkpoint: {:?}", findings.reruns);
    pg_support::keep_if_asked(dir);
}

/// Whether `record` is leased to `worker` (whether or not the lease has expired).
fn leased_to(record: &durable_core::store::ExecutionRecord, worker: &str) -> bool {
    record.lease.as_ref().is_some_and(|lease| lease.owner == worker)
}

/// The log rules of `pg_support` reject what they must: overlapping bodies, a step run again
/// after its committed run, a re-run no kill explains, a body abandoned by a live worker.
#[test]
fn the_log_rules_catch_violations() {
    use pg_support::{Findings, Run, check_exclusive, check_reruns};

    let run = |worker: &str, step: &str, begin: u128, end: Option<u128>| Run {
        worker: worker.to_owned(),
        key: ("e-0".to_owned(), step.to_owned(), 0),
        begin,
        end,
    };
    let committed = |worker: &str, begin: u128| vec![("fetch".to_owned(), 0, worker.to_owned(), begin)];
    let rejects = |what: &str, check: &dyn Fn()| {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
        assert!(caught.is_err(), "the rules accept {what}");
    };
    let reruns = |runs: &[Run], committed: &[(String, u32, String, u128)], killed, mode| {
        check_reruns("e-0", "pipeline", runs, committed, killed, mode, &mut Findings::default());
    };

    // Accepted: the killed worker began `fetch` and died; another ran it again and committed it.
    let ok = [run("w0", "fetch", 10, None), run("w1", "fetch", 40, Some(50))];
    check_exclusive("e-0", &ok, Some(("w0", 30)));
    reruns(&ok, &committed("w1", 40), Some(("w0", 30)), Reruns::OnlyKilled);

    let overlap = [run("w0", "fetch", 10, Some(30)), run("w1", "store", 20, Some(40))];
    rejects("overlapping bodies", &|| check_exclusive("e-0", &overlap, None));
    let after_kill = [run("w0", "fetch", 10, None), run("w1", "fetch", 20, Some(40))];
    rejects("a body that began before the killed one was dead", &|| {
        check_exclusive("e-0", &after_kill, Some(("w0", 30)))
    });
    let abandoned = [run("w0", "fetch", 10, None)];
    rejects("a body abandoned by a live worker", &|| check_exclusive("e-0", &abandoned, None));

    let again = [run("w0", "fetch", 10, Some(20)), run("w1", "fetch", 30, Some(40))];
    rejects("a run after the committed one", &|| reruns(&again, &committed("w0", 10), None, Reruns::Counted));
    rejects("a re-run without a kill", &|| reruns(&again, &committed("w1", 30), None, Reruns::OnlyKilled));
    let not_last =
        [run("w0", "fetch", 10, Some(20)), run("w1", "fetch", 30, Some(40)), run("w0", "store", 50, Some(60))];
    let both = [("fetch".to_owned(), 0, "w1".to_owned(), 30), ("store".to_owned(), 0, "w0".to_owned(), 50)];
    rejects("a re-run by the killed worker that is not where it died", &|| {
        reruns(&not_last, &both, Some(("w0", 70)), Reruns::OnlyKilled)
    });
    // Counted, a re-run by a live worker before the committed run is accepted.
    reruns(&again, &committed("w1", 30), None, Reruns::Counted);
}
