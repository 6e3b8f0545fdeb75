//! Support for the code `#[durable]` generates. Not a public API: names and signatures change
//! without notice.

use std::collections::VecDeque;
use std::ops::{Range, RangeFrom};
use std::time::Duration;

pub use serde;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::batch::{Batch, BatchError, BatchItems, BatchOptions, ChildBatch, Completed, Completion, Outcome};
use crate::callback::{CallbackError, CallbackFailure, CallbackPoll, CallbackWait};
use crate::child::{Child, ChildError};
use crate::error::Timeout;
use crate::host::{EventPoll, Gate, Host, Pause};
use crate::poll::{Check, PollError, PollState};
use crate::step::{StepError, StepPolicy};
use crate::time::Timestamp;
use crate::workflow::{Exit, PointFacts, Snapshot, StateError, Workflow};

/// The bound on every value a workflow keeps across a suspension point.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be kept across a durable suspension point (`step!`/`wait!`)",
    label = "this value is stored in the workflow's state, so its type must implement `Serialize` and `DeserializeOwned`",
    note = "turn it into an owned, serializable value before the suspension point, or create it again after it"
)]
pub trait Persist: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Persist for T {}

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

/// Starts a child workflow (`call!`/`start!`): the host creates it with the next checkpoint.
pub fn child_start<W: Workflow>(
    host: &mut dyn Host,
    point: &'static PointFacts,
    workflow: &W,
    input: W::Input,
    key: Option<String>,
) -> Result<Child<W>, StateError> {
    let name = workflow.facts().name;
    let input = serde_json::to_string(&input).map_err(|source| StateError::Encode {
        workflow: name,
        point: point.name,
        source,
    })?;
    let keys = business_keys(workflow.facts(), &input);
    Ok(Child::new(host.child_start(point, name, key, input, keys)))
}

/// Begins a `map!`/`parallel!`: the items are stored with the checkpoint that follows.
pub fn batch_start<I, C: IntoIterator<Item = I>>(
    host: &mut dyn Host,
    point: &'static PointFacts,
    items: C,
    options: BatchOptions,
) -> BatchItems<I> {
    let items: Vec<I> = items.into_iter().collect();
    let limit = options.concurrency_limit().map_or(String::new(), |n| format!(", at most {n} at a time"));
    host.batch_start(point, items.len(), format!("{} branches{limit}", items.len()));
    BatchItems { items, options }
}

/// Runs the branches of a batch that have no committed outcome yet, committing each outcome as
/// it comes, until the batch's completion policy decides; see [`crate::Batch`].
pub async fn batch_run<'b, I, T, E, F>(
    host: &mut dyn Host,
    point: &'static PointFacts,
    batch: BatchItems<I>,
    body: F,
) -> Result<Result<Batch<T>, BatchError>, Pause>
where
    T: Serialize + DeserializeOwned,
    E: Into<StepError>,
    F: Fn(I) -> Branch<'b, Result<T, E>>,
{
    use futures_util::FutureExt;
    use futures_util::stream::{FuturesUnordered, StreamExt};

    let BatchItems { items, options } = batch;
    if let Err(error) = options.check() {
        return Ok(Err(error));
    }
    let total = items.len();
    let mut outcomes: Vec<Option<Outcome<T>>> = (0..total).map(|_| None).collect();
    for (index, json) in host.branch_results(point) {
        if let Some(slot) = outcomes.get_mut(index) {
            *slot = Some(serde_json::from_str(&json).unwrap_or_else(|error| {
                Outcome::Failed(StepError::terminal(format!("the stored outcome does not read back: {error}")))
            }));
        }
    }
    let mut pending: VecDeque<(usize, I)> =
        items.into_iter().enumerate().filter(|(index, _)| outcomes[*index].is_none()).collect();
    let limit = options.concurrency_limit().unwrap_or(usize::MAX);
    let mut running = FuturesUnordered::new();
    let mut decided = crate::batch::decide(&options, &outcomes);
    while decided.is_none() {
        while running.len() < limit
            && let Some((index, item)) = pending.pop_front()
        {
            let branch = body(item);
            running.push(async move { (index, branch.await) });
        }
        let Some(first) = running.next().await else { break };
        // The branches that ended together share one commit.
        let mut finished = vec![first];
        while let Some(Some(next)) = running.next().now_or_never() {
            finished.push(next);
        }
        let mut ended = Vec::with_capacity(finished.len());
        for (index, result) in finished {
            let outcome = match result {
                Ok(value) => Outcome::Succeeded(value),
                Err(error) => Outcome::Failed(error.into()),
            };
            // What is kept is what is stored: a value that cannot be stored fails its branch.
            let (json, outcome) = match serde_json::to_string(&outcome) {
                Ok(json) => (json, outcome),
                Err(error) => {
                    let failed =
                        Outcome::<T>::Failed(StepError::terminal(format!("its value cannot be stored: {error}")));
                    (serde_json::to_string(&failed).unwrap_or_default(), failed)
                }
            };
            ended.push((index, json, branch_words(index, &outcome)));
            outcomes[index] = Some(outcome);
        }
        host.branches_end(point, ended).await?;
        decided = crate::batch::decide(&options, &outcomes);
    }
    // Whatever still runs is cancelled here, at its next `.await`.
    drop(running);
    host.batch_end(point).await?;
    let outcomes = decided_outcomes(outcomes, pending.iter().map(|(index, _)| *index));
    Ok(Ok(Batch::new(outcomes, decided.unwrap_or(Completed::AllCompleted))))
}

