//! A panic in a workflow's run is caught: a panicking step body is a failed attempt, retried
//! as its policy says and then every so often until its code is fixed; a panic in the
//! workflow's own code leaves the execution waiting at its last checkpoint. Nothing is lost,
//! the worker goes on, and the history says what happened.

use std::time::Duration;

use durable_core::store::{EventKind, HistoryEvent, Status, Store};
use durable_core::{Delivery, Engine};

use crate::support::{Payment, broken, bump, clock, count, engine, panicky, pay_strictly};

crate::support::both!(
    a_panicking_step_is_a_failed_attempt,
    a_step_that_always_panics_is_tried_again_until_fixed,
    a_panic_in_the_workflows_code_waits_at_the_last_checkpoint,
    a_panic_after_an_event_keeps_the_event,
);

/// Runs until idle and returns the execution's status, delay until its wake-up time and step
/// attempt.
async fn state<S: Store>(engine: &Engine<S>, id: &str) -> (Status, Option<u64>, Option<u32>) {
    engine.worker("w-1").run_until_idle().await.expect("the worker survives the panic");
    let status = engine.status(id).await.unwrap();
    let now = engine.store().load(id).await.unwrap().unwrap().updated_at;
    let delay = status.wake_at.map(|at| at.saturating_since(now).as_secs());
    (status.status, delay, status.step.map(|step| step.attempt))
}

fn details(history: &[HistoryEvent], kind: EventKind) -> Vec<String> {
    history.iter().filter(|e| e.kind == kind).map(|e| e.detail.clone().unwrap_or_default()).collect()
}

async fn a_panicking_step_is_a_failed_attempt<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(panicky, "p-1", (tag.to_owned(), 1)).await.unwrap();
    assert_eq!(state(&engine, "p-1").await, (Status::Suspended, Some(10), Some(1)));
    assert_eq!(engine.stats().running, 0, "the panicked run holds no task");
    clock.advance(Duration::from_secs(10));
    assert_eq!(state(&engine, "p-1").await, (Status::Succeeded, None, None));
    assert_eq!(engine.result(panicky, "p-1").await.unwrap(), Ok("ok after 2".to_owned()));

    let history = engine.history("p-1").await.unwrap();
    let failed = details(&history, EventKind::StepFailed);
    assert_eq!(failed, ["attempt 1 of 3: the step panicked: index out of bounds (1); next attempt in 10s"]);
}

async fn a_step_that_always_panics_is_tried_again_until_fixed<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(panicky, "p-1", (tag.to_owned(), 5)).await.unwrap();
    assert_eq!(state(&engine, "p-1").await, (Status::Suspended, Some(10), Some(1)));
    clock.advance(Duration::from_secs(10));
    assert_eq!(state(&engine, "p-1").await, (Status::Suspended, Some(10), Some(2)));
    clock.advance(Duration::from_secs(10));
    // The last attempt the policy allows panicked: the workflow cannot be handed a panic, so the
    // step waits and is tried again, a minute later, then two, then four.
    assert_eq!(state(&engine, "p-1").await, (Status::Suspended, Some(60), Some(3)));
    clock.advance(Duration::from_secs(60));
    assert_eq!(state(&engine, "p-1").await, (Status::Suspended, Some(120), Some(4)));
    clock.advance(Duration::from_secs(120));
    assert_eq!(state(&engine, "p-1").await, (Status::Suspended, Some(240), Some(5)));
    assert_eq!(count(&format!("{tag}/call")), 5);
    clock.advance(Duration::from_secs(240));
    assert_eq!(state(&engine, "p-1").await, (Status::Succeeded, None, None));
    assert_eq!(engine.result(panicky, "p-1").await.unwrap(), Ok("ok after 6".to_owned()), "5 panics, then fixed");

    let history = engine.history("p-1").await.unwrap();
    let failed = details(&history, EventKind::StepFailed);
    assert_eq!(failed.len(), 5);
    assert_eq!(
        failed[2],
        "attempt 3 of 3: the step panicked: index out of bounds (3); no attempt left, but a panic cannot \
         be handed to the workflow: trying again in 1m 0s until its code is fixed"
    );
    assert!(failed[3].starts_with("attempt 4 of 3: the step panicked: index out of bounds (4); "), "{}", failed[3]);
}

async fn a_panic_in_the_workflows_code_waits_at_the_last_checkpoint<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(broken, "b-1", tag.to_owned()).await.unwrap();
    assert_eq!(state(&engine, "b-1").await, (Status::Suspended, Some(60), None));
    let problem = engine.status("b-1").await.unwrap().problem;
    assert_eq!(problem.as_deref(), Some("its run panicked: unexpected state 7"), "this engine says why");
    let record = engine.store().load("b-1").await.unwrap().unwrap();
    assert_eq!(record.snapshot.map(|s| s.point), Some("load".to_owned()), "the checkpoint is kept");
    let history = engine.history("b-1").await.unwrap();
    let suspended = details(&history, EventKind::Suspended);
    assert_eq!(suspended.len(), 1);
    assert_eq!(suspended[0], "the run panicked: unexpected state 7; trying again in 1m 0s from the last checkpoint");

    bump(&format!("{tag}/fixed"));
    clock.advance(Duration::from_secs(60));
    assert_eq!(state(&engine, "b-1").await, (Status::Succeeded, None, None));
    assert_eq!(engine.result(broken, "b-1").await.unwrap(), Ok(format!("{tag}: 7")));
    assert_eq!(count(&format!("{tag}/load")), 1, "the checkpointed step did not run again");
}

/// An event delivered by its sender, then a panic in the code after it: the event's value was
/// committed with its checkpoint, so the next run (once the code is fixed) goes on with it.
async fn a_panic_after_an_event_keeps_the_event<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(pay_strictly, "e-1", tag.to_owned()).await.unwrap();
    assert_eq!(state(&engine, "e-1").await, (Status::Suspended, None, None));
    let delivery = engine.send_event("e-1", "payment", &Payment { amount: 0 }).await.unwrap();
    assert_eq!(delivery, Delivery::Delivered, "the sender's call returns normally");
    assert_eq!(state(&engine, "e-1").await, (Status::Suspended, Some(60), None));
    let history = engine.history("e-1").await.unwrap();
    assert!(details(&history, EventKind::Suspended).iter().any(|d| d.starts_with("the run panicked: a payment of 0")));
    assert!(engine.store().inbox("e-1").await.unwrap().is_empty(), "the event was consumed, and kept in the state");

    bump(&format!("{tag}/fixed"));
    clock.advance(Duration::from_secs(60));
    assert_eq!(state(&engine, "e-1").await, (Status::Succeeded, None, None));
    assert_eq!(engine.result(pay_strictly, "e-1").await.unwrap(), Ok(format!("{tag}: booked 0")));
}
