//! Child workflows: started with the parent's checkpoint, awaited without holding memory, their
//! end delivered with the child's last commit; on memory, SQLite and PostgreSQL.

use durable_core::prelude::*;
use durable_core::render::{self, ExecutionView};
use durable_core::store::{EventKind, ListFilter, Status, Store};
use durable_core::{Engine, EngineError};

use crate::support::{clock, count, effect, stores};

/// A child: charges `amount` for `key`, or declines amounts over 1,000 for good.
#[durable]
pub async fn charge(key: String, amount: u64) -> Result<String, WorkflowError> {
    let receipt = step!("charge_card", charge_card(&key, amount).await)?;
    Ok(receipt)
}

async fn charge_card(key: &str, amount: u64) -> Result<String, StepError> {
    let receipt = effect(format!("{key}/charge"), format!("r-{amount}")).await?;
    if amount > 1_000 { Err(StepError::terminal(format!("{amount} is over the limit"))) } else { Ok(receipt) }
}

/// A child that waits for an event, so that the test decides when it ends.
#[durable]
pub async fn approval(key: String) -> Result<String, WorkflowError> {
    let approved: bool = wait!("decision", event);
    Ok(format!("{key}: {}", if approved { "approved" } else { "rejected" }))
}

/// A parent: calls one child, starts another and awaits it after a step of its own.
#[durable]
pub async fn trip(key: String, flight_price: u64) -> Result<String, WorkflowError> {
    let flight = match call!("flight", charge, (format!("{key}-flight"), flight_price)) {
        Ok(receipt) => receipt,
        Err(error) => return Ok(format!("no trip: {error}")),
    };
    let hotel = start!("hotel", charge, (format!("{key}-hotel"), 200));
    step!("note", effect(format!("{key}/note"), ()).await)?;
    let hotel = wait!("hotel_done", child = hotel)?;
    Ok(format!("{flight} + {hotel}"))
}

/// A parent that calls one child per round of a loop, each with its own key.
#[durable]
pub async fn fan(key: String, n: u64) -> Result<Vec<String>, WorkflowError> {
    let mut receipts = Vec::new();
    for i in 0..n {
        receipts.push(call!("part", charge, (format!("{key}-{i}"), i * 10), key = i)?);
    }
    Ok(receipts)
}

/// A parent waiting on a child that waits for an event.
#[durable]
pub async fn review(key: String) -> Result<String, WorkflowError> {
    let verdict = call!("approve", approval, format!("{key}-a"));
    match verdict {
        Ok(verdict) => Ok(verdict),
        Err(ChildError::Cancelled { child }) => Ok(format!("{child} was cancelled")),
        Err(error) => Err(error.into()),
    }
}

/// An engine with every workflow of these tests.
fn engine_with_children<S: Store>(store: S, clock: &durable_core::ManualClock) -> Engine<S> {
    durable_core::Engine::builder(store)
        .clock(std::sync::Arc::new(clock.clone()))
        .register(charge)
        .register(approval)
        .register(trip)
        .register(fan)
        .register(review)
        .register(charge_many)
        .register(approve_all)
        .build()
        .expect("the engine builds")
}

stores!(
    a_parent_awaits_its_children_and_gets_their_results,
    a_failed_child_is_an_error_the_parent_handles,
    children_in_a_loop_have_ids_of_their_own,
    a_parent_waits_without_a_worker_holding_it,
    cancelling_a_parent_cancels_its_children,
    a_cancelled_child_reaches_its_parent_as_an_error,
);

