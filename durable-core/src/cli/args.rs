//! The command line's arguments.

use clap::{Parser, Subcommand};

use crate::store::Status;

/// `durable`: inspect the executions in a store.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "durable",
    version,
    about = "Inspect durable executions: where they are or where they failed, the state they were in, \
             and what happened before"
)]
pub struct Cli {
    /// The store: a SQLite file (opened read-only) or a PostgreSQL url (postgres://...).
    #[arg(long, short = 'd', value_name = "PATH|URL")]
    pub database: String,

    /// The PostgreSQL schema that holds the store's tables.
    #[arg(long, default_value = "durable", value_name = "SCHEMA")]
    pub schema: String,

    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A `durable` subcommand.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// List executions, oldest first, with their status, business keys and last checkpoint.
    List {
        /// Only executions of this workflow.
        #[arg(long, short = 'w')]
        workflow: Option<String>,
        /// Only executions with this status (running, suspended, succeeded, failed, cancelled).
        #[arg(long, short = 's')]
        status: Option<Status>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show one execution: its status, where it waits or where it failed (point, file:line,
    /// error), the state it was in there, and its last events.
    Show {
        /// The execution's id.
        id: String,
        /// How many of its last history events to show.
        #[arg(long, default_value_t = 6)]
        events: usize,
    },
    /// Print an execution's whole history, oldest first.
    History {
        /// The execution's id.
        id: String,
        /// Also print the state stored at each checkpoint.
        #[arg(long)]
        states: bool,
    },
    /// Print the state stored at the execution's last checkpoint, or at another checkpoint.
    State {
        /// The execution's id.
        id: String,
        /// The last checkpoint at this point instead.
        #[arg(long, value_name = "POINT", conflicts_with = "seq")]
        at: Option<String>,
        /// The checkpoint recorded by the history event with this number instead.
        #[arg(long, value_name = "SEQ")]
        seq: Option<u64>,
    },
    /// Print a workflow's diagram (Mermaid), generated from its static facts; with
    /// `--execution`, the points it passed, where it is and where it failed are marked.
    Graph {
        /// The workflow's name.
        workflow: String,
        /// Mark this execution's path.
        #[arg(long, value_name = "ID")]
        execution: Option<String>,
    },
}
