//! Figure 6: throughput on PostgreSQL with 1, 2 and 4 worker processes on one database.
//!
//! For each run a fresh schema is made and `n` executions of [`three_steps`] are created in it
//! (not timed). Then `workers` processes of this binary (`--child-postgres`) connect, each with
//! its own [`PostgresStore`] pool, say they are ready, and on a signal all run until nothing is
//! due; the time from the signal to the last one's end gives executions per second. The schema
//! is dropped at the end of the run.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use durable_core::store::{ListFilter, PostgresOptions, PostgresStore, Status, Store};
use durable_core::{Engine, EngineError};
use serde::{Deserialize, Serialize};

use super::{Config, ensure, multi_thread};
use crate::BenchError;
use crate::machine::CpuTimes;
use crate::report::{Better, Row};
use crate::stats::Summary;
use crate::workflows::three_steps;

/// The server figure 6 uses unless told otherwise.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn options(schema: &str) -> PostgresOptions {
    PostgresOptions { schema: schema.to_owned(), application_name: schema.to_owned(), ..PostgresOptions::default() }
}

/// Whether the server at `url` answers within a few seconds.
pub async fn reachable(url: &str) -> Result<(), BenchError> {
    let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
    let (client, connection) = tokio::time::timeout(Duration::from_secs(5), connect).await??;
    let task = tokio::spawn(connection);
    client.simple_query("SELECT 1").await?;
    drop(client);
    let _ = task.await;
    Ok(())
}

/// Drops `schema` and everything in it.
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), BenchError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(connection);
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await?;
    drop(client);
    let _ = task.await;
    Ok(())
}

/// Creates `n` executions of [`three_steps`] in `schema`, 16 at a time.
pub async fn prepare(url: &str, schema: &str, n: u64) -> Result<(), BenchError> {
    let store = PostgresStore::connect_with(url, options(schema)).await?;
    let engine = Engine::builder(store).register(three_steps).build()?;
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..16 {
        let engine = engine.clone();
        tasks.spawn(async move {
            for i in (lane..n).step_by(16) {
                engine.start(three_steps, format!("x-{i:06}"), i).await?;
            }
            Ok::<_, EngineError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// What one worker process reports.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ChildReport {
    /// Runs it made.
    pub runs: usize,
    /// Store transactions its group committer wrote.
    pub batches: u64,
    /// Commits in them.
    pub commits: u64,
}

/// The worker process of figure 6: connects to `schema`, prints `ready`, waits for a line on
/// standard input, runs until nothing is due and reports.
pub fn child(url: &str, schema: &str, name: &str) -> Result<ChildReport, BenchError> {
    let rt = multi_thread()?;
    rt.block_on(async {
        let store = PostgresStore::connect_with(url, options(schema)).await?;
        let engine = Engine::builder(store).register(three_steps).build()?;
        let worker = engine.worker(name);
        println!("ready");
        std::io::stdout().flush()?;
        let mut line = String::new();
        tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await??;
        let runs = worker.run_until_idle().await?;
        let stats = engine.stats();
        Ok(ChildReport { runs, batches: stats.batches, commits: stats.commits })
    })
}

/// One run with `workers` processes of `exe` over `n` executions; returns the seconds from the
/// start signal to the last worker's end, the share of the machine's CPU time that was busy
/// meanwhile, and the workers' reports.
pub fn run_once(
    exe: &std::path::Path,
    url: &str,
    workers: usize,
    n: u64,
) -> Result<(f64, f64, Vec<ChildReport>), BenchError> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let schema = format!("durable_bench_{}_{workers}_{}", std::process::id(), nanos % 1_000_000_000_000);
    let rt = multi_thread()?;
    let result = (|| {
        rt.block_on(prepare(url, &schema, n))?;
        let mut children = Vec::new();
        for w in 0..workers {
            let child = Command::new(exe)
                .args(["--child-postgres", url, &schema, &format!("pg-worker-{w}")])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?;
            children.push(child);
        }
        let mut outputs = Vec::new();
        for child in &mut children {
            let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
            let mut line = String::new();
            stdout.read_line(&mut line)?;
            ensure(line.trim() == "ready", || format!("a postgres worker said {line:?}"))?;
            outputs.push(stdout);
        }
        let (start, cpu) = (Instant::now(), CpuTimes::now());
        for child in &mut children {
            child.stdin.as_mut().ok_or("no stdin")?.write_all(b"go\n")?;
        }
        let mut reports = Vec::new();
        for (child, mut stdout) in children.iter_mut().zip(outputs) {
            let mut line = String::new();
            stdout.read_line(&mut line)?;
            let status = child.wait()?;
            ensure(status.success(), || format!("a postgres worker failed: {status}"))?;
            reports.push(serde_json::from_str::<ChildReport>(line.trim())?);
        }
        let (elapsed, busy) = (start.elapsed().as_secs_f64(), CpuTimes::now().busy_since(&cpu));
        let done = rt.block_on(async {
            let store = PostgresStore::connect_with(url, options(&schema)).await?;
            let filter = ListFilter { status: Some(Status::Succeeded), ..ListFilter::default() };
            Ok::<_, BenchError>(store.list(filter).await?.len() as u64)
        })?;
        ensure(done == n, || format!("{done} of {n} executions succeeded"))?;
        Ok((elapsed, busy, reports))
    })();
    rt.block_on(drop_schema(url, &schema))?;
    result
}

/// Measures figure 6, if a server answers at `config.postgres`.
pub fn run(config: &Config) -> Result<Vec<Row>, BenchError> {
    let url = config.postgres.as_deref().unwrap_or(DEFAULT_URL);
    let runs = config.runs(3, 1);
    let n: u64 = if config.quick { 2_000 } else { 10_000 };
    let mut rows = Vec::new();
    for workers in [1, 2, 4] {
        let mut rates = Vec::new();
        let mut commits = 0;
        let mut batches = 0;
        let mut busy = Vec::new();
        for _ in 0..runs {
            let (elapsed, cpu_busy, reports) = run_once(&config.exe, url, workers, n)?;
            rates.push(n as f64 / elapsed);
            busy.push(cpu_busy * 100.0);
            commits += reports.iter().map(|r| r.commits).sum::<u64>();
            batches += reports.iter().map(|r| r.batches).sum::<u64>();
        }
        let name = format!("executions of 3 steps per second, {workers} worker process(es)");
        let note = format!(
            "{n} executions per run; {:.1} commits per transaction on average; CPU {:.0}% busy (median, all \
             cores, server included)",
            commits as f64 / batches.max(1) as f64,
            Summary::of(&busy).median,
        );
        rows.push(
            Row::new(
                &format!("6-{workers}"),
                &name,
                "exec/s",
                "PostgreSQL 1 server, fsync on",
                Better::Higher,
                Summary::of(&rates),
            )
            .note(note),
        );
    }
    Ok(rows)
}