/// The outcomes of a decided batch: a branch without one did not start if it is in `unstarted`,
/// else it was still running and the batch no longer waits for it.
fn decided_outcomes<T>(
    outcomes: Vec<Option<Outcome<T>>>,
    unstarted: impl IntoIterator<Item = usize>,
) -> Vec<Outcome<T>> {
    let unstarted: std::collections::HashSet<usize> = unstarted.into_iter().collect();
    let decided = outcomes.into_iter().enumerate().map(|(index, outcome)| match outcome {
        Some(outcome) => outcome,
        None if unstarted.contains(&index) => Outcome::NotStarted,
        None => Outcome::Cancelled,
    });
    decided.collect()
}

/// The future of one branch of a batch, boxed so that it is `Send` for any borrow it holds.
pub type Branch<'b, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'b>>;

/// Boxes a branch's future.
#[inline]
pub fn branch<'b, T, F: std::future::Future<Output = T> + Send + 'b>(future: F) -> Branch<'b, T> {
    Box::pin(future)
}

/// A batch's branch function, typed by the batch's items.
#[inline]
pub fn branch_for<'b, I, R, F: Fn(I) -> Branch<'b, R>>(_items: &BatchItems<I>, branch: F) -> F {
    branch
}

/// How the history tells a branch's outcome.
fn branch_words<T>(index: usize, outcome: &Outcome<T>) -> String {
    match outcome {
        Outcome::Succeeded(_) => format!("{index} succeeded"),
        Outcome::Failed(error) => format!("{index} failed: {}", error.message()),
        Outcome::NotStarted => format!("{index} did not start"),
        Outcome::Cancelled => format!("{index} was cancelled"),
    }
}

/// Begins a `map!` whose branches are child workflows of `workflow`.
pub fn child_batch_start<W: Workflow, C: IntoIterator<Item = W::Input>>(
    host: &mut dyn Host,
    point: &'static PointFacts,
    _workflow: &W,
    items: C,
    options: BatchOptions,
) -> ChildBatch<W::Input, W::Output> {
    let pending: VecDeque<(usize, W::Input)> = items.into_iter().enumerate().collect();
    let limit = options.concurrency_limit().map_or(String::new(), |n| format!(", at most {n} at a time"));
    host.batch_start(point, pending.len(), format!("{} child workflows{limit}", pending.len()));
    let outcomes = (0..pending.len()).map(|_| None).collect();
    ChildBatch { pending, running: Vec::new(), outcomes, options }
}

