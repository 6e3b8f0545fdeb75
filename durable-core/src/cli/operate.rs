//! The subcommands that change the store: each calls the [`Engine`] method of the same name.

use std::io::Write;

use serde_json::json;

use super::CliError;
use super::args::Command;
use crate::engine::{Operator, PurgeFilter};
use crate::store::{ExecutionRecord, Store};
use crate::{Delivery, Engine};

/// Who asks, when `--by` does not say: the user running the command.
fn operator(by: &Option<String>, reason: &str) -> Operator {
    let who = by.clone().or_else(|| std::env::var("USER").ok().filter(|user| !user.is_empty()));
    Operator::new(who.unwrap_or_else(|| "durable-cli".to_owned()), reason)
}

fn outcome(record: &ExecutionRecord, what: &str, json: bool) -> String {
    if json {
        let value =
            json!({ "id": record.id, "workflow": record.workflow, "status": record.status, "version": record.version });
        format!("{value}\n")
    } else {
        format!("{} {}: {what} (now {})\n", record.workflow, crate::render::clean(&record.id, 256), record.status)
    }
}

/// Runs `command`, one of those that write, on `store`.
pub(super) async fn execute<S: Store>(
    store: S,
    command: &Command,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    // No workflow is registered: every control works from the store alone, and the workers
    // that run the executions have the code.
    let engine = Engine::builder(store).build()?;
    let text = match command {
        Command::Redrive { id, reason, by, from_seq } => {
            let by = operator(by, reason);
            let record = match from_seq {
                Some(seq) => engine.redrive_from(id, *seq, &by).await?,
                None => engine.redrive(id, &by).await?,
            };
            outcome(&record, "redriven; a worker will run it", json)
        }
        Command::Wake { id, reason, by } => {
            let record = engine.wake(id, &operator(by, reason)).await?;
            outcome(&record, "woken; a worker will run it", json)
        }
        Command::Cancel { id, reason, by } => {
            engine.cancel_by(id, &operator(by, reason)).await?;
            let record = engine.store().load(id).await?.ok_or_else(|| CliError::UnknownExecution(id.clone()))?;
            outcome(&record, "cancelled", json)
        }
        Command::SendEvent { id, name, payload } => {
            let delivery = engine.send_event_json(id, name, payload).await?;
            let what = match delivery {
                Delivery::Delivered => "delivered",
                Delivery::Queued => "queued",
                Delivery::Duplicate => "duplicate",
            };
            if json {
                format!("{}\n", json!({ "id": id, "event": name, "delivery": what }))
            } else {
                format!("event {} {what} to {}\n", crate::render::clean(name, 256), crate::render::clean(id, 256))
            }
        }
        Command::Pause { workflow, reason, by } => {
            engine.pause_workflow(workflow, &operator(by, reason)).await?;
            if json {
                format!("{}\n", json!({ "workflow": workflow, "paused": true }))
            } else {
                format!("workflow {workflow} paused\n")
            }
        }
        Command::Resume { workflow, reason, by } => {
            engine.resume_workflow(workflow, &operator(by, reason)).await?;
            if json {
                format!("{}\n", json!({ "workflow": workflow, "paused": false }))
            } else {
                format!("workflow {workflow} resumed\n")
            }
        }
        Command::CompleteCallback { token, payload, error_type, message } => {
            let result = match error_type {
                Some(kind) => Err(crate::CallbackFailure::new(kind.clone(), message.clone())),
                None => Ok(serde_json::from_str::<serde_json::Value>(payload)
                    .map_err(|error| CliError::Usage(format!("the payload is not JSON: {error}")))?),
            };
            let delivery = engine.complete_callback(token, result.as_ref().map_err(Clone::clone)).await?;
            let what = match delivery {
                Delivery::Delivered => "delivered",
                Delivery::Queued => "queued",
                Delivery::Duplicate => "duplicate",
            };
            let shown = crate::callback::masked(token);
            if json {
                format!("{}\n", json!({ "callback": shown, "delivery": what }))
            } else {
                format!("callback {shown} completed ({what})\n")
            }
        }
        Command::HeartbeatCallback { token } => {
            engine.heartbeat_callback(token).await?;
            let shown = crate::callback::masked(token);
            if json {
                format!("{}\n", json!({ "callback": shown, "heartbeat": true }))
            } else {
                format!("callback {shown}: heartbeat recorded\n")
            }
        }
        Command::Purge { older_than, workflow, status, by, reason } => {
            let filter = PurgeFilter { older_than: *older_than, workflow: workflow.clone(), status: *status };
            let purged = engine.purge(&filter, &operator(by, reason)).await?;
            if json { format!("{}\n", json!({ "purged": purged })) } else { format!("purged {purged} executions\n") }
        }
        #[cfg(feature = "web")]
        Command::Serve { bind, token } => {
            let token = token.clone().or_else(|| std::env::var("DURABLE_CONSOLE_TOKEN").ok().filter(|t| !t.is_empty()));
            crate::web::serve(engine, *bind, token, out).await?;
            String::new()
        }
        Command::List { .. }
        | Command::Show { .. }
        | Command::History { .. }
        | Command::State { .. }
        | Command::Graph { .. }
        | Command::Versions { .. } => {
            return Err(CliError::Usage("this command only reads: it does not open the store for writing".to_owned()));
        }
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}