/// `call!` and `start!` + `wait!(child = ..)`: the children are executions of their own, with
/// ids derived from the parent's, linked both ways, and the parent gets their results.
async fn a_parent_awaits_its_children_and_gets_their_results<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine_with_children(store, &clock);
    let id = format!("{tag}-t");
    engine.start(trip, &id, (id.clone(), 300)).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();

    let expected = "r-300 + r-200".to_owned();
    assert_eq!(engine.result(trip, &id).await.unwrap(), Ok(expected));
    let flight = format!("{id}/flight");
    assert_eq!(engine.result(charge, &flight).await.unwrap(), Ok("r-300".to_owned()));
    let record = engine.store().load(&flight).await.unwrap().unwrap();
    assert_eq!(record.parent.as_deref(), Some(id.as_str()));
    let first = &engine.store().history(&flight).await.unwrap()[0];
    assert_eq!(
        first.detail.as_deref(),
        Some(format!("child of {id}").as_str()),
        "the child's history names its parent"
    );
    let children = engine.store().list(ListFilter { parent: Some(id.clone()), ..Default::default() }).await;
    let children: Vec<String> = children.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(children, [flight.clone(), format!("{id}/hotel")]);
    assert_eq!(count(&format!("{id}-flight/charge")), 1, "each child ran once");
    assert_eq!(count(&format!("{id}-hotel/charge")), 1);

    let history = engine.store().history(&id).await.unwrap();
    let kinds: Vec<(EventKind, Option<&str>)> =
        history.iter().map(|e| (e.kind, e.point.as_deref())).filter(|(k, _)| is_child_event(*k)).collect();
    assert_eq!(
        kinds,
        [
            (EventKind::ChildStarted, Some("flight")),
            (EventKind::ChildEnded, Some("flight")),
            (EventKind::ChildStarted, Some("hotel")),
            (EventKind::ChildEnded, Some("hotel_done")),
        ]
    );
    let started = history.iter().find(|e| e.kind == EventKind::ChildStarted).unwrap();
    assert_eq!(started.detail.as_deref(), Some(format!("charge {flight}").as_str()));
    let ended = history.iter().find(|e| e.kind == EventKind::ChildEnded).unwrap();
    assert_eq!(ended.detail.as_deref(), Some(format!("{flight} succeeded").as_str()));
    assert!(engine.store().inbox(&id).await.unwrap().is_empty(), "every notice was consumed");

    // `durable show` links them both ways.
    let view = ExecutionView::load(engine.store(), &id).await.unwrap().unwrap();
    let text = render::show(&view, 3);
    let listed = format!("children, 2:\n  succeeded  {flight} of charge\n  succeeded  {id}/hotel of charge\n");
    assert!(text.contains(&listed), "{text}");
    let report = serde_json::to_value(render::Report::new(&view, 3)).unwrap();
    assert_eq!(report["children"][0]["id"], flight.as_str(), "{report}");
    let child = ExecutionView::load(engine.store(), &flight).await.unwrap().unwrap();
    assert!(render::show(&child, 3).contains(&format!("\nparent:       {id}\n")), "{}", render::show(&child, 3));
}

fn is_child_event(kind: EventKind) -> bool {
    matches!(kind, EventKind::ChildStarted | EventKind::ChildEnded)
}

/// A child that fails hands its error to the parent, which handles it like any other value.
async fn a_failed_child_is_an_error_the_parent_handles<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine_with_children(store, &clock);
    let id = format!("{tag}-t");
    engine.start(trip, &id, (id.clone(), 5_000)).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let flight = format!("{id}/flight");
    let expected =
        format!("no trip: child workflow {flight} failed: step `charge_card` failed: 5000 is over the limit");
    assert_eq!(engine.result(trip, &id).await.unwrap(), Ok(expected));
    assert_eq!(engine.status(&flight).await.unwrap().status, Status::Failed);
    assert_eq!(engine.store().load(&format!("{id}/hotel")).await.unwrap(), None, "no hotel was started");
    let history = engine.store().history(&id).await.unwrap();
    let ended = history.iter().find(|e| e.kind == EventKind::ChildEnded).unwrap();
    assert!(ended.detail.as_deref().unwrap().starts_with(&format!("{flight} failed: ")), "{ended:?}");
}

/// A `call!` in a loop with `key = i` starts one child per round, `<parent>/part/<i>`.
async fn children_in_a_loop_have_ids_of_their_own<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine_with_children(store, &clock);
    let id = format!("{tag}-f");
    engine.start(fan, &id, (id.clone(), 3)).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let receipts = vec!["r-0".to_owned(), "r-10".to_owned(), "r-20".to_owned()];
    assert_eq!(engine.result(fan, &id).await.unwrap(), Ok(receipts));
    for i in 0..3 {
        let child = engine.store().load(&format!("{id}/part/{i}")).await.unwrap().expect("child {i}");
        assert_eq!((child.status, child.parent.as_deref()), (Status::Succeeded, Some(id.as_str())));
        assert_eq!(count(&format!("{id}-{i}/charge")), 1);
    }
}

/// While its child waits, the parent is suspended (no lease, no worker holding it); the child's
/// end makes it due, and a worker that never saw it before finishes it.
async fn a_parent_waits_without_a_worker_holding_it<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine_with_children(store, &clock);
    let id = format!("{tag}-r");
    engine.start(review, &id, id.clone()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let child = format!("{id}/approve");
    let parent = engine.store().load(&id).await.unwrap().unwrap();
    assert_eq!(parent.status, Status::Suspended);
    assert_eq!(parent.lease, None);
    assert_eq!(parent.waiting_for, Some(format!("child:{child}")));
    assert_eq!(engine.status(&child).await.unwrap().status, Status::Suspended);

    engine.send_event(&child, "decision", &true).await.unwrap();
    engine.worker("w-2").run_until_idle().await.unwrap();
    assert_eq!(engine.result(review, &id).await.unwrap(), Ok(format!("{id}-a: approved")));
}

