//! Shared by the end-to-end tests: side-effect counting and the crash-after-every-checkpoint
//! driver.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;

use durable_core::testing::{Outcome, Stored, TestRun};
use durable_core::{Clock, Workflow};

thread_local! {
    static EFFECTS: RefCell<BTreeMap<String, u32>> = const { RefCell::new(BTreeMap::new()) };
}

/// Records that a step body ran (once per call) and returns `value`.
pub async fn effect<T>(what: impl Into<String>, value: T) -> Result<T, std::io::Error> {
    tokio::task::yield_now().await;
    EFFECTS.with(|effects| *effects.borrow_mut().entry(what.into()).or_default() += 1);
    Ok(value)
}

/// The side effects recorded on this thread so far, and clears them.
pub fn take_effects() -> BTreeMap<String, u32> {
    EFFECTS.with(|effects| std::mem::take(&mut *effects.borrow_mut()))
}

/// The fields each point's checkpoint must store: `(point, fields)`.
pub type Layout<'a> = &'a [(&'a str, &'a [&'a str])];

/// What one checkpoint stored: the state's key and the names of its fields.
pub fn layout(state: &str) -> (String, Vec<String>) {
    let value: serde_json::Value = serde_json::from_str(state).expect("a stored state is JSON");
    let object = value.as_object().expect("a state is an object");
    assert_eq!(object.len(), 1, "a state has one key, the point: {state}");
    let (key, fields) = object.iter().next().expect("one key");
    let mut names: Vec<String> = fields.as_object().expect("fields").keys().cloned().collect();
    names.sort();
    (key.clone(), names)
}

/// Runs `workflow` uninterrupted, then once per checkpoint crashing right after it and resuming
/// a fresh instance from the stored record alone. Checks that every run gives the same result,
/// that the step bodies ran exactly as often in total as without a crash, and that each
/// checkpoint stored exactly the fields `expected` names for its point (hidden fields, starting
/// with `__`, included).
pub async fn crash_everywhere<W>(
    workflow: W,
    input: W::Input,
    expected: &[(&str, &[&str])],
) -> Result<W::Output, W::Error>
where
    W: Workflow + Copy,
    W::Input: Clone,
    W::Output: PartialEq + Debug + Clone,
    W::Error: PartialEq + Debug + Clone,
{
    crash_everywhere_with_events(workflow, input, &[], expected).await
}

/// [`crash_everywhere`], with `events` (name, JSON payload) delivered before the execution
/// starts: each is kept until the workflow reaches the matching `wait!`.
pub async fn crash_everywhere_with_events<W>(
    workflow: W,
    input: W::Input,
    events: &[(&str, &str)],
    expected: &[(&str, &[&str])],
) -> Result<W::Output, W::Error>
where
    W: Workflow + Copy,
    W::Input: Clone,
    W::Output: PartialEq + Debug + Clone,
    W::Error: PartialEq + Debug + Clone,
{
    crash_and_compare(workflow, input, events, Some(expected)).await
}

/// [`crash_everywhere`] without checking what each checkpoint stores.
pub async fn crash_everywhere_any_layout<W>(workflow: W, input: W::Input) -> Result<W::Output, W::Error>
where
    W: Workflow + Copy,
    W::Input: Clone,
    W::Output: PartialEq + Debug + Clone,
    W::Error: PartialEq + Debug + Clone,
{
    crash_and_compare(workflow, input, &[], None).await
}

async fn crash_and_compare<W>(
    workflow: W,
    input: W::Input,
    events: &[(&str, &str)],
    expected: Option<&[(&str, &[&str])]>,
) -> Result<W::Output, W::Error>
where
    W: Workflow + Copy,
    W::Input: Clone,
    W::Output: PartialEq + Debug + Clone,
    W::Error: PartialEq + Debug + Clone,
{
    take_effects();
    let start = |input: W::Input| {
        let mut run = TestRun::start(workflow, "e2e", input);
        for (name, payload) in events {
            run.send_event(name, *payload);
        }
        run
    };
    let mut run = start(input.clone());
    let result = run.run_to_end().await.expect("the uninterrupted run completes");
    let effects = take_effects();
    let checkpoints = run.stored().checkpoints.clone();
    for checkpoint in checkpoints.iter().filter(|_| expected.is_some()) {
        let expected = expected.unwrap_or_default();
        let (key, fields) = layout(&checkpoint.state);
        let want = expected
            .iter()
            .find(|(point, _)| *point == key)
            .unwrap_or_else(|| panic!("no expected layout for point `{key}` ({})", checkpoint.state));
        let mut want: Vec<String> = want.1.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(fields, want, "fields stored at `{key}`: {}", checkpoint.state);
    }
    for crash_at in 1..=checkpoints.len() {
        let mut run = start(input.clone());
        run.crash_after(crash_at);
        let stored = crash_then_stored(&mut run).await;
        let mut resumed = TestRun::resume(workflow, stored);
        let again = resumed.run_to_end().await.expect("the resumed run completes");
        assert_eq!(again, result, "result after a crash at checkpoint {crash_at}");
        assert_eq!(take_effects(), effects, "side effects after a crash at checkpoint {crash_at}");
    }
    result
}

async fn crash_then_stored<W: Workflow>(run: &mut TestRun<W>) -> Stored {
    loop {
        match run.run_once().await {
            Outcome::Crashed => return run.stored().clone(),
            Outcome::Suspended { until: Some(at) } => run.clock().set(at.max(run.clock().now())),
            Outcome::Suspended { until: None } => panic!("waiting for an event"),
            Outcome::Done(_) => panic!("finished before the injected crash"),
            Outcome::BadState(error) => panic!("bad state: {error}"),
        }
    }
}
