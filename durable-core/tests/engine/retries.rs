//! Retries: a durable delay between attempts, terminal errors, exhausted attempts, and
//! at-most-once attempts interrupted by a crash.

use std::time::Duration;

use std::sync::Arc;

use durable_core::prelude::*;
use durable_core::store::{EventKind, Status, Store};
use durable_core::{Clock, Engine, ManualClock};

use crate::support::{
    LEASE, arm_hang, both, charge_once, clock, count, declined, engine, flaky_call, flaky_exponential, flaky_fixed,
};

both!(
    a_retry_waits_as_a_durable_timer,
    exponential_delays_double,
    exhausted_attempts_give_the_error_to_the_workflow,
    a_terminal_error_is_not_retried,
    an_interrupted_at_most_once_attempt_counts_as_failed,
    an_interrupted_last_attempt_fails_the_step,
    the_engines_default_retry_applies_to_steps_given_none,
);

/// Runs until idle and returns the execution's status, wake-up time and step attempt.
async fn step_state<S: Store>(engine: &Engine<S>, id: &str) -> (Status, Option<u64>, Option<u32>) {
    engine.worker("w-1").run_until_idle().await.unwrap();
    let status = engine.status(id).await.unwrap();
    let now = engine.store().load(id).await.unwrap().unwrap().updated_at;
    let delay = status.wake_at.map(|at| at.saturating_since(now).as_secs());
    (status.status, delay, status.step.map(|step| step.attempt))
}

async fn a_retry_waits_as_a_durable_timer<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(flaky_fixed, "f-1", (tag.to_owned(), 2)).await.unwrap();
    assert_eq!(step_state(&engine, "f-1").await, (Status::Suspended, Some(10), Some(1)));
    assert_eq!(engine.stats().running, 0, "a retrying execution holds no task");
    let record = engine.store().load("f-1").await.unwrap().unwrap();
    assert_eq!(record.step.unwrap().retry_at, Some(clock.now().saturating_add(Duration::from_secs(10))));

    clock.advance(Duration::from_secs(9));
    assert_eq!(engine.worker("w-1").run_until_idle().await.unwrap(), 0, "not before the delay");
    clock.advance(Duration::from_secs(1));
    assert_eq!(step_state(&engine, "f-1").await, (Status::Suspended, Some(10), Some(2)));
    clock.advance(Duration::from_secs(10));
    assert_eq!(step_state(&engine, "f-1").await, (Status::Succeeded, None, None));
    assert_eq!(engine.result(flaky_fixed, "f-1").await.unwrap(), Ok("ok after 3".to_owned()));
    assert_eq!(count(&format!("{tag}/call")), 3);

    let history = engine.history("f-1").await.unwrap();
    let failed: Vec<_> = history.iter().filter(|e| e.kind == EventKind::StepFailed).collect();
    assert_eq!(failed.iter().map(|e| e.attempt).collect::<Vec<_>>(), [Some(1), Some(2)]);
    let detail = failed[0].detail.as_deref().unwrap();
    assert_eq!(detail, "attempt 1 of 3: connection refused (1); next attempt in 10s");
    let succeeded = history.iter().find(|e| e.kind == EventKind::StepSucceeded).unwrap();
    assert_eq!(succeeded.attempt, Some(3));
}

async fn exponential_delays_double<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(flaky_exponential, "e-1", (tag.to_owned(), 3)).await.unwrap();
    for (delay, attempt) in [(1, 1), (2, 2), (4, 3)] {
        assert_eq!(step_state(&engine, "e-1").await, (Status::Suspended, Some(delay), Some(attempt)));
        clock.advance(Duration::from_secs(delay));
    }
    assert_eq!(step_state(&engine, "e-1").await.0, Status::Succeeded);
    assert_eq!(engine.result(flaky_exponential, "e-1").await.unwrap(), Ok("ok after 4".to_owned()));
    assert_eq!(count(&format!("{tag}/call")), 4);
}

async fn exhausted_attempts_give_the_error_to_the_workflow<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(flaky_fixed, "f-1", (tag.to_owned(), 99)).await.unwrap();
    for _ in 0..2 {
        assert_eq!(step_state(&engine, "f-1").await.0, Status::Suspended);
        clock.advance(Duration::from_secs(10));
    }
    assert_eq!(step_state(&engine, "f-1").await.0, Status::Succeeded, "the workflow handled the error");
    let expected = "gave up: step `call` failed after 3 attempts: connection refused (3)";
    assert_eq!(engine.result(flaky_fixed, "f-1").await.unwrap(), Ok(expected.to_owned()));
    assert_eq!(count(&format!("{tag}/call")), 3);
    let history = engine.history("f-1").await.unwrap();
    let last_failure = history.iter().rev().find(|e| e.kind == EventKind::StepFailed).unwrap();
    assert_eq!(last_failure.detail.as_deref(), Some("attempt 3 of 3: connection refused (3); no attempt left"));
    assert!(last_failure.state.is_some(), "the give-up carries the state the workflow went on with");
}

async fn a_terminal_error_is_not_retried<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(declined, "d-1", tag.to_owned()).await.unwrap();
    assert_eq!(engine.worker("w-1").run_until_idle().await.unwrap(), 1);
    let result = engine.result(declined, "d-1").await.unwrap().unwrap_err();
    assert_eq!(result.message(), "step `charge` failed: card declined");
    assert_eq!(result.step(), Some("charge"));
    assert_eq!(count(&format!("{tag}/charge")), 1);
    let status = engine.status("d-1").await.unwrap();
    assert_eq!(status.status, Status::Failed);
    let history = engine.history("d-1").await.unwrap();
    let failed = history.iter().find(|e| e.kind == EventKind::StepFailed).unwrap();
    assert_eq!(failed.detail.as_deref(), Some("attempt 1 of 5: card declined; terminal error, not retried"));
    let last = history.last().unwrap();
    assert_eq!((last.kind, last.detail.as_deref()), (EventKind::ExecutionFailed, Some(result.message())));
}