/// What follows a wake-up of a `map!` of child workflows.
pub enum ChildBatchNext<I, T> {
    /// Children ended or started: store the new state, then look again.
    Changed(ChildBatch<I, T>),
    /// Nothing new: wait for a child to end.
    Wait,
    /// The batch is decided.
    Done(Result<Batch<T>, BatchError>),
}

/// Takes the ends of the batch's children, decides, and starts the next children.
pub fn child_batch_step<W: Workflow>(
    host: &mut dyn Host,
    point: &'static PointFacts,
    workflow: &W,
    mut batch: ChildBatch<W::Input, W::Output>,
) -> ChildBatchNext<W::Input, W::Output> {
    if let Err(error) = batch.options.check() {
        return ChildBatchNext::Done(Err(error));
    }
    let mut changed = false;
    for (child, payload) in host.batch_children_ended(point) {
        let Some(index) = child.rsplit('/').next().and_then(|index| index.parse::<usize>().ok()) else { continue };
        let Some(at) = batch.running.iter().position(|&running| running == index) else { continue };
        batch.running.swap_remove(at);
        let outcome = match crate::child::decode_end::<W>(&child, &payload) {
            Ok(value) => Outcome::Succeeded(value),
            Err(error) => Outcome::Failed(StepError::terminal(error)),
        };
        host.batch_note(point, branch_words(index, &outcome));
        batch.outcomes[index] = Some(outcome);
        changed = true;
    }
    if let Some(completed) = crate::batch::decide(&batch.options, &batch.outcomes) {
        let outcomes = decided_outcomes(batch.outcomes, batch.pending.iter().map(|(index, _)| *index));
        return ChildBatchNext::Done(Ok(Batch::new(outcomes, completed)));
    }
    let limit = batch.options.concurrency_limit().unwrap_or(usize::MAX);
    while batch.running.len() < limit
        && let Some((index, input)) = batch.pending.pop_front()
    {
        let input = match serde_json::to_string(&input) {
            Ok(input) => input,
            Err(error) => {
                let failed = Outcome::Failed(StepError::terminal(format!("its input cannot be stored: {error}")));
                host.batch_note(point, branch_words(index, &failed));
                batch.outcomes[index] = Some(failed);
                changed = true;
                continue;
            }
        };
        let keys = business_keys(workflow.facts(), &input);
        host.batch_child_start(point, workflow.facts().name, index, input, keys);
        batch.running.push(index);
        changed = true;
    }
    if changed {
        return ChildBatchNext::Changed(batch);
    }
    host.batch_wait(point);
    ChildBatchNext::Wait
}

/// The options of a `map!`/`parallel!`.
#[inline]
pub fn batch_options(max_concurrency: Option<usize>, completion: Option<Completion>) -> BatchOptions {
    let options = BatchOptions::new().completion(completion.unwrap_or_default());
    match max_concurrency {
        Some(n) => options.max_concurrency(n),
        None => options,
    }
}

/// Begins a wait for a condition, before its first poll.
#[inline]
pub fn poll_start<S>(state: S) -> PollState<S> {
    PollState { state, polls: 0, next_at: None }
}

/// Whether the next poll may run now (else the run suspends until it is due).
#[inline]
pub fn poll_due<S>(host: &mut dyn Host, point: &'static PointFacts, poll: &PollState<S>) -> bool {
    poll.next_at.is_none_or(|at| host.poll_due(point, at))
}

/// What follows a poll: the wait's value, or the state to poll again from.
pub enum PollNext<S, T> {
    /// The wait is over.
    Done(Result<T, PollError>),
    /// Poll again, from this state, when it is due.
    Again(PollState<S>),
}

