//! Child workflows: an execution that another one starts and awaits.
//!
//! A workflow starts a registered workflow as its child with `call!` (start it and wait for its
//! result, one point) or `start!` (start it now, get a [`Child`] handle, and wait for it later
//! with `wait!(name, child = handle)`). The child is an execution of its own: its own id, history
//! and state, run by any worker. Its id is the parent's id and the point's name
//! (`o-42/charge`), with the point's `key = ..` appended (`o-42/charge/3`) where one point starts
//! several children, in a loop.
//!
//! Starting is atomic with the parent's checkpoint: the child is created in the same
//! transaction that records it, so a crash never starts it twice or loses it. The child's end
//! is written in the same transaction as a notice to its parent, so the parent is woken exactly
//! when it ends, also across crashes of either.

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::workflow::Workflow;

/// A child workflow started with `start!`, to be awaited later with `wait!(name, child = ..)`.
///
/// It is a storable value (the child's execution id), so it can be kept across points like any
/// other local.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct Child<W> {
    id: String,
    #[serde(skip)]
    workflow: PhantomData<fn() -> W>,
}

impl<W> Child<W> {
    /// The handle of child execution `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Child { id: id.into(), workflow: PhantomData }
    }

    /// The child's execution id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl<W> Clone for Child<W> {
    fn clone(&self) -> Self {
        Child::new(self.id.clone())
    }
}

impl<W> fmt::Debug for Child<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Child").field(&self.id).finish()
    }
}

impl<W> PartialEq for Child<W> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

/// Why a child workflow did not return a value to its parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ChildError<E> {
    /// The child's function returned `Err`: its error, as it returned it.
    #[error("child workflow {child} failed: {error}")]
    Failed {
        /// The child's execution id.
        child: String,
        /// The child's error.
        error: E,
    },
    /// The child was cancelled.
    #[error("child workflow {child} was cancelled")]
    Cancelled {
        /// The child's execution id.
        child: String,
    },
    /// The child ended in a way this build cannot read: its result does not decode to the
    /// child workflow's types (a child of another build), or the child failed without a result.
    #[error("child workflow {child} ended, but its result cannot be read: {message}")]
    Unreadable {
        /// The child's execution id.
        child: String,
        /// What went wrong.
        message: String,
    },
}

impl<E> ChildError<E> {
    /// The child's execution id.
    pub fn child(&self) -> &str {
        match self {
            ChildError::Failed { child, .. }
            | ChildError::Cancelled { child }
            | ChildError::Unreadable { child, .. } => child,
        }
    }
}

/// What a child's end tells its parent: the payload of the notice its last commit delivers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ChildEnd<T> {
    /// The function returned; its output as stored (`{"Ok":..}` or `{"Err":..}`).
    Returned(T),
    /// The execution was cancelled.
    Cancelled,
}

/// The payload of the event that tells a parent which child ended, and how.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChildNotice<T> {
    /// The child's execution id.
    pub(crate) child: String,
    /// How it ended.
    pub(crate) end: ChildEnd<T>,
}

/// The name of the event that tells a parent its child `child` ended.
pub(crate) fn notice_name(child: &str) -> String {
    format!("child:{child}")
}

/// The id of the child a parent `parent` starts at point `point`, with the point's key if any.
pub(crate) fn child_id(parent: &str, point: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("{parent}/{point}/{key}"),
        None => format!("{parent}/{point}"),
    }
}

/// The parent's view of its child's end, decoded from the notice's payload.
pub(crate) fn decode_end<W: Workflow>(child: &str, payload: &str) -> Result<W::Output, ChildError<W::Error>> {
    let unreadable = |message: String| ChildError::Unreadable { child: child.to_owned(), message };
    match serde_json::from_str::<ChildNotice<Result<W::Output, W::Error>>>(payload).map(|notice| notice.end) {
        Ok(ChildEnd::Returned(Ok(value))) => Ok(value),
        Ok(ChildEnd::Returned(Err(error))) => Err(ChildError::Failed { child: child.to_owned(), error }),
        Ok(ChildEnd::Cancelled) => Err(ChildError::Cancelled { child: child.to_owned() }),
        Err(error) => Err(unreadable(error.to_string())),
    }
}