/// Starts `charge_once` with `attempts`, hangs its first attempt and kills the worker there.
async fn crash_in_first_attempt<S: Store>(engine: &Engine<S>, key: &str, attempts: u32) {
    engine.start(charge_once, "c-1", (key.to_owned(), attempts)).await.unwrap();
    let hung = arm_hang(key);
    let worker = engine.worker("doomed");
    let run = tokio::spawn(async move { worker.run_until_idle().await });
    hung.notified().await;
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    let record = engine.store().load("c-1").await.unwrap().unwrap();
    let step = record.step.expect("the started attempt was persisted before its body ran");
    assert_eq!((step.attempt, step.started, record.status), (1, true, Status::Running));
}

async fn an_interrupted_at_most_once_attempt_counts_as_failed<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    crash_in_first_attempt(&engine, tag, 2).await;
    assert_eq!(engine.worker("w-1").run_until_idle().await.unwrap(), 0, "leased by the dead worker");
    clock.advance(LEASE);
    assert_eq!(step_state(&engine, "c-1").await, (Status::Suspended, Some(1), Some(1)));
    assert_eq!(count(&format!("{tag}/charge")), 1, "the interrupted attempt did not run again");
    clock.advance(Duration::from_secs(1));
    assert_eq!(step_state(&engine, "c-1").await.0, Status::Succeeded);
    assert_eq!(engine.result(charge_once, "c-1").await.unwrap(), Ok("receipt 2".to_owned()));
    let history = engine.history("c-1").await.unwrap();
    let started = history.iter().filter(|e| e.kind == EventKind::StepStarted).map(|e| e.attempt);
    assert_eq!(started.collect::<Vec<_>>(), [Some(1), Some(2)]);
    let failed = history.iter().find(|e| e.kind == EventKind::StepFailed).unwrap();
    assert!(failed.detail.as_deref().unwrap().contains("interrupted before it finished"), "{failed:?}");
}

async fn an_interrupted_last_attempt_fails_the_step<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    crash_in_first_attempt(&engine, tag, 1).await;
    clock.advance(LEASE);
    assert_eq!(engine.worker("w-1").run_until_idle().await.unwrap(), 1);
    let result = engine.result(charge_once, "c-1").await.unwrap().unwrap();
    assert!(result.starts_with("not charged: step `charge` failed: the attempt was interrupted"), "{result}");
    assert_eq!(count(&format!("{tag}/charge")), 1, "never run twice");
}

/// A step given no retry policy, failing its first `failures` attempts.
#[durable]
async fn flaky_default(key: String, failures: u32) -> Result<String, WorkflowError> {
    let result = step!("call", flaky_call(&key, failures).await);
    match result {
        Ok(value) => Ok(value),
        Err(error) => Ok(format!("gave up ({}): {error}", error.kind().unwrap_or("no kind"))),
    }
}

/// The same, as another workflow.
#[durable]
async fn flaky_default_too(key: String, failures: u32) -> Result<String, WorkflowError> {
    let value = step!("call", flaky_call(&key, failures).await)?;
    Ok(value)
}

fn default_retry_engine<S: Store>(store: S, clock: &ManualClock, retry: Option<Retry>) -> Engine<S> {
    let builder =
        Engine::builder(store).clock(Arc::new(clock.clone())).register(flaky_default).register(flaky_default_too);
    match retry {
        Some(retry) => builder.default_retry_for(flaky_default_too, Retry::none()).default_retry(retry),
        None => builder,
    }
    .build()
    .unwrap()
}

/// Without a configured default a step has one attempt; the engine's default applies to every
/// step given no policy, a workflow's own default overrides it, and a failure records its kind
/// in the history and hands it to the workflow.
async fn the_engines_default_retry_applies_to_steps_given_none<S: Store + Clone>(store: S, tag: &str) {
    let clock = clock();
    let plain = default_retry_engine(store.clone(), &clock, None);
    let key = format!("{tag}-plain");
    plain.start(flaky_default, "d-1", (key.clone(), 1)).await.unwrap();
    plain.worker("w-1").run_until_idle().await.unwrap();
    let expected = "gave up (std::io::error::Error): step `call` failed: connection refused (1)";
    assert_eq!(plain.result(flaky_default, "d-1").await.unwrap(), Ok(expected.to_owned()));
    let failed = plain.history("d-1").await.unwrap().into_iter().find(|e| e.kind == EventKind::StepFailed).unwrap();
    assert_eq!(failed.error_kind.as_deref(), Some("std::io::error::Error"), "{failed:?}");

    let retrying = default_retry_engine(store, &clock, Some(Retry::fixed(3, Duration::from_secs(10))));
    let key = format!("{tag}-default");
    retrying.start(flaky_default, "d-2", (key.clone(), 2)).await.unwrap();
    retrying.start(flaky_default_too, "d-3", (format!("{tag}-own"), 1)).await.unwrap();
    for _ in 0..2 {
        retrying.worker("w-1").run_until_idle().await.unwrap();
        clock.advance(Duration::from_secs(10));
    }
    retrying.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(retrying.result(flaky_default, "d-2").await.unwrap(), Ok("ok after 3".to_owned()));
    assert_eq!(count(&format!("{key}/call")), 3);
    let own = retrying.result(flaky_default_too, "d-3").await.unwrap().unwrap_err();
    assert!(own.to_string().contains("failed: connection refused (1)"), "the workflow's own default: {own}");
}
