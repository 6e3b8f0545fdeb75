//! `pg-worker`: one worker process of the PostgreSQL many-workers tests (`pg_workers`,
//! `pg_connection_loss`). It runs the workflows of `pg_worker/workflows.rs` from a shared
//! PostgreSQL schema until its standard input is closed, then finishes its runs in flight (each
//! stops at its next checkpoint) and exits 0. The tests also kill it with SIGKILL.
//!
//! ```text
//! pg-worker <database-url> <schema> <worker-name> <run-log> [application-name]
//! ```
//!
//! With a `sqlite:<path>` url it runs on that SQLite file instead (the schema is then ignored):
//! the storm test (`pg_storm`) runs on both stores.
//!
//! - `worker-name` owns the worker's leases and is written on every line of its run log (see
//!   `workflows.rs` for the format);
//! - `application-name` names its connections in `pg_stat_activity` (default: the schema), so
//!   that a test can cut exactly them.
//!
//! It prints `ready` on standard output once it is connected and listening for new work, and
//! `stopped` when it exits. Its logs go to standard error (`RUST_LOG`, default `warn`).

#[path = "pg_worker/workflows.rs"]
mod workflows;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use durable_core::logging::{self, LogFormat};
use durable_core::store::{PostgresOptions, PostgresStore};
use durable_core::{Engine, SqliteStore};

/// The command line.
struct Args {
    url: String,
    schema: String,
    worker: String,
    log: PathBuf,
    application_name: Option<String>,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let usage = "usage: pg-worker <database-url> <schema> <worker-name> <run-log> [application-name]";
        match args.as_slice() {
            [url, schema, worker, log, rest @ ..] if rest.len() <= 1 => Ok(Args {
                url: url.clone(),
                schema: schema.clone(),
                worker: worker.clone(),
                log: log.into(),
                application_name: rest.first().cloned(),
            }),
            _ => Err(usage.to_owned()),
        }
    }
}

fn main() -> ExitCode {
    let _ = logging::init_with(LogFormat::Text, "warn");
    let result = Args::parse().and_then(|args| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        runtime.block_on(run(args))
    });
    match result {
        Ok(()) => {
            println!("stopped");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("pg-worker: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    workflows::install(&args.log, &args.worker).map_err(|e| format!("cannot open {}: {e}", args.log.display()))?;
    if let Some(path) = args.url.strip_prefix("sqlite:") {
        let store = SqliteStore::open(path).map_err(|e| e.to_string())?;
        let engine = workflows::register(Engine::builder(store))
            .lease(workflows::LEASE)
            .poll_interval(workflows::POLL)
            .build()
            .map_err(|e| e.to_string())?;
        let worker = engine.worker(args.worker);
        println!("ready");
        worker.run(stdin_closed()).await;
        return Ok(());
    }
    let options = PostgresOptions {
        application_name: args.application_name.unwrap_or_else(|| args.schema.clone()),
        schema: args.schema,
        pool_size: 4,
        ..PostgresOptions::default()
    };
    let store = PostgresStore::connect_with(&args.url, options).await.map_err(|e| e.to_string())?;
    let listener = store.listen().await.map_err(|e| e.to_string())?;
    let engine = workflows::register(Engine::builder(store))
        .lease(workflows::LEASE)
        .poll_interval(workflows::POLL)
        .build()
        .map_err(|e| e.to_string())?;
    let worker = engine.worker(args.worker).wake_on(listener);
    println!("ready");
    worker.run(stdin_closed()).await;
    Ok(())
}

/// Completes once standard input reaches its end: the parent closed it, or died.
async fn stdin_closed() {
    let (closed, wait) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    let _ = wait.await;
}
