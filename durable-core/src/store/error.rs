//! What can go wrong in a store.

use std::error::Error;

use super::record::{ExecutionId, Status};

/// Why a [`Store`](super::Store) call failed. When a call fails, it changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// There is no execution with this id.
    #[error("execution `{0}` not found")]
    NotFound(ExecutionId),
    /// The execution was committed by someone else since the caller read it.
    #[error("execution `{id}` was modified concurrently (expected version {expected}, found {actual})")]
    Conflict {
        /// The execution.
        id: ExecutionId,
        /// The version the caller expected.
        expected: u64,
        /// The stored version.
        actual: u64,
    },
    /// The worker no longer holds the execution's lease: it expired or another worker claimed it.
    /// The worker must stop running the execution.
    #[error("worker `{owner}` no longer holds the lease on execution `{id}` (it expired or was claimed)")]
    LeaseLost {
        /// The execution.
        id: ExecutionId,
        /// The worker that believed it held the lease.
        owner: String,
    },
    /// The execution has finished: it accepts no more events or changes.
    #[error("execution `{0}` has finished and accepts no more events or changes")]
    Terminal(ExecutionId),
    /// The execution's status does not allow this operation (reopening one that has not failed
    /// or been cancelled, say). Nothing was changed.
    #[error("execution `{id}` is {status}: {why}")]
    WrongStatus {
        /// The execution.
        id: ExecutionId,
        /// Its stored status.
        status: Status,
        /// What the operation needs.
        why: &'static str,
    },
    /// The request itself makes no sense (purging unfinished executions, say). Nothing was
    /// changed.
    #[error("{0}")]
    Invalid(String),
    /// This store does not implement the operation.
    #[error("this store cannot {0}")]
    Unsupported(&'static str),
    /// A stored row cannot be decoded. The row was left as it is.
    #[error("the stored record of execution `{id}` is corrupt: {what}")]
    Corrupt {
        /// The execution.
        id: ExecutionId,
        /// What is wrong with it.
        what: String,
    },
    /// The storage is temporarily unavailable (busy, locked, connection lost): retrying may help.
    #[error(transparent)]
    Unavailable(Box<dyn Error + Send + Sync>),
    /// The storage failed in a way retrying does not fix (it cannot be opened, it is read-only,
    /// its schema is newer than this build).
    #[error(transparent)]
    Backend(Box<dyn Error + Send + Sync>),
}

impl StoreError {
    /// Whether retrying the same call later may succeed.
    ///
    /// `true` only for [`StoreError::Unavailable`]. A [`StoreError::Conflict`] or
    /// [`StoreError::LeaseLost`] is never fixed by retrying the same commit: reload the record
    /// (or give the execution up) instead.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// A [`StoreError::Backend`] with `message`.
    pub fn backend(message: impl Into<String>) -> Self {
        StoreError::Backend(message.into().into())
    }

    /// A [`StoreError::Corrupt`] about execution `id`.
    pub fn corrupt(id: &str, what: impl Into<String>) -> Self {
        StoreError::Corrupt { id: id.to_owned(), what: what.into() }
    }
}

/// A stored name (a status, an event kind) that this build does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`")]
pub struct ParseNameError {
    what: &'static str,
    name: String,
}

impl ParseNameError {
    pub(crate) fn new(what: &'static str, name: &str) -> Self {
        ParseNameError { what, name: name.to_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_is_retryable() {
        assert!(StoreError::Unavailable("database is locked".into()).is_retryable());
        assert!(!StoreError::backend("read-only").is_retryable());
        let conflict = StoreError::Conflict { id: "a".into(), expected: 1, actual: 2 };
        assert!(!conflict.is_retryable());
        assert!(!StoreError::NotFound("a".into()).is_retryable());
        assert_eq!(conflict.to_string(), "execution `a` was modified concurrently (expected version 1, found 2)");
    }
}
