//! What can go wrong when you ask the engine for something.

use crate::store::{ExecutionId, Status, StoreError};

/// Why an [`Engine`](super::Engine) call failed.
///
/// Every variant but [`EngineError::Store`] is about the request itself: retrying it unchanged
/// gives the same answer. [`EngineError::is_retryable`] says whether a store error may go away.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No workflow of this name is registered with the engine.
    #[error("no workflow named `{name}` is registered with this engine (registered: {})", list(known))]
    UnknownWorkflow {
        /// The name asked for.
        name: String,
        /// The names that are registered.
        known: Vec<&'static str>,
    },
    /// Two different workflows with one name were registered.
    #[error(
        "two workflows named `{0}` were registered: workflow names identify stored executions, so each must be unique"
    )]
    DuplicateWorkflow(&'static str),
    /// The engine was built outside a tokio runtime.
    #[error("the engine must be built inside a tokio runtime (it spawns its group-commit task there)")]
    NoRuntime,
    /// The engine's commit task has stopped (its runtime is shutting down).
    #[error("the engine has stopped: its commit task is gone (is the runtime shutting down?)")]
    Stopped,
    /// An execution with this id exists and belongs to another workflow.
    #[error(
        "execution `{id}` already exists as a `{existing}` execution and cannot be started as `{requested}`: \
         execution ids are unique across workflows, choose another id"
    )]
    WorkflowMismatch {
        /// The execution.
        id: ExecutionId,
        /// The workflow it belongs to.
        existing: String,
        /// The workflow it was asked to be.
        requested: String,
    },
    /// There is no execution with this id.
    #[error("there is no execution `{0}`")]
    UnknownExecution(ExecutionId),
    /// The execution has finished and accepts no events or cancellation.
    #[error("execution `{id}` has already finished ({status}) and accepts no more events or changes")]
    Finished {
        /// The execution.
        id: ExecutionId,
        /// How it finished.
        status: Status,
    },
    /// The execution was cancelled, so it has no result.
    #[error("execution `{0}` was cancelled and has no result")]
    Cancelled(ExecutionId),
    /// The input does not fit the workflow's parameters.
    #[error("the input for workflow `{workflow}` does not match its parameters: {message}")]
    InvalidInput {
        /// The workflow.
        workflow: String,
        /// What the decoder said.
        message: String,
    },
    /// An event's payload is not JSON at all. Nothing was delivered or stored.
    #[error("the payload of event `{event}` for execution `{id}` is not valid JSON ({message}); nothing was delivered")]
    MalformedPayload {
        /// The execution.
        id: ExecutionId,
        /// The event's name.
        event: String,
        /// What the parser said.
        message: String,
    },
    /// The workflow waits for this event, but its payload does not decode to the type the
    /// workflow expects. Nothing was stored; the execution keeps waiting.
    #[error(
        "event `{event}` was refused by execution `{id}`: its payload does not match the type the workflow \
         expects at `wait!(\"{event}\", ..)` ({message}); nothing was stored and the execution keeps waiting"
    )]
    EventRejected {
        /// The execution.
        id: ExecutionId,
        /// The event's name.
        event: String,
        /// What the decoder said.
        message: String,
    },
    /// The execution waits for this event, but the wait's timeout passed before the event
    /// arrived: the deadline decides, so the event is refused (nothing is stored) and the wait
    /// times out.
    #[error(
        "event `{event}` arrived after the timeout of execution `{id}`'s `wait!(\"{event}\", ..)` \
         (its deadline was {deadline}); it was refused and the wait times out"
    )]
    DeadlinePassed {
        /// The execution.
        id: ExecutionId,
        /// The event's name.
        event: String,
        /// When the wait timed out.
        deadline: crate::Timestamp,
    },
    /// The execution's workflow has no `wait!` for an event of this name, so the event could
    /// never be consumed. Nothing was stored.
    #[error(
        "workflow `{workflow}` never waits for an event named `{event}` (its events: {}); nothing was sent to \
         execution `{id}`",
        list_owned(known)
    )]
    UnknownEvent {
        /// The execution.
        id: ExecutionId,
        /// Its workflow.
        workflow: String,
        /// The event's name.
        event: String,
        /// The events the workflow waits for.
        known: Vec<String>,
    },
    /// A callback token that no waiting callback has: nothing was changed.
    #[error("callback {token} cannot be completed: {why}")]
    UnknownCallback {
        /// The token, masked.
        token: String,
        /// Why.
        why: String,
    },
    /// A finished execution's stored output does not decode to the workflow type asked for.
    #[error("the result of execution `{id}` does not decode as the result of workflow `{workflow}`: {message}")]
    BadOutput {
        /// The execution.
        id: ExecutionId,
        /// The workflow asked for.
        workflow: &'static str,
        /// What the decoder said.
        message: String,
    },
    /// An execution id, a name, an input or a payload is outside the engine's
    /// [limits](crate::limits): the same on every store. Nothing was read or stored.
    #[error(transparent)]
    Invalid(#[from] crate::limits::Invalid),
    /// An operator's request makes no sense for the execution as it is now (redriving one that
    /// is running, waking one that waits for an event): nothing was changed.
    #[error("cannot {action} execution `{id}`: {why}")]
    Refused {
        /// What was asked: `redrive`, `wake`, `purge`.
        action: &'static str,
        /// The execution.
        id: ExecutionId,
        /// Why not, and what to do instead.
        why: String,
    },
    /// An operator's request is malformed (a reason too long, say): nothing was changed.
    #[error("{0}")]
    InvalidRequest(String),
    /// The store failed; see [`StoreError::is_retryable`].
    #[error("the store failed: {0}")]
    Store(#[source] StoreError),
}

impl EngineError {
    /// Whether the same call may succeed later: only for a store that is temporarily
    /// unavailable (busy, locked, connection lost).
    pub fn is_retryable(&self) -> bool {
        matches!(self, EngineError::Store(error) if error.is_retryable())
    }
}

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(id) => EngineError::UnknownExecution(id),
            StoreError::WrongStatus { id, status, why } => {
                EngineError::Refused { action: "change", id, why: format!("it is {status}: {why}") }
            }
            StoreError::Invalid(message) => EngineError::InvalidRequest(message),
            error => EngineError::Store(error),
        }
    }
}

