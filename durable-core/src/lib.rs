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

#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

mod error;
mod facts;
mod host;
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
pub mod testing;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use crate::engine::{Delivery, Engine, EngineError, ExecutionStatus, Handle, Worker};
pub use crate::error::{Timeout, WorkflowError};
pub use crate::facts::{FactsRecord, PointRecord};
pub use crate::host::{BoxFuture, Ctx, EventPoll, Gate, Host, Pause};
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

/// Turns an `async fn` into a durable workflow. See the [crate docs](crate).
#[cfg(feature = "macros")]
pub use durable_macros::durable;

/// Everything a workflow file needs: `use durable_core::prelude::*;`.
pub mod prelude {
    pub use crate::{Ctx, Retry, Semantics, StepError, Timeout, Workflow, WorkflowError};
    #[cfg(feature = "macros")]
    pub use crate::{durable, step, wait};
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

/// Waits durably: `wait!(name, duration)` for a timer, `wait!(name, event)` or
/// `wait!(name, event, timeout = duration)` for an event sent to the execution by name.
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