/// Cancelling a parent cancels its unfinished children, and theirs.
async fn cancelling_a_parent_cancels_its_children<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine_with_children(store, &clock);
    let id = format!("{tag}-r");
    engine.start(review, &id, id.clone()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    engine.cancel(&id).await.unwrap();
    let child = format!("{id}/approve");
    assert_eq!(engine.status(&child).await.unwrap().status, Status::Cancelled);
    assert!(matches!(engine.cancel(&child).await, Err(EngineError::Finished { .. })));

    // Left running on request.
    let other = format!("{tag}-r2");
    engine.start(review, &other, other.clone()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    engine.cancel_leaving_children(&other).await.unwrap();
    assert_eq!(engine.status(&format!("{other}/approve")).await.unwrap().status, Status::Suspended);
}

/// A child cancelled on its own reaches its waiting parent as `ChildError::Cancelled`.
async fn a_cancelled_child_reaches_its_parent_as_an_error<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine_with_children(store, &clock);
    let id = format!("{tag}-r");
    engine.start(review, &id, id.clone()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let child = format!("{id}/approve");
    engine.cancel(&child).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(engine.result(review, &id).await.unwrap(), Ok(format!("{child} was cancelled")));
}

/// A crash right after any commit of the parent or of either child, and a resume from the
/// store alone: the same result, and each child started once.
#[tokio::test]
async fn a_crash_after_any_checkpoint_starts_no_child_twice() {
    use durable_core::testing::{CrashAt, Harness};
    let mut crashed = 0;
    for n in 1..=6 {
        for (target, suffix) in [("parent", ""), ("flight", "/flight"), ("hotel", "/hotel")] {
            let id = format!("crash-{n}-{target}");
            let mut harness = Harness::new().register(trip).register(charge);
            harness.crash_and_resume_at(&format!("{id}{suffix}"), CrashAt::Checkpoint(n));
            harness.start(trip, &id, (id.clone(), 300)).await.unwrap();
            crashed += harness.crashes();
            let result = harness.result(trip, &id).await.unwrap();
            assert_eq!(result, Some(Ok("r-300 + r-200".to_owned())), "crash after checkpoint {n} of {target}");
            let filter = ListFilter { parent: Some(id.clone()), ..ListFilter::default() };
            let children = harness.store().list(filter).await.unwrap();
            assert_eq!(children.len(), 2, "crash after checkpoint {n} of {target}");
            for child in &children {
                let history = harness.history(&child.id).await.unwrap();
                let starts = history.iter().filter(|e| e.kind == EventKind::ExecutionStarted).count();
                assert_eq!(starts, 1, "{} started once (crash after checkpoint {n} of {target})", child.id);
            }
            let parent = harness.history(&id).await.unwrap();
            let started = parent.iter().filter(|e| e.kind == EventKind::ChildStarted).count();
            assert_eq!(started, 2, "the parent recorded each start once (crash after checkpoint {n} of {target})");
            // A step body is at least once: the crash kills the process while other executions'
            // bodies run, and those run again. Checkpointed steps never do.
            assert!(count(&format!("{id}/note")) <= 2, "crash after checkpoint {n} of {target}");
        }
    }
    assert!(crashed >= 8, "the crashes happened: {crashed}");
}

/// A parent that maps over child workflows, a few at a time.
#[durable]
pub async fn charge_many(
    key: String,
    amounts: Vec<u64>,
    limit: usize,
    completion: Completion,
) -> Result<Batch<String>, WorkflowError> {
    let inputs: Vec<(String, u64)> = amounts.iter().map(|&amount| (format!("{key}-{amount}"), amount)).collect();
    let batch = map!("charges", inputs, child = charge, max_concurrency = limit, completion = completion)?;
    Ok(batch)
}

/// A parent that maps over child workflows that wait for events.
#[durable]
pub async fn approve_all(key: String, n: u64) -> Result<Batch<String>, WorkflowError> {
    let inputs: Vec<String> = (0..n).map(|i| format!("{key}-{i}")).collect();
    let batch = map!("approvals", inputs, child = approval, max_concurrency = 2)?;
    Ok(batch)
}

fn outcomes(batch: &Batch<String>) -> Vec<String> {
    batch
        .outcomes()
        .iter()
        .map(|outcome| match outcome {
            Outcome::Succeeded(value) => value.clone(),
            Outcome::Failed(_) => "failed".to_owned(),
            Outcome::NotStarted => "not started".to_owned(),
            Outcome::Cancelled => "cancelled".to_owned(),
        })
        .collect()
}

mod child_batches {
    use super::*;

    crate::support::stores!(
        children_run_as_branches_within_the_limit,
        a_policy_decides_over_child_branches,
        child_branches_that_wait_leave_the_parent_suspended,
    );
}

async fn children_run_as_branches_within_the_limit<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine_with_children(store, &clock);
    let id = format!("{tag}-m");
    let amounts = vec![10, 20, 5_000, 30, 40];
    engine.start(charge_many, &id, (id.clone(), amounts, 2, Completion::All)).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let batch = engine.result(charge_many, &id).await.unwrap().unwrap();
    assert_eq!(outcomes(&batch), ["r-10", "r-20", "failed", "r-30", "r-40"]);
    assert_eq!(batch.completed(), durable_core::Completed::AllCompleted);
    let failed = &batch.outcomes()[2];
    assert!(matches!(failed, Outcome::Failed(e) if e.message().contains("5000 is over the limit")), "{failed:?}");
    let children = engine.store().list(ListFilter { parent: Some(id.clone()), ..Default::default() }).await.unwrap();
    let mut ids: Vec<String> = children.into_iter().map(|child| child.id).collect();
    ids.sort();
    assert_eq!(ids, (0..5).map(|i| format!("{id}/charges/{i}")).collect::<Vec<_>>());
    let history = engine.store().history(&id).await.unwrap();
    assert_eq!(history.iter().filter(|e| e.kind == EventKind::BranchEnded).count(), 5, "one event per branch");
    assert!(engine.store().inbox(&id).await.unwrap().is_empty(), "every end was consumed");
}

