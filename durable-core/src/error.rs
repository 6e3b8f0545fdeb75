//! Errors a workflow sees and returns.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::step::StepError;

/// An event wait with a timeout ran out before the event arrived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("no event `{event}` arrived before the timeout")]
pub struct Timeout {
    /// The event that was awaited.
    pub event: String,
}

/// A ready-made error type for workflows: serializable, with a message and whether it came from
/// a step, a timeout or the workflow itself.
///
/// Any `Result<T, E>` whose `E` is serializable and displayable works as a workflow's return
/// type; this one saves writing your own while `?` works on step results and timeouts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowError {
    message: String,
    step: Option<String>,
}

impl WorkflowError {
    /// An error raised by the workflow itself.
    pub fn new(message: impl fmt::Display) -> Self {
        WorkflowError { message: message.to_string(), step: None }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The step whose failure this is, if it is one.
    pub fn step(&self) -> Option<&str> {
        self.step.as_deref()
    }
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WorkflowError {}

impl From<StepError> for WorkflowError {
    fn from(error: StepError) -> Self {
        WorkflowError { message: error.to_string(), step: error.step().map(str::to_owned) }
    }
}

impl<E: fmt::Display> From<crate::child::ChildError<E>> for WorkflowError {
    fn from(error: crate::child::ChildError<E>) -> Self {
        WorkflowError::new(error)
    }
}

impl From<crate::callback::CallbackError> for WorkflowError {
    fn from(error: crate::callback::CallbackError) -> Self {
        WorkflowError::new(error)
    }
}

impl From<crate::batch::BatchError> for WorkflowError {
    fn from(error: crate::batch::BatchError) -> Self {
        WorkflowError::new(error)
    }
}

impl From<crate::poll::PollError> for WorkflowError {
    fn from(error: crate::poll::PollError) -> Self {
        WorkflowError::new(error)
    }
}

impl From<Timeout> for WorkflowError {
    fn from(error: Timeout) -> Self {
        WorkflowError::new(error)
    }
}
