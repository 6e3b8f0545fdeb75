//! Support for the code `#[durable]` generates. Not a public API: names and signatures change
//! without notice.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;

pub use serde;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Timeout;
use crate::host::{EventPoll, Gate, Host, Pause};
use crate::step::{StepError, StepPolicy};
use crate::time::Timestamp;
use crate::workflow::{Exit, PointFacts, Snapshot, StateError};

/// Where the generated loop goes next.
pub enum Next<S, L> {
    /// A transient label (loop head, join): never persisted.
    Label(L),
    /// A state loaded from the store.
    Resume(S),
    /// A state to persist before going on.
    Checkpoint(&'static PointFacts, S),
}

/// Where the generated loop is.
pub enum At<S, L> {
    /// At a persisted state.
    State(S),
    /// At a transient label.
    Label(L),
}

/// The bound on every value a workflow keeps across a suspension point.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be kept across a durable suspension point (`step!`/`wait!`)",
    label = "this value is stored in the workflow's state, so its type must implement `Serialize` and `DeserializeOwned`",
    note = "turn it into an owned, serializable value before the suspension point, or create it again after it"
)]
pub trait Persist: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Persist for T {}

/// Emitted with the span of the user's binding for every stored local, so that a type that
/// cannot be stored is reported at the `let` that made it.
#[inline(always)]
pub fn assert_persist<T: Persist>(_: &T) {}

/// The bound on a workflow's whole state: what [`checkpoint`] needs. When a stored local is
/// not storable, its own error at the user's `let` says what to do; this one, at `#[durable]`,
/// only points there (one error instead of one per serde trait).
#[diagnostic::on_unimplemented(
    message = "the workflow's state cannot be stored, because a value kept across a suspension point cannot",
    label = "see the error at that value's `let` (or parameter) above",
    note = "every value kept across a `step!`/`wait!` must implement `Serialize` and `DeserializeOwned`"
)]
pub trait State: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> State for T {}

/// The bound on workflow inputs, reported at the parameter's type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a durable workflow's input",
    label = "inputs are stored with the execution, so their type must implement `Serialize` and `DeserializeOwned`",
    note = "pass an owned, serializable value (for example `String` instead of `&str`); take the execution context as `ctx: &Ctx`"
)]
pub trait Input: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Input for T {}

/// Emitted with the span of each parameter's type.
#[inline(always)]
pub fn assert_input<T: Input>() {}

/// The function's result as a run's exit.
#[inline]
pub fn done<T, E>(result: Result<T, E>) -> Result<Exit<T>, E> {
    result.map(Exit::Done)
}

/// Moves the user's error into the exit.
#[inline]
pub fn finish<T, E>(result: Result<Exit<T>, E>) -> Exit<Result<T, E>> {
    match result {
        Ok(Exit::Done(value)) => Exit::Done(Ok(value)),
        Ok(Exit::Suspended) => Exit::Suspended,
        Ok(Exit::Interrupted) => Exit::Interrupted,
        Ok(Exit::BadState(error)) => Exit::BadState(error),
        Err(error) => Exit::Done(Err(error)),
    }
}

/// The exit for a pause.
#[inline]
pub fn pause<T>(pause: Pause) -> Exit<T> {
    match pause {
        Pause::Suspend => Exit::Suspended,
        Pause::Interrupt => Exit::Interrupted,
    }
}

/// Decodes a stored state, refusing one written by an incompatible layout. Loading through
/// `DeserializeOwned` makes a borrowed local a compile error instead of a failed resume.
pub fn load<S: DeserializeOwned>(
    snapshot: Snapshot<'_>,
    workflow: &'static str,
    fingerprint: &'static str,
) -> Result<S, StateError> {
    if snapshot.fingerprint != fingerprint {
        return Err(StateError::Incompatible {
            workflow,
            expected: fingerprint,
            found: snapshot.fingerprint.to_owned(),
        });
    }
    serde_json::from_str(snapshot.state).map_err(|source| StateError::Corrupt { workflow, source })
}

/// Encodes and persists the checkpoint after `point`, and returns the state decoded from what
/// was stored.
///
/// The run goes on from the decoded state, never from the values in memory: a value whose serde
/// form does not round-trip exactly (a `#[serde(skip)]` field, a lossy custom serializer) then
/// behaves the same whether or not the process crashed after this checkpoint, and one that
/// cannot be read back at all fails here, at its first checkpoint, not at a resume days later.
pub async fn checkpoint<S: State, T>(
    host: &mut dyn Host,
    workflow: &'static str,
    point: &'static PointFacts,
    state: S,
) -> Result<S, Exit<T>> {
    let json = serde_json::to_string(&state)
        .map_err(|source| Exit::BadState(StateError::Encode { workflow, point: point.name, source }))?;
    drop(state);
    let decoded = serde_json::from_str(&json)
        .map_err(|source| Exit::BadState(StateError::RoundTrip { workflow, point: point.name, source }))?;
    host.checkpoint(point, json).await.map_err(pause)?;
    Ok(decoded)
}

