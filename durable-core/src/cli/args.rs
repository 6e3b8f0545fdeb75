//! The command line's arguments.

use clap::{Parser, Subcommand};

use crate::store::Status;

/// `durable`: inspect and operate the executions in a store.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "durable",
    version,
    about = "Inspect durable executions: where they are or where they failed, the state they were in, \
             and what happened before; and operate them: redrive, wake, cancel, send events, purge"
)]
pub struct Cli {
    /// The store: a SQLite file or a PostgreSQL url (postgres://...). Inspection commands open
    /// it read-only; only `redrive`, `wake`, `cancel`, `send-event`, `complete-callback`,
    /// `heartbeat-callback`, `pause`, `resume`, `purge` and `serve` write.
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
        /// Only executions with this business key: `--key order_id=o-42`.
        #[arg(long, value_name = "NAME=VALUE", value_parser = parse_key)]
        key: Option<(String, String)>,
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
    /// List the state layouts of the executions in flight, by workflow and point, with how many
    /// executions hold each and whether the latest registered build of the workflow has it:
    /// what a deploy of changed code must still be able to run.
    Versions {
        /// Only this workflow.
        #[arg(long, short = 'w')]
        workflow: Option<String>,
    },
    /// Run a failed or cancelled execution again from its last checkpoint (or an earlier one,
    /// with `--from-seq`), with the code of the workers running now: the steps that succeeded
    /// before that checkpoint do not run again. A worker must be running to pick it up.
    Redrive {
        /// The execution's id.
        id: String,
        /// Why: written to its history.
        #[arg(long, default_value = "")]
        reason: String,
        /// Who asks (default: $USER): written to its history.
        #[arg(long)]
        by: Option<String>,
        /// Go on from the checkpoint of this history event instead (`durable history ID`); 1
        /// starts over.
        #[arg(long, value_name = "SEQ")]
        from_seq: Option<u64>,
    },
    /// Wake a suspended execution now, though its timer or the delay before its step's next
    /// attempt has not passed.
    Wake {
        /// The execution's id.
        id: String,
        /// Why: written to its history.
        #[arg(long, default_value = "")]
        reason: String,
        /// Who asks (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Cancel an execution that has not finished.
    Cancel {
        /// The execution's id.
        id: String,
        /// Why: written to its history.
        #[arg(long, default_value = "")]
        reason: String,
        /// Who asks (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Send an event to an execution (kept in its inbox until its workflow waits for it).
    SendEvent {
        /// The execution's id.
        id: String,
        /// The event's name (the name of the `wait!` that waits for it).
        name: String,
        /// Its payload, as JSON.
        #[arg(default_value = "null")]
        payload: String,
    },
    /// Pause a workflow: no worker claims its executions until `durable resume`.
    Pause {
        /// The workflow's name.
        workflow: String,
        /// Why: logged.
        #[arg(long, default_value = "")]
        reason: String,
        /// Who asks (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Resume a paused workflow.
    Resume {
        /// The workflow's name.
        workflow: String,
        /// Why: logged.
        #[arg(long, default_value = "")]
        reason: String,
        /// Who asks (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Complete a callback with the token its submitter handed out: with a value, or with
    /// `--error-type` and `--message` as a failure.
    CompleteCallback {
        /// The callback's token.
        token: String,
        /// The value, as JSON (ignored with `--error-type`).
        #[arg(default_value = "null")]
        payload: String,
        /// Fail the callback with this kind of error instead.
        #[arg(long)]
        error_type: Option<String>,
        /// The failure's message.
        #[arg(long, default_value = "")]
        message: String,
    },
    /// Record a heartbeat of a callback: the external system is still working on it.
    HeartbeatCallback {
        /// The callback's token.
        token: String,
    },
    /// Delete finished executions (with their history and inbox) that finished longer ago than
    /// `--older-than`, in batches of a few hundred.
    Purge {
        /// How long ago they finished, at least: `90s`, `45m`, `12h`, `30d`, `2w`.
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: std::time::Duration,
        /// Only executions of this workflow.
        #[arg(long, short = 'w')]
        workflow: Option<String>,
        /// Only executions with this status (succeeded, failed or cancelled).
        #[arg(long, short = 's')]
        status: Option<Status>,
        /// Who asks (default: $USER): logged.
        #[arg(long)]
        by: Option<String>,
        /// Why: logged.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Serve the web console and its JSON API (feature `web`).
    #[cfg(feature = "web")]
    Serve {
        /// The address to listen on. Reads are open to anyone who can connect, so keep it on
        /// loopback unless a proxy in front authenticates.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
        bind: std::net::SocketAddr,
        /// The token every write must carry (`Authorization: Bearer TOKEN`, or the console's
        /// forms after signing in with it). Default: $DURABLE_CONSOLE_TOKEN, else a random one
        /// printed at start.
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
    },
}

impl Command {
    /// Whether the command changes the store (and so opens it for writing).
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Command::List { .. }
                | Command::Show { .. }
                | Command::History { .. }
                | Command::State { .. }
                | Command::Graph { .. }
                | Command::Versions { .. }
        )
    }
}

/// Parses a business key: `name=value`.
pub fn parse_key(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not a business key: write `name=value` (`order_id=o-42`)")),
    }
}

/// Parses an age: a whole number and a unit, `s`, `m`, `h`, `d` or `w` (`30d`).
pub fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = text.split_at(digits);
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("`{text}` is not an age such as 90s, 45m, 12h, 30d or 2w")),
    };
    let number: u64 = number.parse().map_err(|_| format!("`{text}` is not an age such as 90s, 45m, 12h, 30d or 2w"))?;
    number
        .checked_mul(seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long an age"))
}

#[cfg(test)]
mod tests {
    use super::parse_age;
    use std::time::Duration;

    #[test]
    fn ages() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["", "d", "30", "30y", "-1d", "1.5h", "99999999999999999999d", "18446744073709551615w"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
