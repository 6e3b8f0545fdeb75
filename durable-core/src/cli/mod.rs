//! The `durable` command line (feature `cli`): list executions, show where one is or where it
//! failed and the state it was in, print its history, its state at any checkpoint, and its
//! workflow's diagram; and operate them: `redrive`, `wake`, `cancel`, `send-event`, `purge`,
//! and (feature `web`) `serve` the web console.
//!
//! ```text
//! cargo run -p durable-core --features cli --bin durable -- --database orders.db list --status failed
//! cargo run -p durable-core --features cli --bin durable -- --database orders.db show o-42
//! cargo run -p durable-core --features cli --bin durable -- --database orders.db state o-42 --at payment
//! cargo run -p durable-core --features cli --bin durable -- --database postgres://localhost/app graph order_workflow --execution o-42
//! cargo run -p durable-core --features cli --bin durable -- --database orders.db redrive o-42 --reason "carrier is back"
//! cargo run -p durable-core --features cli --bin durable -- --database orders.db purge --older-than 30d --status succeeded
//! ```
//!
//! The inspection commands read a SQLite file or a PostgreSQL schema read-only: they never
//! create, migrate or change anything, and report a store that is not there. The operating
//! commands call the [`Engine`](crate::Engine) method of the same name (with no workflow
//! registered: the workers have the code) and write who asked and why to the history. It needs none of the workflows'
//! code: the engine registers each workflow's static facts (points, source lines, edges,
//! business keys) with the store, which is what `graph` draws and `list`/`show` name keys with.
//! Every command prints text for people, or JSON for scripts with `--json`. The same renderings
//! are available as functions in [`render`](crate::render).

use std::io::Write;

use clap::Parser;

use crate::store::StoreError;

mod args;
mod commands;
mod operate;

pub use self::args::{Cli, Command, parse_age};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The arguments do not parse (clap's message, with usage), or `--help`/`--version` was
    /// asked for (then the message is the help text).
    #[error("{0}")]
    Usage(String),
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No execution has this id.
    #[error("there is no execution `{0}` in this store")]
    UnknownExecution(String),
    /// No facts were registered for this workflow.
    #[error(
        "no workflow `{0}` is registered in this store (the engine registers a workflow's facts when it first \
         starts or runs an execution)"
    )]
    UnknownWorkflow(String),
    /// A workflow's registered facts do not decode.
    #[error("the registered facts of workflow `{workflow}` do not decode: {error}")]
    BadFacts {
        /// The workflow.
        workflow: String,
        /// What the decoder said.
        error: serde_json::Error,
    },
    /// The state asked for does not exist.
    #[error("{0}")]
    NoState(String),
    /// The engine refused or failed an operation (redrive, wake, cancel, send-event, purge).
    #[error(transparent)]
    Engine(#[from] crate::EngineError),
    /// The web console could not start (its address is taken, say).
    #[error("the console cannot serve: {0}")]
    Serve(String),
    /// The output could not be written.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs the command line `cli`, printing to `out`.
pub async fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let database = cli.database.as_str();
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        return run_postgres(cli, out).await;
    }
    if cli.command.writes() {
        let store = crate::store::SqliteStore::open(database)?;
        return operate::execute(store, &cli.command, cli.json, out).await;
    }
    let store = crate::store::SqliteStore::open_read_only(database)?;
    commands::execute(&store, &cli.command, cli.json, out).await
}

#[cfg(feature = "postgres")]
async fn run_postgres(cli: &Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let options = crate::store::PostgresOptions {
        schema: cli.schema.clone(),
        pool_size: if cli.command.writes() { 4 } else { 1 },
        application_name: "durable-cli".to_owned(),
        ..crate::store::PostgresOptions::default()
    };
    if cli.command.writes() {
        let store = crate::store::PostgresStore::connect_with(&cli.database, options).await?;
        return operate::execute(store, &cli.command, cli.json, out).await;
    }
    let store = crate::store::PostgresStore::connect_read_only(&cli.database, options).await?;
    commands::execute(&store, &cli.command, cli.json, out).await
}

#[cfg(not(feature = "postgres"))]
async fn run_postgres(_cli: &Cli, _out: &mut dyn Write) -> Result<(), CliError> {
    Err(CliError::Usage(
        "this build of durable cannot open PostgreSQL databases: build it with `--features postgres`".to_owned(),
    ))
}

/// Parses `args` (the program's name first) and runs them; returns what the command printed.
/// For tests and for programs that embed the command line.
pub async fn run_args<I, T>(args: I) -> Result<String, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(|error| CliError::Usage(error.to_string()))?;
    let mut out = Vec::new();
    run(&cli, &mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