fn list(names: &[&'static str]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

fn list_owned(names: &[String]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

/// A copy of `error` for each commit of a batch that failed as a whole (`StoreError` is not
/// `Clone`: it may hold a boxed source).
pub(crate) fn copy_store_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::NotFound(id) => StoreError::NotFound(id.clone()),
        StoreError::Conflict { id, expected, actual } => {
            StoreError::Conflict { id: id.clone(), expected: *expected, actual: *actual }
        }
        StoreError::LeaseLost { id, owner } => StoreError::LeaseLost { id: id.clone(), owner: owner.clone() },
        StoreError::Terminal(id) => StoreError::Terminal(id.clone()),
        StoreError::Corrupt { id, what } => StoreError::Corrupt { id: id.clone(), what: what.clone() },
        StoreError::Unavailable(source) => StoreError::Unavailable(source.to_string().into()),
        other => StoreError::backend(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_thing_and_the_fix() {
        let unknown = EngineError::UnknownWorkflow { name: "refund".into(), known: vec!["order", "ship"] };
        assert_eq!(
            unknown.to_string(),
            "no workflow named `refund` is registered with this engine (registered: order, ship)"
        );
        let store = EngineError::from(StoreError::Unavailable("database is locked".into()));
        assert!(store.is_retryable());
        assert!(!EngineError::from(StoreError::backend("read-only")).is_retryable());
        assert!(matches!(EngineError::from(StoreError::NotFound("x".into())), EngineError::UnknownExecution(_)));
        let copied = copy_store_error(&StoreError::Unavailable("busy".into()));
        assert!(copied.is_retryable() && copied.to_string() == "busy");
    }
}
