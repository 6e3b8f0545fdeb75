//! What a resume does with a state it cannot trust, what retries do, and what the macro tells
//! about a workflow's shape.

mod common;

use std::time::Duration;

use common::{effect, take_effects};
use durable_core::prelude::*;
use durable_core::testing::{Outcome, TestRun, TestRunError};
use durable_core::{Edge, Node, PointKind, StateError};

#[durable]
async fn two_steps(n: u64) -> Result<u64, WorkflowError> {
    let a = step!("first", effect("first", n + 1).await)?;
    let b = step!("second", effect("second", a * 2).await)?;
    Ok(b)
}

async fn after_first_checkpoint() -> TestRun<two_steps> {
    let mut run = TestRun::start(two_steps, "s-1", 1);
    run.crash_after(1);
    assert!(matches!(run.run_once().await, Outcome::Crashed));
    TestRun::resume(two_steps, run.crash())
}

#[tokio::test]
async fn a_state_from_an_incompatible_layout_is_refused_and_left_untouched() {
    let mut run = after_first_checkpoint().await;
    run.stored_mut().snapshot.as_mut().unwrap().fingerprint = "0123456789abcdef".into();
    let before = run.stored().clone();
    take_effects();
    match run.run_once().await {
        Outcome::BadState(StateError::Incompatible { workflow, expected, found }) => {
            assert_eq!(workflow, "two_steps");
            assert_eq!(expected, two_steps.facts().fingerprint);
            assert_eq!(found, "0123456789abcdef");
        }
        other => panic!("expected an incompatible-layout error, got {other:?}"),
    }
    assert_eq!(run.stored(), &before, "the stored execution is unchanged");
    assert!(take_effects().is_empty(), "no step ran");
    let message = match run.run_to_end().await {
        Err(TestRunError::BadState(error)) => error.to_string(),
        other => panic!("expected a bad state, got {other:?}"),
    };
    assert!(message.contains("incompatible version"), "{message}");
    assert!(message.contains("left untouched"), "{message}");
}

#[tokio::test]
async fn corrupt_state_json_is_a_clear_error_not_a_panic() {
    for corrupt in ["{", "", "null", r#"{"first":{"a":"not a number"}}"#, r#"{"nowhere":{}}"#, r#"{"first":{}}"#] {
        let mut run = after_first_checkpoint().await;
        run.stored_mut().snapshot.as_mut().unwrap().state = corrupt.into();
        let before = run.stored().clone();
        match run.run_once().await {
            Outcome::BadState(StateError::Corrupt { workflow, source }) => {
                assert_eq!(workflow, "two_steps");
                assert!(!source.to_string().is_empty());
            }
            other => panic!("expected a corrupt-state error for {corrupt:?}, got {other:?}"),
        }
        assert_eq!(run.stored(), &before, "the stored execution is unchanged for {corrupt:?}");
    }
}

#[tokio::test]
async fn a_valid_state_resumes_after_a_refused_one_is_restored() {
    let mut run = after_first_checkpoint().await;
    let good = run.stored().snapshot.clone();
    run.stored_mut().snapshot.as_mut().unwrap().state = "{".into();
    assert!(matches!(run.run_once().await, Outcome::BadState(_)));
    run.stored_mut().snapshot = good;
    take_effects();
    assert_eq!(run.run_to_end().await.unwrap(), Ok(4));
    assert_eq!(take_effects().get("first"), None, "the first step is not run again");
}

// ------------------------------------------------------------------ retries

#[durable]
async fn flaky(fail_times: u32) -> Result<String, WorkflowError> {
    let value = step!(
        "call",
        retry = Retry::exponential(4).initial_delay(Duration::from_secs(10)),
        attempt("call", fail_times).await
    )?;
    Ok(value)
}

