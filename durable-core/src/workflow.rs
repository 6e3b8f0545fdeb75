//! The contract between a `#[durable]` function and the runtime that drives it.

use std::fmt;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::host::{Ctx, Host};

/// A workflow: what `#[durable]` implements for the unit struct it makes of an `async fn`.
///
/// You do not implement this trait by hand. `#[durable] async fn order(id: String) ->
/// Result<Receipt, OrderError>` becomes `struct order;` with `impl Workflow for order`, which the
/// engine registers and starts:
///
/// ```
/// use durable_core::prelude::*;
///
/// #[durable]
/// async fn greet(name: String) -> Result<String, StepError> {
///     let greeting = step!("compose", compose(&name).await)?;
///     Ok(greeting)
/// }
///
/// async fn compose(name: &str) -> Result<String, std::io::Error> {
///     Ok(format!("hello, {name}"))
/// }
///
/// assert_eq!(greet.facts().name, "greet");
/// assert_eq!(greet.facts().points[0].name, "compose");
/// ```
pub trait Workflow: Send + Sync + 'static {
    /// The function's parameters: one type, a tuple of several, or `()`.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The `T` of the function's `Result<T, E>`.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The `E` of the function's `Result<T, E>`.
    type Error: Serialize + DeserializeOwned + fmt::Display + Send + 'static;

    /// What the macro knows about the function: its name, its points and their layout.
    fn facts(&self) -> &'static WorkflowFacts;

    /// Runs the execution from `entry` until it completes, suspends or is interrupted by its host.
    ///
    /// Every checkpoint goes through `host`; nothing else is kept between calls, so a fresh
    /// process resumes with the stored state alone.
    fn run<'a>(
        &'a self,
        ctx: &'a Ctx,
        host: &'a mut dyn Host,
        entry: Entry<'a, Self::Input>,
    ) -> impl Future<Output = Exit<Result<Self::Output, Self::Error>>> + Send + 'a;
}

/// Where a run begins.
#[derive(Debug)]
pub enum Entry<'a, I> {
    /// A new execution with its input.
    Start(I),
    /// An execution resumed from its last checkpoint.
    Resume(Snapshot<'a>),
}

/// A stored checkpoint, as handed back to the workflow on resume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot<'a> {
    /// The layout fingerprint of the workflow that wrote the state.
    pub fingerprint: &'a str,
    /// The state, as JSON.
    pub state: &'a str,
}

/// How a run ended.
#[derive(Debug)]
pub enum Exit<T> {
    /// The function returned.
    Done(T),
    /// The execution waits (for a timer, an event or a retry delay) and has left memory; its host
    /// knows until when.
    Suspended,
    /// The host asked the run to stop (a lost lease, a store error, an injected crash).
    Interrupted,
    /// The stored state cannot be resumed by this build of the workflow.
    BadState(StateError),
}

/// A stored state that cannot be resumed, or a state that cannot be stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state was written by a build of the workflow whose persisted layout differs.
    #[error(
        "the stored state of workflow `{workflow}` was written by an incompatible version \
         (layout {found}, this build has {expected}); it was left untouched: finish or cancel \
         it with the build that started it"
    )]
    Incompatible {
        /// The workflow's name.
        workflow: &'static str,
        /// This build's layout fingerprint.
        expected: &'static str,
        /// The stored state's fingerprint.
        found: String,
    },
    /// The stored state is not valid JSON for this workflow's layout.
    #[error("the stored state of workflow `{workflow}` is corrupt and was left untouched: {source}")]
    Corrupt {
        /// The workflow's name.
        workflow: &'static str,
        /// What the decoder said.
        source: serde_json::Error,
    },
    /// The state encoded at a point does not decode again (a `Serialize` and a `Deserialize`
    /// that disagree). Nothing was stored: the execution stays at its previous checkpoint.
    #[error(
        "workflow `{workflow}` stored a state at `{point}` that does not read back ({source}); nothing was \
         stored: make the types of its locals decode what they encode"
    )]
    RoundTrip {
        /// The workflow's name.
        workflow: &'static str,
        /// The point whose state does not read back.
        point: &'static str,
        /// What the decoder said.
        source: serde_json::Error,
    },
    /// A local could not be encoded (for example a map whose keys are not strings).
    #[error("workflow `{workflow}` could not store its state at `{point}`: {source}")]
    Encode {
        /// The workflow's name.
        workflow: &'static str,
        /// The point whose state failed to encode.
        point: &'static str,
        /// What the encoder said.
        source: serde_json::Error,
    },
}