async fn a_policy_decides_over_child_branches<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine_with_children(store, &clock);
    let id = format!("{tag}-p");
    let amounts = vec![10, 20, 30, 40, 50];
    engine.start(charge_many, &id, (id.clone(), amounts, 1, Completion::min_successful(2))).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let batch = engine.result(charge_many, &id).await.unwrap().unwrap();
    assert_eq!(outcomes(&batch), ["r-10", "r-20", "not started", "not started", "not started"]);
    assert_eq!(batch.completed(), durable_core::Completed::MinSuccessfulReached);
    assert_eq!(engine.store().load(&format!("{id}/charges/2")).await.unwrap(), None, "never started");
}

/// Child branches may wait (here for events) and run on any worker; the parent holds no
/// memory meanwhile and is woken by whichever child ends.
async fn child_branches_that_wait_leave_the_parent_suspended<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine_with_children(store, &clock);
    let id = format!("{tag}-a");
    engine.start(approve_all, &id, (id.clone(), 3)).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let parent = engine.store().load(&id).await.unwrap().unwrap();
    assert_eq!((parent.status, parent.lease.is_none()), (Status::Suspended, true));
    assert_eq!(engine.store().load(&format!("{id}/approvals/2")).await.unwrap(), None, "two at a time");
    engine.send_event(&format!("{id}/approvals/1"), "decision", &true).await.unwrap();
    engine.worker("w-2").run_until_idle().await.unwrap();
    assert_eq!(
        engine.status(&format!("{id}/approvals/2")).await.unwrap().status,
        Status::Suspended,
        "the third started"
    );
    engine.send_event(&format!("{id}/approvals/0"), "decision", &false).await.unwrap();
    engine.send_event(&format!("{id}/approvals/2"), "decision", &true).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let batch = engine.result(approve_all, &id).await.unwrap().unwrap();
    assert_eq!(
        outcomes(&batch),
        [format!("{id}-0: rejected"), format!("{id}-1: approved"), format!("{id}-2: approved")]
    );
}

/// A crash after any commit of the parent or of a child: the same outcomes, each child
/// started once.
#[tokio::test]
async fn a_crash_in_a_map_of_children_starts_no_child_twice() {
    use durable_core::testing::{CrashAt, Harness};
    let mut crashed = 0;
    for n in 2..=14 {
        for target in ["", "/charges/1"] {
            let id = format!("cm-crash-{n}-{}", target.len());
            let mut harness = Harness::new().register(charge).register(charge_many);
            harness.crash_and_resume_at(&format!("{id}{target}"), CrashAt::Event(n));
            harness.start(charge_many, &id, (id.clone(), vec![1, 2, 3, 4], 2, Completion::All)).await.unwrap();
            crashed += harness.crashes();
            let batch = harness.result(charge_many, &id).await.unwrap().unwrap().unwrap();
            assert_eq!(outcomes(&batch), ["r-1", "r-2", "r-3", "r-4"], "crash after event {n} of {id}{target}");
            for i in 0..4 {
                let history = harness.history(&format!("{id}/charges/{i}")).await.unwrap();
                let starts = history.iter().filter(|e| e.kind == EventKind::ExecutionStarted).count();
                assert_eq!(starts, 1);
            }
            let parent = harness.history(&id).await.unwrap();
            assert_eq!(parent.iter().filter(|e| e.kind == EventKind::ChildStarted).count(), 4, "{id}{target} at {n}");
            assert_eq!(parent.iter().filter(|e| e.kind == EventKind::BranchEnded).count(), 4, "{id}{target} at {n}");
        }
    }
    assert!(crashed >= 10, "the crashes happened: {crashed}");
}
