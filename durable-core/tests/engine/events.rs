//! Events: delivered at once or through the inbox, refused when they do not decode, timed out.

use std::sync::Arc;
use std::time::Duration;

use durable_core::prelude::*;
use durable_core::render::{self, ExecutionView};
use durable_core::store::{EventKind, Status, Store};
use durable_core::{Clock, Delivery, Engine, EngineError};
use serde_json::json;

use crate::support::{HOUR, Payment, both, clock, engine, pay, pay_or_timeout};

both!(
    a_waiting_execution_gets_its_event_at_once,
    a_wrong_payload_is_refused_and_nothing_changes,
    an_early_event_is_kept_until_the_wait,
    a_malformed_inbox_event_is_rejected_and_the_wait_goes_on,
    an_event_wait_times_out,
    queued_events_of_one_name_are_each_consumed_once_in_a_loop,
    an_event_after_the_deadline_is_refused_and_the_wait_times_out,
    a_queued_event_after_the_deadline_is_left_and_the_wait_times_out,
    an_event_the_workflow_never_waits_for_is_refused,
    a_keyed_event_is_stored_once,
    show_lists_events_that_were_never_consumed,
);

/// `durable show` (and its JSON) lists the inbox events an execution did not consume, and says
/// when none of them ever will be.
async fn show_lists_events_that_were_never_consumed<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(pay, "p-1", tag.to_owned()).await.unwrap();
    engine.send_event("p-1", "payment", &Payment { amount: 1 }).await.unwrap();
    engine.send_event("p-1", "payment", &Payment { amount: 2 }).await.unwrap();
    let view = ExecutionView::load(engine.store(), "p-1").await.unwrap().unwrap();
    let text = render::show(&view, 3);
    assert!(text.contains("inbox, 2 event(s) not consumed:\n"), "{text}");

    engine.worker("w-1").run_until_idle().await.unwrap();
    let view = ExecutionView::load(engine.store(), "p-1").await.unwrap().unwrap();
    let text = render::show(&view, 3);
    let never = "inbox, 1 event(s) not consumed, never to be consumed: the execution has finished:";
    assert!(text.contains(never), "{text}");
    assert!(text.contains(r#"payment {"amount":2}"#), "{text}");
    let report = serde_json::to_value(render::Report::new(&view, 3)).unwrap();
    assert_eq!(report["inbox"][0]["payload"], json!({"amount": 2}), "{report}");
}

/// The deadline decides, not which worker gets there first: an event sent after the timeout,
/// while no worker has acted on it yet, is refused and the wait times out.
async fn an_event_after_the_deadline_is_refused_and_the_wait_times_out<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(pay_or_timeout, "t-1", tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    clock.advance(HOUR + Duration::from_secs(1));
    let late = engine.send_event("t-1", "payment", &Payment { amount: 1 }).await.unwrap_err();
    assert!(matches!(&late, EngineError::DeadlinePassed { event, .. } if event == "payment"), "{late}");
    assert!(late.to_string().contains("arrived after the timeout"), "{late}");
    assert!(engine.store().inbox("t-1").await.unwrap().is_empty(), "nothing was stored");
    engine.worker("w-1").run_until_idle().await.unwrap();
    let expected = format!("{tag}: no event `payment` arrived before the timeout");
    assert_eq!(engine.result(pay_or_timeout, "t-1").await.unwrap(), Ok(expected));

    // One second before the deadline the same event is taken.
    engine.start(pay_or_timeout, "t-2", tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    clock.advance(HOUR - Duration::from_secs(1));
    assert_eq!(engine.send_event("t-2", "payment", &Payment { amount: 2 }).await.unwrap(), Delivery::Delivered);
    clock.advance(Duration::from_secs(5));
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(engine.result(pay_or_timeout, "t-2").await.unwrap(), Ok(format!("{tag}: paid 2")));
}

/// An event that reached the inbox after the wait's deadline (it was sent while a worker held
/// the execution) is not consumed by that wait: the wait times out and the event stays visible.
async fn a_queued_event_after_the_deadline_is_left_and_the_wait_times_out<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(pay_or_timeout, "t-1", tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let deadline = engine.status("t-1").await.unwrap().wake_at.unwrap();
    clock.advance(HOUR + Duration::from_secs(1));
    let late = serde_json::to_string(&Payment { amount: 1 }).unwrap();
    engine
        .store()
        .send_event("t-1", "payment", &late, deadline.saturating_add(Duration::from_millis(1)))
        .await
        .unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let expected = format!("{tag}: no event `payment` arrived before the timeout");
    assert_eq!(engine.result(pay_or_timeout, "t-1").await.unwrap(), Ok(expected));
    assert_eq!(engine.store().inbox("t-1").await.unwrap().len(), 1, "the late event is left, not consumed");

    // Arrived exactly at the deadline: late too. A millisecond before: consumed.
    for (id, offset, paid) in [("t-2", 0, false), ("t-3", -1, true)] {
        engine.start(pay_or_timeout, id, tag.to_owned()).await.unwrap();
        engine.worker("w-1").run_until_idle().await.unwrap();
        let deadline = engine.status(id).await.unwrap().wake_at.unwrap();
        let at = durable_core::Timestamp::from_millis(deadline.as_millis().saturating_add_signed(offset));
        engine.store().send_event(id, "payment", r#"{"amount":3}"#, at).await.unwrap();
        clock.advance(HOUR + Duration::from_secs(1));
        engine.worker("w-1").run_until_idle().await.unwrap();
        let result = engine.result(pay_or_timeout, id).await.unwrap().unwrap();
        assert_eq!(result.ends_with("paid 3"), paid, "{id}: {result}");
    }
}

async fn an_event_the_workflow_never_waits_for_is_refused<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(pay, "p-1", tag.to_owned()).await.unwrap();
    let error = engine.send_event("p-1", "refund", &Payment { amount: 1 }).await.unwrap_err();
    assert!(matches!(&error, EngineError::UnknownEvent { event, .. } if event == "refund"), "{error}");
    assert!(error.to_string().contains("never waits for an event named `refund` (its events: payment)"), "{error}");
    assert!(engine.store().inbox("p-1").await.unwrap().is_empty(), "nothing was stored");
}

/// A sender that retries sends each keyed event once: the repeat (concurrent, or after the
/// event was consumed) is answered `Duplicate` and stores nothing.
async fn a_keyed_event_is_stored_once<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(pay, "p-1", tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let payment = Payment { amount: 8 };
    let (a, b) = tokio::join!(
        engine.send_event_once("p-1", "payment", "webhook-1", &payment),
        engine.send_event_once("p-1", "payment", "webhook-1", &payment),
    );
    let mut answers = [a.unwrap(), b.unwrap()];
    answers.sort_by_key(|delivery| format!("{delivery:?}"));
    assert_eq!(answers, [Delivery::Duplicate, Delivery::Queued]);
    assert_eq!(engine.store().inbox("p-1").await.unwrap().len(), 1);
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(engine.result(pay, "p-1").await.unwrap(), Ok(format!("{tag}: paid 8 of 30")));

    engine.start(pay, "p-2", tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(engine.send_event_once("p-2", "payment", "k", &payment).await.unwrap(), Delivery::Queued);
    engine.worker("w-1").run_until_idle().await.unwrap();
    let error = engine.send_event_once("p-2", "payment", "k", &payment).await.unwrap_err();
    assert!(matches!(error, EngineError::Finished { .. }), "a finished execution refuses even a repeat: {error}");
}

async fn a_waiting_execution_gets_its_event_at_once<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(pay, "p-1", tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let status = engine.status("p-1").await.unwrap();
    assert_eq!((status.status, status.waiting_for.as_deref()), (Status::Suspended, Some("payment")));

    let delivery = engine.send_event("p-1", "payment", &Payment { amount: 30 }).await.unwrap();
    assert_eq!(delivery, Delivery::Delivered);
    let record = engine.store().load("p-1").await.unwrap().unwrap();
    assert_eq!((record.status, record.lease, record.waiting_for), (Status::Running, None, None));
    assert!(engine.store().inbox("p-1").await.unwrap().is_empty(), "never went through the inbox");
    assert_eq!(engine.worker("w-1").run_until_idle().await.unwrap(), 1);
    assert_eq!(engine.result(pay, "p-1").await.unwrap(), Ok(format!("{tag}: paid 30 of 30")));
    let history = engine.history("p-1").await.unwrap();
    let received = history.iter().find(|e| e.kind == EventKind::EventReceived).unwrap();
    assert_eq!(received.point.as_deref(), Some("payment"));
    assert!(received.state.as_deref().unwrap().contains("30"), "the checkpoint stores the payload");
}

async fn a_wrong_payload_is_refused_and_nothing_changes<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(pay, "p-1", tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let before = engine.store().load("p-1").await.unwrap().unwrap();
    let history = engine.history("p-1").await.unwrap();

    let error = engine.send_event("p-1", "payment", &"thirty euros").await.unwrap_err();
    assert!(matches!(&error, EngineError::EventRejected { event, .. } if event == "payment"), "{error}");
    let message = error.to_string();
    assert!(message.contains("does not match the type the workflow expects"), "{message}");
    assert!(message.contains("invalid type: string \"thirty euros\""), "the decoder's words: {message}");
    let wrong_field = engine.send_event("p-1", "payment", &json!({"amount": "30"})).await.unwrap_err();
    assert!(matches!(wrong_field, EngineError::EventRejected { .. }), "{wrong_field}");
    let malformed = engine.send_event_json("p-1", "payment", "{\"amount\": 30").await.unwrap_err();
    assert!(matches!(malformed, EngineError::MalformedPayload { .. }), "{malformed}");
    assert!(malformed.to_string().contains("is not valid JSON"), "{malformed}");

    assert_eq!(engine.store().load("p-1").await.unwrap().unwrap(), before, "the stored record is unchanged");
    assert_eq!(engine.history("p-1").await.unwrap(), history);
    assert!(engine.store().inbox("p-1").await.unwrap().is_empty());
    assert_eq!(engine.send_event("p-1", "payment", &json!({"amount": 7})).await.unwrap(), Delivery::Delivered);
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(engine.result(pay, "p-1").await.unwrap(), Ok(format!("{tag}: paid 7 of 30")));
}

async fn an_early_event_is_kept_until_the_wait<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(pay, "p-1", tag.to_owned()).await.unwrap();
    let delivery = engine.send_event("p-1", "payment", &Payment { amount: 12 }).await.unwrap();
    assert_eq!(delivery, Delivery::Queued);
    let again = engine.send_event("p-1", "payment", &Payment { amount: 99 }).await.unwrap();
    assert_eq!(again, Delivery::Queued, "a second event of the name is kept for a later wait");
    assert_eq!(engine.store().inbox("p-1").await.unwrap().len(), 2);

    assert_eq!(engine.worker("w-1").run_until_idle().await.unwrap(), 1, "one run: price, payment, done");
    assert_eq!(engine.result(pay, "p-1").await.unwrap(), Ok(format!("{tag}: paid 12 of 30")));
    let inbox = engine.store().inbox("p-1").await.unwrap();
    let left: Vec<&str> = inbox.iter().map(|e| e.payload.as_str()).collect();
    assert_eq!(left, [r#"{"amount":99}"#], "the first was consumed exactly once, the second never will be");
}

async fn a_malformed_inbox_event_is_rejected_and_the_wait_goes_on<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(pay, "p-1", tag.to_owned()).await.unwrap();
    assert_eq!(engine.send_event("p-1", "payment", &"thirty").await.unwrap(), Delivery::Queued);
    engine.worker("w-1").run_until_idle().await.unwrap();

    let status = engine.status("p-1").await.unwrap();
    assert_eq!((status.status, status.waiting_for.as_deref()), (Status::Suspended, Some("payment")));
    assert!(engine.store().inbox("p-1").await.unwrap().is_empty(), "the rejected event was consumed");
    let history = engine.history("p-1").await.unwrap();
    let rejected = history.iter().find(|e| e.kind == EventKind::EventRejected).unwrap();
    assert!(rejected.detail.as_deref().unwrap().contains("invalid type: string \"thirty\""), "{rejected:?}");

    assert_eq!(engine.send_event("p-1", "payment", &Payment { amount: 5 }).await.unwrap(), Delivery::Delivered);
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(engine.result(pay, "p-1").await.unwrap(), Ok(format!("{tag}: paid 5 of 30")));
}

async fn an_event_wait_times_out<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(pay_or_timeout, "t-1", tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let status = engine.status("t-1").await.unwrap();
    assert_eq!(status.wake_at, Some(clock.now().saturating_add(HOUR)));
    assert_eq!(status.waiting_for.as_deref(), Some("payment"));

    clock.advance(HOUR);
    assert_eq!(engine.worker("w-1").run_until_idle().await.unwrap(), 1);
    let expected = format!("{tag}: no event `payment` arrived before the timeout");
    assert_eq!(engine.result(pay_or_timeout, "t-1").await.unwrap(), Ok(expected));
    let history = engine.history("t-1").await.unwrap();
    assert!(history.iter().any(|e| e.kind == EventKind::EventTimedOut));
    let late = engine.send_event("t-1", "payment", &Payment { amount: 1 }).await.unwrap_err();
    assert!(matches!(late, EngineError::Finished { status: Status::Succeeded, .. }), "{late}");
}

#[tokio::test]
async fn events_for_unknown_executions_are_refused() {
    let clock = clock();
    let engine = engine(durable_core::MemoryStore::new(), &clock);
    let error = engine.send_event("nope", "payment", &Payment { amount: 1 }).await.unwrap_err();
    assert!(matches!(&error, EngineError::UnknownExecution(id) if id == "nope"));
    assert_eq!(error.to_string(), "there is no execution `nope`");
}

/// Waits for `vote` three times in a loop and keeps every payload in order.
#[durable]
async fn three_votes(key: String) -> Result<String, WorkflowError> {
    let mut votes: Vec<u64> = Vec::new();
    while votes.len() < 3 {
        let vote: u64 = wait!("vote", event);
        votes.push(vote);
    }
    Ok(format!("{key}: {votes:?}"))
}

async fn queued_events_of_one_name_are_each_consumed_once_in_a_loop<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = Engine::builder(store).clock(Arc::new(clock.clone())).register(three_votes).build().unwrap();
    engine.start(three_votes, "v-1", tag.to_owned()).await.unwrap();
    for vote in [1, 2, 3] {
        assert_eq!(engine.send_event("v-1", "vote", &vote).await.unwrap(), Delivery::Queued);
    }
    // One run consumes all three from the inbox it loaded once.
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(engine.result(three_votes, "v-1").await.unwrap(), Ok(format!("{tag}: [1, 2, 3]")));
    assert!(engine.store().inbox("v-1").await.unwrap().is_empty());
}