/// What the macro knows about a workflow, fixed at compile time.
#[derive(Debug)]
pub struct WorkflowFacts {
    /// The function's name.
    pub name: &'static str,
    /// The source file of the function.
    pub file: &'static str,
    /// The line of the function's `async fn`.
    pub line: u32,
    /// The names of the function's inputs.
    pub params: &'static [&'static str],
    /// The inputs marked `#[durable(key = ..)]`: they name an execution in business terms, in
    /// logs and on the command line.
    pub keys: &'static [&'static str],
    /// Every suspension point, in source order.
    pub points: &'static [PointFacts],
    /// Which point can follow which: the workflow's diagram.
    pub edges: &'static [Edge],
    /// A fingerprint of the persisted layout: point names and the names of the locals each one
    /// stores. A stored state is only resumed by a build with the same fingerprint.
    pub fingerprint: &'static str,
}

impl WorkflowFacts {
    /// The business keys of an execution, read from its input JSON: `(name, value)` pairs.
    /// Strings are shown without quotes; a key missing from the input is left out.
    pub fn key_values(&self, input: &str) -> Vec<(&'static str, String)> {
        let Ok(input) = serde_json::from_str::<serde_json::Value>(input) else { return Vec::new() };
        self.keys
            .iter()
            .filter_map(|&key| {
                let index = self.params.iter().position(|&param| param == key)?;
                let value = if self.params.len() == 1 { &input } else { input.get(index)? };
                let text = match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                Some((key, text))
            })
            .collect()
    }

    /// The point called `name`, if there is one.
    pub fn point(&self, name: &str) -> Option<&'static PointFacts> {
        self.points.iter().find(|point| point.name == name)
    }
}

/// A `step!` or `wait!` in a workflow's source.
#[derive(Debug, PartialEq, Eq)]
pub struct PointFacts {
    /// The point's index in [`WorkflowFacts::points`].
    pub index: usize,
    /// The name given in the macro call.
    pub name: &'static str,
    /// What the point does.
    pub kind: PointKind,
    /// The source file.
    pub file: &'static str,
    /// The line of the `step!`/`wait!` call.
    pub line: u32,
    /// The column of the `step!`/`wait!` call.
    pub column: u32,
    /// The locals stored in the checkpoint written after this point.
    pub stored: &'static [&'static str],
}

impl PointFacts {
    /// `file:line`, as editors understand it.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// What a suspension point does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum PointKind {
    /// `step!`: runs a body and checkpoints its result.
    Step,
    /// `wait!(name, duration)`: a durable timer.
    Sleep,
    /// `wait!(name, event)`: waits for an event delivered to the execution.
    Event,
    /// `call!` or `wait!(name, child = ..)`: waits for a child workflow to end.
    Child,
    /// `start!`: starts a child workflow without waiting for it.
    Spawn,
    /// `wait!(name, callback = ..)`: hands a token out and waits for it to come back.
    Callback,
    /// `map!`/`parallel!`: runs branches concurrently, each outcome committed on its own.
    Map,
    /// `wait!(name, until = ..)`: polls a condition, durably apart, until it holds.
    Poll,
}

impl fmt::Display for PointKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PointKind::Step => "step",
            PointKind::Sleep => "timer",
            PointKind::Event => "event",
            PointKind::Child => "child workflow",
            PointKind::Spawn => "child start",
            PointKind::Callback => "callback",
            PointKind::Map => "map",
            PointKind::Poll => "poll",
        })
    }
}

/// One end of an [`Edge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub enum Node {
    /// The start of the function.
    Start,
    /// The point with this index.
    Point(usize),
    /// A return from the function.
    End,
}

/// Control can pass from `from` to `to` without passing another point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct Edge {
    /// Where control comes from.
    pub from: Node,
    /// Where it can go next.
    pub to: Node,
}