/// Decides what follows poll number `polls + 1`, which found `checked`.
pub fn poll_after<S, T, E: Into<StepError>>(
    host: &mut dyn Host,
    point: &'static PointFacts,
    polls: u32,
    checked: Result<Check<S, T>, E>,
    schedule: &crate::Retry,
) -> PollNext<S, T> {
    let polls = polls + 1;
    match checked {
        Ok(Check::Done(value)) => PollNext::Done(Ok(value)),
        Err(error) => {
            let error = error.into();
            PollNext::Done(Err(PollError::Failed { point: point.name.to_owned(), attempt: polls, error }))
        }
        Ok(Check::NotYet(state)) => match schedule.delay_after(polls, rand::random::<f64>()) {
            Some(delay) => {
                let next_at = Some(host.poll_scheduled(point, polls, delay));
                PollNext::Again(PollState { state, polls, next_at })
            }
            None => PollNext::Done(Err(PollError::Exhausted { point: point.name.to_owned(), attempts: polls })),
        },
    }
}

/// Begins a callback wait: mints the token.
#[inline]
pub fn callback_start(
    host: &mut dyn Host,
    point: &'static PointFacts,
    timeout: Option<Duration>,
    heartbeat: Option<Duration>,
) -> CallbackWait {
    host.callback_start(point, timeout, heartbeat)
}

/// The token a callback's submitter hands out.
#[inline]
pub fn callback_token(wait: &CallbackWait) -> String {
    wait.token.clone()
}

/// Records how the submitter ended: a failure for good ends the wait with that error.
#[inline]
pub fn callback_submitted<T>(mut wait: CallbackWait, submitted: Result<T, StepError>) -> CallbackWait {
    if let Err(error) = submitted {
        wait.submit_failed = Some(error);
    }
    wait
}

/// What a callback wait found, with the payload decoded: `None` means keep waiting.
pub fn callback_poll<T: DeserializeOwned>(
    host: &mut dyn Host,
    point: &'static PointFacts,
    wait: &CallbackWait,
) -> Option<Result<T, CallbackError>> {
    let callback = point.name.to_owned();
    if let Some(error) = &wait.submit_failed {
        return Some(Err(CallbackError::SubmitFailed { callback, error: error.clone() }));
    }
    match host.callback_poll(point, wait) {
        CallbackPoll::Received(json) => match serde_json::from_str::<Result<T, CallbackFailure>>(&json) {
            Ok(Ok(value)) => Some(Ok(value)),
            Ok(Err(failure)) => Some(Err(CallbackError::Failed { callback, failure })),
            Err(error) => {
                host.event_rejected(point, error.to_string());
                None
            }
        },
        CallbackPoll::TimedOut => Some(Err(CallbackError::TimedOut { callback })),
        CallbackPoll::HeartbeatTimedOut => {
            Some(Err(CallbackError::HeartbeatTimedOut { callback, heartbeat: wait.heartbeat.unwrap_or_default() }))
        }
        CallbackPoll::Pending => None,
    }
}

/// The business keys of an execution of the workflow of `facts` with `input` (JSON).
fn business_keys(facts: &crate::WorkflowFacts, input: &str) -> Vec<(String, String)> {
    facts.key_values(input).into_iter().map(|(name, value)| (name.to_owned(), value)).collect()
}

/// Begins a `wait!(name, child = handle)`.
#[inline]
pub fn child_wait<W: Workflow>(host: &mut dyn Host, point: &'static PointFacts, handle: Child<W>) -> Child<W> {
    host.child_wait(point, handle.id());
    handle
}

