//! Durable workflows written as plain async functions, resumed from snapshots instead of replay.
//!
//! `#[durable]` turns an `async fn` into a resumable state machine: one state per
//! [`step!`](macro@step) and [`wait!`](macro@wait) point, each holding exactly the locals still
//! needed after it, serialized with serde. Resuming loads one snapshot and continues at that
//! point: nothing before it runs again, the code between points needs no determinism, and the
//! cost of a resume does not grow with the execution's history.
//!
//! ```
//! use durable_core::prelude::*;
//! use durable_core::testing::TestRun;
//! use std::time::Duration;
//!
//! #[durable]
//! async fn order(order_id: String) -> Result<String, WorkflowError> {
//!     let total = step!("price", price(&order_id).await)?;
//!     wait!("cool_off", Duration::from_secs(3600));
//!     let receipt = step!("charge", retry = Retry::exponential(3), charge(total).await)?;
//!     Ok(format!("{order_id}: {receipt}"))
//! }
//!
//! async fn price(order_id: &str) -> Result<u64, std::io::Error> { Ok(order_id.len() as u64 * 10) }
//! async fn charge(total: u64) -> Result<String, std::io::Error> { Ok(format!("charged {total}")) }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut run = TestRun::start(order, "o-1", "o-1".to_string());
//! // Timers fire on a virtual clock: the hour passes without sleeping.
//! let result = run.run_to_end().await.unwrap();
//! assert_eq!(result, Ok("o-1: charged 30".to_string()));
//! # });
//! ```
//!
//! # Where to read on
//!
//! - [`manual`]: the user's manual (the README): writing workflows, running executions, events
//!   and retries, many workers on PostgreSQL, testing, inspecting executions.
//! - [`durable`](macro@durable): everything the attribute accepts, and what it refuses and why.
//! - [`Engine`] and [`Worker`]: starting, signalling and running executions.
//! - [`store`]: the [`Store`] trait, its backends, and [`AnyStore`](store::AnyStore): the store
//!   a URL in configuration names (`sqlite:app.db`, `postgres://...`, `memory:`).
//! - [`testing`]: a virtual clock, crashes on demand and deterministic logs.
//!
//! # Feature flags
//!
//! Items that need a feature say so in their docs.
#![doc = document_features::document_features!()]
// `doc_cfg` marks every feature-gated item with the features it needs (on docs.rs, built with
// `--cfg docsrs`), without a `doc(cfg(..))` on each.
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The user's manual: the repository's README, whose examples run as doctests.
#[doc = include_str!("../../README.md")]
pub mod manual {}

pub mod batch;
pub mod callback;
pub mod child;
mod error;
mod facts;
mod host;
pub mod poll;
mod step;
mod time;
mod workflow;

#[cfg(feature = "cli")]
pub mod cli;
pub mod engine;
pub mod limits;
#[cfg(feature = "logging")]
pub mod logging;
pub mod render;
pub mod store;
#[cfg(any(feature = "metrics", feature = "otel"))]
pub mod telemetry;
pub mod testing;
#[cfg(feature = "web")]
pub mod web;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use crate::batch::{Batch, BatchError, BatchItems, BatchOptions, ChildBatch, Completed, Completion, Outcome};
pub use crate::callback::{CallbackError, CallbackFailure, CallbackPoll, CallbackWait};
pub use crate::child::{Child, ChildError};
pub use crate::engine::{Delivery, Engine, EngineError, ExecutionStatus, Handle, Worker};
pub use crate::error::{Timeout, WorkflowError};
pub use crate::facts::{FactsRecord, PointRecord};
pub use crate::host::{BoxFuture, Ctx, EventPoll, Gate, Host, Pause};
pub use crate::poll::{Check, PollError, PollState};
pub use crate::step::{Retry, Semantics, StepError, StepPolicy};
#[cfg(feature = "postgres")]
pub use crate::store::PostgresStore;
#[cfg(feature = "sqlite")]
pub use crate::store::SqliteStore;
pub use crate::store::{MemoryStore, Store, StoreError};
pub use crate::time::{Clock, ManualClock, SharedClock, SystemClock, Timestamp};
pub use crate::workflow::{
    Edge, Entry, Exit, Node, PointFacts, PointKind, Snapshot, StateError, Workflow, WorkflowFacts,
};

#[cfg(feature = "macros")]
#[doc = include_str!("docs/durable.md")]
pub use durable_macros::durable;

/// Everything a workflow file needs: `use durable_core::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Batch, BatchOptions, CallbackError, CallbackFailure, Check, Child, ChildError, Completion, Ctx, Outcome,
        PollError, Retry, Semantics, StepError, Timeout, Workflow, WorkflowError,
    };
    #[cfg(feature = "macros")]
    pub use crate::{call, durable, map, parallel, start, step, wait};
}

/// Runs a step: `step!(name, [options,] body)`.
///
/// Only meaningful inside a `#[durable]` function, which rewrites every `step!` it contains;
/// anywhere else it is a compile error.
///
/// - `name`: a string literal naming the step in logs, history and the stored state.
/// - `body`: an expression (usually ending in `.await`) of type `Result<T, E>` where `E`
///   converts into [`StepError`]. `T` is checkpointed.
/// - options, each `key = value` before the body: `retry = Retry::exponential(5)` (default: one
///   attempt) and `semantics = Semantics::AtMostOncePerAttempt` (default: at least once).
///
/// Evaluates to `Result<T, StepError>`: the body's value, or its error after the last attempt.
#[cfg(feature = "macros")]
#[macro_export]
macro_rules! step {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`step!` can only be used inside a `#[durable]` async fn: add `#[durable]` to the function"
        )
    };
}