thread_local! {
    static ATTEMPTS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

async fn attempt(what: &str, fail_times: u32) -> Result<String, std::io::Error> {
    let n = ATTEMPTS.with(|a| {
        a.set(a.get() + 1);
        a.get()
    });
    if n <= fail_times {
        Err(std::io::Error::other(format!("{what} attempt {n} failed")))
    } else {
        Ok(format!("{what} ok on attempt {n}"))
    }
}

#[tokio::test]
async fn retries_wait_on_durable_timers_and_give_up_after_the_last_attempt() {
    ATTEMPTS.with(|a| a.set(0));
    let mut run = TestRun::start(flaky, "r-1", 2);
    // Attempt 1 fails: the execution suspends until the retry is due, 10 s later.
    assert!(matches!(run.run_once().await, Outcome::Suspended { until: Some(at) } if at.as_millis() == 10_000));
    assert_eq!(run.stored().step.as_ref().unwrap().attempt, 1);
    // Resuming early does not run the body.
    assert!(matches!(run.run_once().await, Outcome::Suspended { .. }));
    assert_eq!(ATTEMPTS.with(|a| a.get()), 1);
    // The second delay doubles.
    run.clock().set(durable_core::Timestamp::from_millis(10_000));
    assert!(matches!(run.run_once().await, Outcome::Suspended { until: Some(at) } if at.as_millis() == 30_000));
    assert_eq!(run.run_to_end().await.unwrap(), Ok("call ok on attempt 3".to_owned()));

    ATTEMPTS.with(|a| a.set(0));
    let mut run = TestRun::start(flaky, "r-2", 10);
    let error = run.run_to_end().await.unwrap().unwrap_err();
    assert_eq!(error.message(), "step `call` failed after 4 attempts: call attempt 4 failed");
    assert_eq!(error.step(), Some("call"));
    assert_eq!(ATTEMPTS.with(|a| a.get()), 4);
}

#[durable]
async fn declined() -> Result<String, WorkflowError> {
    let outcome = step!("charge", retry = Retry::fixed(5, Duration::from_secs(1)), charge().await);
    match outcome {
        Ok(receipt) => Ok(receipt),
        Err(error) if error.is_terminal() => Ok(format!("compensated: {error}")),
        Err(error) => Err(error.into()),
    }
}

async fn charge() -> Result<String, StepError> {
    effect("charge", ()).await?;
    Err(StepError::terminal("card declined"))
}

#[tokio::test]
async fn a_terminal_error_is_not_retried_and_the_workflow_can_handle_it() {
    take_effects();
    let mut run = TestRun::start(declined, "t-1", ());
    let result = run.run_to_end().await.unwrap();
    assert_eq!(result, Ok("compensated: step `charge` failed: card declined".to_owned()));
    assert_eq!(take_effects().get("charge"), Some(&1));
}

#[durable]
async fn at_most_once(n: u64) -> Result<u64, WorkflowError> {
    let sent = step!(
        "send_payment",
        semantics = Semantics::AtMostOncePerAttempt,
        retry = Retry::fixed(2, Duration::from_secs(10)),
        effect("send_payment", n).await
    )?;
    Ok(sent)
}

#[tokio::test]
async fn an_interrupted_at_most_once_attempt_counts_as_failed() {
    // A worker died while attempt 1 ran: the marker persisted before the body says so.
    let mut run = TestRun::start(at_most_once, "m-1", 5);
    run.stored_mut().step =
        Some(durable_core::testing::StepRecord { point: "send_payment", attempt: 1, started: true, retry_at: None });
    take_effects();
    // Attempt 1 counts as failed: attempt 2 waits for the retry delay, as after any failure.
    assert!(matches!(run.run_once().await, Outcome::Suspended { until: Some(at) } if at.as_millis() == 10_000));
    assert!(take_effects().is_empty(), "attempt 1 did not run again");
    assert_eq!(run.run_to_end().await.unwrap(), Ok(5));
    assert_eq!(take_effects().get("send_payment"), Some(&1), "only attempt 2 ran");

    // With no attempt left, the step fails without running.
    let mut run = TestRun::start(at_most_once, "m-2", 5);
    run.stored_mut().step =
        Some(durable_core::testing::StepRecord { point: "send_payment", attempt: 2, started: true, retry_at: None });
    let error = run.run_to_end().await.unwrap().unwrap_err();
    assert!(error.message().contains("interrupted"), "{}", error.message());
    assert!(take_effects().is_empty());
}

// ------------------------------------------------------------------ static facts

#[durable]
async fn shaped(flag: bool) -> Result<u64, WorkflowError> {
    let a = step!("a", Ok::<_, StepError>(1u64))?;
    let b = if flag {
        step!("b", Ok::<_, StepError>(2u64))?
    } else {
        wait!("c", Duration::from_secs(5));
        3
    };
    let d: u64 = wait!("d", event);
    Ok(a + b + d)
}

#[test]
fn facts_name_points_locations_layout_and_edges() {
    let facts = shaped.facts();
    assert_eq!(facts.name, "shaped");
    assert_eq!(facts.params, ["flag"]);
    assert!(facts.file.ends_with("state.rs"), "{}", facts.file);
    let source = include_str!("state.rs");
    let line_of = |needle: &str| source.lines().position(|l| l.contains(needle)).unwrap() as u32 + 1;
    let summary: Vec<_> = facts.points.iter().map(|p| (p.index, p.name, p.kind, p.line, p.stored)).collect();
    assert_eq!(
        summary,
        [
            (0, "a", PointKind::Step, line_of(r#"step!("a""#), &["flag", "a"][..]),
            (1, "b", PointKind::Step, line_of(r#"step!("b""#), &["a"][..]),
            (2, "c", PointKind::Sleep, line_of(r#"wait!("c""#), &["a"][..]),
            (3, "d", PointKind::Event, line_of(r#"wait!("d""#), &["a", "b", "d"][..]),
        ]
    );
    assert_eq!(facts.points[0].column, 13);
    let edges: Vec<(Node, Node)> = facts.edges.iter().map(|Edge { from, to }| (*from, *to)).collect();
    assert_eq!(
        edges,
        [
            (Node::Start, Node::Point(0)),
            (Node::Point(0), Node::Point(1)),
            (Node::Point(0), Node::Point(2)),
            (Node::Point(1), Node::Point(3)),
            (Node::Point(2), Node::Point(3)),
            (Node::Point(3), Node::End),
        ]
    );
    assert_eq!(facts.fingerprint.len(), 16);
    assert_ne!(facts.fingerprint, two_steps.facts().fingerprint);
}

#[durable(key = order_id, key = region)]
async fn keyed(order_id: String, region: String, amount: u64) -> Result<u64, WorkflowError> {
    let _ = (&order_id, &region);
    Ok(amount)
}

#[test]
fn business_keys_are_read_from_the_input() {
    let facts = keyed.facts();
    assert_eq!(facts.keys, ["order_id", "region"]);
    let input = serde_json::to_string(&("o-42".to_owned(), "eu".to_owned(), 7u64)).unwrap();
    assert_eq!(facts.key_values(&input), [("order_id", "o-42".to_owned()), ("region", "eu".to_owned())]);
    assert!(facts.key_values("not json").is_empty());
    assert!(shaped.facts().key_values("true").is_empty());
}

/// A step value whose serde form loses something: `cache` is not stored.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Lossy {
    total: u64,
    #[serde(skip)]
    cache: Option<u64>,
}

async fn lossy(total: u64) -> Result<Lossy, std::io::Error> {
    Ok(Lossy { total, cache: Some(total * 100) })
}

#[durable]
async fn uses_a_lossy_value(n: u64) -> Result<String, WorkflowError> {
    let value = step!("compute", lossy(n).await)?;
    let doubled = step!("double", effect("double", value.total * 2).await)?;
    Ok(format!("{doubled} with cache {:?}", value.cache))
}

/// The result does not depend on whether a crash happened: after each checkpoint the run goes
/// on from the state as stored and read back, so a value that does not round-trip (here a
/// skipped field) is the same in an uninterrupted run as after a resume.
#[tokio::test]
async fn a_value_that_does_not_round_trip_gives_the_same_result_with_and_without_a_crash() {
    let layout: &[(&str, &[&str])] = &[("compute", &["value"]), ("double", &["doubled", "value"])];
    let result = common::crash_everywhere(uses_a_lossy_value, 4, layout).await;
    assert_eq!(result, Ok("8 with cache None".to_owned()), "the skipped field is gone in every run");
}

/// A value that encodes but does not decode again.
#[derive(Debug)]
struct OneWay;

impl serde::Serialize for OneWay {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("one way")
    }
}

impl<'de> serde::Deserialize<'de> for OneWay {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("OneWay cannot be read back"))
    }
}

async fn one_way() -> Result<OneWay, std::io::Error> {
    Ok(OneWay)
}

#[durable]
async fn keeps_a_one_way_value(n: u64) -> Result<u64, WorkflowError> {
    let kept = step!("make", one_way().await)?;
    let m = step!("use", effect("use", n).await)?;
    Ok(m + u64::from(format!("{kept:?}").is_empty()))
}

/// A state that does not read back is refused at its first checkpoint, with nothing stored,
/// rather than found out at a resume days later.
#[tokio::test]
async fn a_state_that_does_not_read_back_is_refused_before_it_is_stored() {
    let mut run = TestRun::start(keeps_a_one_way_value, "o-1", 1);
    match run.run_once().await {
        Outcome::BadState(StateError::RoundTrip { point, source, .. }) => {
            assert_eq!(point, "make");
            assert!(source.to_string().contains("OneWay cannot be read back"), "{source}");
        }
        other => panic!("expected a round-trip error, got {other:?}"),
    }
    assert!(run.stored().checkpoints.is_empty(), "nothing was stored");
}