/// What a wait for a child found: `None` means keep waiting.
pub fn child_poll<W: Workflow>(
    host: &mut dyn Host,
    point: &'static PointFacts,
    child: &Child<W>,
) -> Option<Result<W::Output, ChildError<W::Error>>> {
    match host.child_poll(point, child.id()) {
        EventPoll::Received(payload) => Some(crate::child::decode_end::<W>(child.id(), &payload)),
        EventPoll::TimedOut | EventPoll::Pending => None,
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

/// A `for` loop over `a..` keeps the range itself: what is left is `start..`, one number, and
/// nothing is taken before the loop's body asks for it.
#[inline]
pub fn range_from<A>(range: RangeFrom<A>) -> RangeFrom<A>
where
    RangeFrom<A>: Iterator<Item = A>,
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

impl<A> Remaining for RangeFrom<A>
where
    RangeFrom<A>: Iterator<Item = A>,
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

// ------------------------------------------------------------------ the slot machine
//
// Generated code keeps every stored local in its own slot (`Option<T>`, `T` inferred by rustc)
// and runs each stretch of code between two labels as its own boxed future (an "arm"), so that
// neither rustc's work on the function nor the size of its future grows with the product of the
// number of points and the number of locals.

/// What an arm does next.
pub enum Flow<T> {
    /// Go on at the label with this number.
    Goto(u32),
    /// Leave the run.
    Exit(Exit<T>),
}

/// An arm of the generated machine, boxed: one poll frame per arm, not one for the function.
pub type Arm<'a, T, E> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Flow<T>, E>> + Send + 'a>>;

/// Boxes an arm; its bound tells rustc the type of the `async` block's result.
#[inline]
pub fn arm<'a, T, E, F>(arm: F) -> Arm<'a, T, E>
where
    F: std::future::Future<Output = Result<Flow<T>, E>> + Send + 'a,
{
    Box::pin(arm)
}

/// Go on at `label`.
#[inline]
pub fn goto<T, E>(label: u32) -> Result<Flow<T>, E> {
    Ok(Flow::Goto(label))
}

/// Leave the run with `exit`.
#[inline]
pub fn exit<T, E>(exit: Exit<T>) -> Result<Flow<T>, E> {
    Ok(Flow::Exit(exit))
}

/// The function's result as an arm's result.
#[inline]
pub fn finished<T, E>(result: Result<T, E>) -> Result<Flow<T>, E> {
    result.map(|value| Flow::Exit(Exit::Done(value)))
}

/// Takes a local out of its slot at the start of an arm.
#[inline]
pub fn take<T>(slot: &mut Option<T>) -> T {
    slot.take().expect("durable: a stored local is missing from its slot (a bug in #[durable])")
}

/// Writes a state as `{"<key>":{"<field>":<value>,..}}`, the form the derived `Serialize` of an
/// enum with struct variants writes, one field per call (so that generated code borrows one
/// local at a time).
pub struct Encoder {
    out: Vec<u8>,
    fields: usize,
    error: Option<serde_json::Error>,
}

impl Encoder {
    /// A state stored under `key`.
    pub fn new(key: &str) -> Self {
        let mut out = Vec::with_capacity(64);
        out.push(b'{');
        let error = serde_json::to_writer(&mut out, key).err();
        out.extend_from_slice(b":{");
        Encoder { out, fields: 0, error }
    }

    /// The JSON, or the first error.
    pub fn finish(mut self) -> Result<String, serde_json::Error> {
        if let Some(error) = self.error {
            return Err(error);
        }
        self.out.extend_from_slice(b"}}");
        Ok(String::from_utf8(self.out).expect("serde_json writes UTF-8"))
    }
}

/// Appends the local in `slot` as field `name`. Emitted with the span of the user's binding, so
/// that a type that cannot be stored is reported at the `let` that made it.
pub fn field<T: Persist>(encoder: &mut Encoder, name: &str, slot: &Option<T>) {
    if encoder.error.is_some() {
        return;
    }
    if encoder.fields > 0 {
        encoder.out.push(b',');
    }
    encoder.fields += 1;
    let written = serde_json::to_writer(&mut encoder.out, name).and_then(|()| {
        encoder.out.push(b':');
        match slot {
            Some(value) => serde_json::to_writer(&mut encoder.out, value),
            None => Err(serde::ser::Error::custom("a stored local is missing from its slot")),
        }
    });
    encoder.error = written.err();
}

/// Persists the state after `point`, encoded by an [`Encoder`] before any await (so that no
/// reference to a local is held across one).
pub async fn checkpoint_fields<T>(
    host: &mut dyn Host,
    workflow: &'static str,
    point: &'static PointFacts,
    encoded: Result<String, serde_json::Error>,
) -> Result<(), Exit<T>> {
    let json = encoded.map_err(|source| Exit::BadState(StateError::Encode { workflow, point: point.name, source }))?;
    host.checkpoint(point, json).await.map_err(pause)
}

/// A stored state being loaded: its key (which point) and its fields, decoded one by one into
/// the slots of the locals they belong to.
pub struct Loaded {
    workflow: &'static str,
    key: String,
    fields: serde_json::Map<String, serde_json::Value>,
    error: Option<serde_json::Error>,
}

impl Loaded {
    /// The stored state's key: the point it was written after.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// After [`reload`]: `Ok` if every field read back, else the error of a state that does not
    /// read back (nothing is stored then).
    pub fn read_back(self, workflow: &'static str, point: &'static PointFacts) -> Result<(), StateError> {
        match self.error {
            None => Ok(()),
            Some(source) => Err(StateError::RoundTrip { workflow, point: point.name, source }),
        }
    }

    /// `Ok` if every field decoded and `known` (the key names a state of this layout).
    pub fn finish(self, known: bool) -> Result<(), StateError> {
        let workflow = self.workflow;
        let error = match self.error {
            Some(error) => error,
            None if known => return Ok(()),
            None => serde::de::Error::custom(format_args!("unknown state `{}`", self.key)),
        };
        Err(StateError::Corrupt { workflow, source: error })
    }
}

/// The key of the state being loaded, if any.
pub fn loaded_key(loaded: &Option<Loaded>) -> &str {
    loaded.as_ref().map_or("", Loaded::key)
}

/// The error for a stored state whose key names no state of this layout.
pub fn unknown_key(loaded: Option<Loaded>) -> StateError {
    match loaded {
        Some(loaded) => loaded.finish(false).expect_err("an unknown key is an error"),
        None => unreachable!("durable: no state to resume from (a bug in #[durable])"),
    }
}

/// The state an [`Encoder`] just wrote, parsed again so that the run goes on from it (decoded
/// by [`restore`] into the slots) rather than from the values in memory: a value whose serde
/// form does not round-trip (a `#[serde(skip)]` field, a lossy custom serializer) then behaves
/// the same with and without a crash after this checkpoint, and one that does not read back at
/// all is refused here, before anything is stored. `None` if encoding failed (the checkpoint
/// reports that).
pub fn reload(encoded: &Result<String, serde_json::Error>) -> Option<Loaded> {
    let json = encoded.as_ref().ok()?;
    let snapshot = Snapshot { fingerprint: "", state: json };
    load_fields(snapshot, "", "").ok()
}

/// Parses a stored state, refusing one written by an incompatible layout.
pub fn load_fields(
    snapshot: Snapshot<'_>,
    workflow: &'static str,
    fingerprint: &'static str,
) -> Result<Loaded, StateError> {
    if snapshot.fingerprint != fingerprint {
        return Err(StateError::Incompatible {
            workflow,
            expected: fingerprint,
            found: snapshot.fingerprint.to_owned(),
        });
    }
    let corrupt = |source| StateError::Corrupt { workflow, source };
    let state: serde_json::Map<String, serde_json::Value> = serde_json::from_str(snapshot.state).map_err(corrupt)?;
    let mut entries = state.into_iter();
    let (key, fields) = match (entries.next(), entries.next()) {
        (Some((key, serde_json::Value::Object(fields))), None) => (key, fields),
        _ => return Err(corrupt(serde::de::Error::custom("a stored state is an object with one key, its point"))),
    };
    Ok(Loaded { workflow, key, fields, error: None })
}

/// Decodes field `name` into `slot`. Loading through `DeserializeOwned` makes a borrowed local a
/// compile error instead of a failed resume; emitted with the span of the user's binding.
pub fn restore<T: Persist>(loaded: &mut Loaded, name: &'static str, slot: &mut Option<T>) {
    if loaded.error.is_some() {
        return;
    }
    match loaded.fields.remove(name) {
        Some(value) => match serde_json::from_value(value) {
            Ok(value) => *slot = Some(value),
            Err(error) => loaded.error = Some(error),
        },
        None => loaded.error = Some(serde::de::Error::missing_field(name)),
    }
}