/// Runs a child workflow and waits for its result: `call!(name, workflow, input [, key = k])`.
///
/// Only meaningful inside a `#[durable]` function; anywhere else it is a compile error.
///
/// `workflow` is a `#[durable]` function registered with the engine and `input` its input (one
/// value, or a tuple for several parameters). The child is an execution of its own with the id
/// `<parent id>/<name>` (`/<key>` appended with `key = ..`, which a `call!` inside a loop needs),
/// created in the same transaction as the parent's checkpoint. The parent leaves memory until
/// the child ends. Evaluates to `Result<T, ChildError<E>>` for a child returning
/// `Result<T, E>`; see [`ChildError`].
#[cfg(feature = "macros")]
#[macro_export]
macro_rules! call {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`call!` can only be used inside a `#[durable]` async fn: add `#[durable]` to the function"
        )
    };
}

/// Runs a step body for each item of a collection, concurrently:
/// `map!(name, items, |item| body [, max_concurrency = n] [, completion = Completion])`.
///
/// Only meaningful inside a `#[durable]` function; anywhere else it is a compile error.
///
/// `items` is any `IntoIterator` of serializable values (stored with the point while the
/// branches run); `body` is an async expression of type `Result<T, E>` (`E` into
/// [`StepError`]) that may use `item` and the workflow's locals. Each branch's outcome is
/// committed as it finishes, so after a crash only unfinished branches run again. Evaluates to
/// `Result<Batch<T>, BatchError>`; see [`Batch`], [`Completion`] and [`BatchOptions`].
#[cfg(feature = "macros")]
#[macro_export]
macro_rules! map {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`map!` can only be used inside a `#[durable]` async fn: add `#[durable]` to the function"
        )
    };
}

/// Runs a fixed list of step bodies concurrently:
/// `parallel!(name, [body, body, ..] [, max_concurrency = n] [, completion = Completion])`.
///
/// Only meaningful inside a `#[durable]` function; anywhere else it is a compile error.
///
/// Every body is an async expression of the same type `Result<T, E>` (an enum, or
/// `serde_json::Value`, joins different results); otherwise as [`map!`], branch `i` being the
/// `i`-th body.
#[cfg(feature = "macros")]
#[macro_export]
macro_rules! parallel {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`parallel!` can only be used inside a `#[durable]` async fn: add `#[durable]` to the function"
        )
    };
}

/// Starts a child workflow without waiting for it: `start!(name, workflow, input [, key = k])`.
///
/// Only meaningful inside a `#[durable]` function; anywhere else it is a compile error.
///
/// Evaluates to a [`Child`] handle, a storable value: wait for the child's result later with
/// `wait!(name, child = handle)`, which evaluates as [`call!`] does. The child is created in
/// the same transaction as the checkpoint after this point.
#[cfg(feature = "macros")]
#[macro_export]
macro_rules! start {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`start!` can only be used inside a `#[durable]` async fn: add `#[durable]` to the function"
        )
    };
}

/// Waits durably: `wait!(name, duration)` for a timer, `wait!(name, event)` or
/// `wait!(name, event, timeout = duration)` for an event sent to the execution by name,
/// `wait!(name, child = handle)` for a child workflow started with [`start!`], and
/// `wait!(name, callback = |token| submit, [retry = ..,] [timeout = d,] [heartbeat = d])` for a
/// callback (see [`CallbackWait`]): `submit` is a step body that hands `token` to an external
/// system, which completes the wait with [`Engine::complete_callback`]. A callback wait
/// evaluates to `Result<T, CallbackError>`.
///
/// `wait!(name, until = |state| check, state = init, schedule = Retry::..)` waits for a
/// condition: `check` is an async expression of type `Result<Check<S, T>, E>` run once per
/// poll, durably `schedule`'s delays apart, at most `schedule`'s number of attempts; it
/// evaluates to `Result<T, PollError>`. See [`Check`].
///
/// Only meaningful inside a `#[durable]` function; anywhere else it is a compile error.
///
/// A timer evaluates to `()`. An event wait evaluates to the payload (its type is inferred from
/// how it is used); with a timeout, to `Result<T, Timeout>`.
#[cfg(feature = "macros")]
#[macro_export]
macro_rules! wait {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`wait!` can only be used inside a `#[durable]` async fn: add `#[durable]` to the function"
        )
    };
}

#[cfg(test)]
mod tests {
    /// The README is the manual of the crate docs, and every Rust example in it is compiled by
    /// `cargo test --doc` (rustdoc treats an untagged block as Rust, so it must compile too).
    #[test]
    fn readme_is_the_manual_and_its_examples_are_doctests() {
        let lib = include_str!("lib.rs");
        assert!(lib.contains("#[doc = include_str!(\"../../README.md\")]\npub mod manual {}"));
        let readme = include_str!("../../README.md");
        let mut open = false;
        let mut rust = 0;
        for (number, line) in readme.lines().enumerate() {
            let Some(info) = line.trim_start().strip_prefix("```") else { continue };
            open = !open;
            if !open {
                continue;
            }
            let tags: Vec<&str> = info.split(',').map(str::trim).collect();
            let is_rust = tags[0].is_empty() || tags[0] == "rust";
            assert!(
                !is_rust || !tags.contains(&"ignore"),
                "README.md:{}: a Rust example that never compiles",
                number + 1
            );
            rust += usize::from(is_rust);
        }
        assert!(!open, "README.md has an unclosed code block");
        assert!(rust >= 5, "README.md has only {rust} Rust examples");
    }
}