/// A step body's result with its error made storable.
#[inline]
pub fn step_output<T, E: Into<StepError>>(result: Result<T, E>) -> Result<T, StepError> {
    result.map_err(Into::into)
}

/// Asks the host whether a step's body may run: `Ok(None)` to run it, `Ok(Some(error))` when
/// the step has already failed for good.
pub async fn step_begin(
    host: &mut dyn Host,
    point: &'static PointFacts,
    policy: &StepPolicy,
) -> Result<Option<StepError>, Pause> {
    match host.step_begin(point, policy).await? {
        Gate::Run { .. } => Ok(None),
        Gate::Fail(error) => Ok(Some(error)),
    }
}

/// Reports a step's outcome; a failure is either retried later (a pause) or handed back.
pub async fn step_end<T>(
    host: &mut dyn Host,
    point: &'static PointFacts,
    policy: &StepPolicy,
    output: Result<T, StepError>,
) -> Result<Result<T, StepError>, Pause> {
    match output {
        Ok(value) => host.step_end(point, policy, Ok(())).await.map(|_| Ok(value)),
        Err(error) => match host.step_end(point, policy, Err(error)).await? {
            Err(error) => Ok(Err(error)),
            // A host that answers success for a failure has nothing better to give back.
            Ok(()) => Ok(Err(StepError::retryable("step failed").with_step(point.name, 0))),
        },
    }
}

/// Starts a durable timer.
#[inline]
pub fn sleep_start(host: &mut dyn Host, point: &'static PointFacts, duration: Duration) -> Timestamp {
    host.sleep_start(point, duration)
}

/// Whether a durable timer has fired.
#[inline]
pub fn sleep_due(host: &mut dyn Host, point: &'static PointFacts, wake_at: Timestamp) -> bool {
    host.sleep_due(point, wake_at)
}

/// Starts an event wait.
#[inline]
pub fn event_start(host: &mut dyn Host, point: &'static PointFacts, timeout: Option<Duration>) -> Option<Timestamp> {
    host.event_start(point, timeout)
}

/// What an event wait found, with the payload decoded: `None` means keep waiting (nothing
/// arrived, or what arrived was refused).
pub fn event_poll<T: DeserializeOwned>(
    host: &mut dyn Host,
    point: &'static PointFacts,
    deadline: Option<Timestamp>,
) -> Option<Result<T, Timeout>> {
    match host.event_poll(point, deadline) {
        EventPoll::Received(json) => match serde_json::from_str(&json) {
            Ok(value) => Some(Ok(value)),
            Err(error) => {
                host.event_rejected(point, error.to_string());
                None
            }
        },
        EventPoll::TimedOut => Some(Err(Timeout { event: point.name.to_owned() })),
        EventPoll::Pending => None,
    }
}

/// An event without a timeout cannot time out.
#[inline]
pub fn no_timeout<T>(result: Result<T, Timeout>) -> Option<T> {
    result.ok()
}

/// The items a `for` loop over points has left, stored so that a resumed loop goes on with the
/// rest.
#[inline]
pub fn remaining<I: IntoIterator>(iterable: I) -> VecDeque<I::Item> {
    iterable.into_iter().collect()
}

/// A `for` loop over `a..b` keeps the range itself: what is left is `start..end`, two numbers
/// whatever the length.
#[inline]
pub fn range<A>(range: Range<A>) -> Range<A>
where
    Range<A>: Iterator<Item = A>,
{
    range
}

/// What a stored `for` loop takes its next item from.
pub trait Remaining {
    /// The loop's items.
    type Item;
    /// The next item, removed from what is left.
    fn take_next(&mut self) -> Option<Self::Item>;
}

impl<T> Remaining for VecDeque<T> {
    type Item = T;
    #[inline]
    fn take_next(&mut self) -> Option<T> {
        self.pop_front()
    }
}

impl<A> Remaining for Range<A>
where
    Range<A>: Iterator<Item = A>,
{
    type Item = A;
    #[inline]
    fn take_next(&mut self) -> Option<A> {
        self.next()
    }
}

/// The retry policy of a step with none given.
#[inline]
pub fn default_policy() -> StepPolicy {
    StepPolicy::default()
}
