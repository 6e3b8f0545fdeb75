//! `map!` and `parallel!`: branches run concurrently within a limit, each outcome committed as
//! it comes, completion policies decide; on memory, SQLite and PostgreSQL.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use durable_core::prelude::*;
use durable_core::store::{EventKind, Store};
use durable_core::{Completed, Engine, ManualClock};

use crate::support::{bump, clock, count, stores};

/// Branches running now and the most ever running at once, by key.
static RUNNING: LazyLock<Mutex<HashMap<String, (usize, usize)>>> = LazyLock::new(Default::default);

fn most_at_once(key: &str) -> usize {
    RUNNING.lock().unwrap().get(key).map_or(0, |&(_, most)| most)
}

/// A branch: charges `amount` (over 1,000 is declined), taking `amount % 7` turns of the
/// scheduler, so that branches finish in another order than they start.
async fn charge_one(key: &str, amount: u64) -> Result<String, StepError> {
    {
        let mut running = RUNNING.lock().unwrap();
        let (now, most) = running.entry(key.to_owned()).or_default();
        *now += 1;
        *most = (*most).max(*now);
    }
    for _ in 0..amount % 7 {
        tokio::task::yield_now().await;
    }
    bump(&format!("{key}/{amount}"));
    RUNNING.lock().unwrap().get_mut(key).unwrap().0 -= 1;
    if amount > 1_000 { Err(StepError::terminal(format!("{amount} declined"))) } else { Ok(format!("r-{amount}")) }
}

#[durable]
pub async fn charge_all(
    key: String,
    amounts: Vec<u64>,
    limit: usize,
    completion: Completion,
) -> Result<Batch<String>, WorkflowError> {
    let batch = map!(
        "charge",
        amounts,
        |amount| charge_one(&key, amount).await,
        max_concurrency = limit,
        completion = completion
    )?;
    Ok(batch)
}

#[durable]
pub async fn book(key: String) -> Result<Vec<String>, WorkflowError> {
    let booked = parallel!(
        "reserve",
        [
            charge_one(&format!("{key}-flight"), 300).await,
            charge_one(&format!("{key}-hotel"), 200).await,
            async { Ok::<_, StepError>("car".to_owned()) }.await
        ]
    )?;
    Ok(booked.into_result()?)
}

fn engine<S: Store>(store: S, clock: &ManualClock) -> Engine<S> {
    Engine::builder(store)
        .clock(std::sync::Arc::new(clock.clone()))
        .register(charge_all)
        .register(book)
        .build()
        .expect("the engine builds")
}

async fn run<S: Store>(
    store: S,
    key: &str,
    amounts: &[u64],
    limit: usize,
    completion: Completion,
) -> (Engine<S>, Result<Batch<String>, WorkflowError>) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(charge_all, key, (key.to_owned(), amounts.to_vec(), limit, completion)).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let result = engine.result(charge_all, key).await.unwrap();
    (engine, result)
}

fn shape(batch: &Batch<String>) -> String {
    batch
        .outcomes()
        .iter()
        .map(|outcome| match outcome {
            Outcome::Succeeded(value) => value.clone(),
            Outcome::Failed(error) => format!("failed({})", error.message()),
            Outcome::NotStarted => "not started".to_owned(),
            Outcome::Cancelled => "cancelled".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

stores!(
    every_branch_runs_within_the_limit_and_outcomes_keep_input_order,
    min_successful_stops_starting_branches,
    tolerated_failures_end_the_batch_as_a_failure,
    a_running_branch_is_cancelled_once_the_batch_is_decided,
    a_tolerated_failure_percentage_ends_the_batch,
    zero_concurrency_is_refused,
    an_empty_batch_completes_at_once,
    parallel_branches_of_one_type,
);

async fn every_branch_runs_within_the_limit_and_outcomes_keep_input_order<S: Store>(store: S, tag: &str) {
    let amounts = [13, 1, 2_000, 6, 9, 5];
    let (engine, result) = run(store, tag, &amounts, 2, Completion::All).await;
    let batch = result.unwrap();
    assert_eq!(shape(&batch), "r-13, r-1, failed(2000 declined), r-6, r-9, r-5");
    assert_eq!(batch.completed(), Completed::AllCompleted);
    assert_eq!((batch.succeeded_count(), batch.failed_count()), (5, 1));
    assert_eq!(most_at_once(tag), 2, "two at a time, never more");
    let history = engine.store().history(tag).await.unwrap();
    let ended: Vec<&str> =
        history.iter().filter(|e| e.kind == EventKind::BranchEnded).map(|e| e.detail.as_deref().unwrap()).collect();
    assert_eq!(ended.len(), 6, "one event per branch: {ended:?}");
    assert_ne!(ended[0], "0 succeeded", "the first to finish is not the first started: {ended:?}");
    assert!(engine.store().inbox(tag).await.unwrap().is_empty(), "the stored outcomes were dropped at the end");
    assert!(batch.clone().into_result().unwrap_err().message().contains("2000 declined"));
}

async fn min_successful_stops_starting_branches<S: Store>(store: S, tag: &str) {
    let amounts = [2_000, 10, 20, 30, 40];
    let (_, result) = run(store, tag, &amounts, 1, Completion::min_successful(2)).await;
    let batch = result.unwrap();
    assert_eq!(shape(&batch), "failed(2000 declined), r-10, r-20, not started, not started");
    assert_eq!(batch.completed(), Completed::MinSuccessfulReached);
    assert_eq!(batch.succeeded(), [(1, &"r-10".to_owned()), (2, &"r-20".to_owned())]);
    assert_eq!(count(&format!("{tag}/30")), 0, "a branch not started never ran");
}

/// A branch still running when the policy decides is cancelled where it stands: 6 turns of
/// the scheduler (amount 13) against 1 (amount 1), two at a time.
async fn a_running_branch_is_cancelled_once_the_batch_is_decided<S: Store>(store: S, tag: &str) {
    let amounts = [13, 1, 20];
    let (_, result) = run(store, tag, &amounts, 2, Completion::min_successful(1)).await;
    let batch = result.unwrap();
    assert_eq!(shape(&batch), "cancelled, r-1, not started");
    assert_eq!(batch.completed(), Completed::MinSuccessfulReached);
    assert_eq!(count(&format!("{tag}/13")), 0, "the cancelled branch never got past its awaits");
}

async fn tolerated_failures_end_the_batch_as_a_failure<S: Store>(store: S, tag: &str) {
    let amounts = [2_001, 10, 3_001, 20, 30];
    let (_, result) = run(store, tag, &amounts, 1, Completion::tolerated_failures(1)).await;
    let batch = result.unwrap();
    assert_eq!(shape(&batch), "failed(2001 declined), r-10, failed(3001 declined), not started, not started");
    assert_eq!(batch.completed(), Completed::FailureToleranceExceeded);
}

async fn a_tolerated_failure_percentage_ends_the_batch<S: Store>(store: S, tag: &str) {
    // 1 of 4 is 25 %, tolerated; the second failure is 50 %.
    let amounts = [10, 2_001, 20, 3_001];
    let (_, result) = run(store, tag, &amounts, 1, Completion::tolerated_failure_percentage(25.0)).await;
    let batch = result.unwrap();
    assert_eq!(shape(&batch), "r-10, failed(2001 declined), r-20, failed(3001 declined)");
    assert_eq!(batch.completed(), Completed::FailureToleranceExceeded);
    let (_, result) = run_again(tag, &[10, 2_001, 20, 30]).await;
    assert_eq!(result.unwrap().completed(), Completed::AllCompleted);
}

async fn run_again(
    tag: &str,
    amounts: &[u64],
) -> (Engine<durable_core::MemoryStore>, Result<Batch<String>, WorkflowError>) {
    let key = format!("{tag}-again");
    run(durable_core::MemoryStore::new(), &key, amounts, 1, Completion::tolerated_failure_percentage(25.0)).await
}

async fn zero_concurrency_is_refused<S: Store>(store: S, tag: &str) {
    let (_, result) = run(store, tag, &[1, 2], 0, Completion::All).await;
    let error = result.unwrap_err();
    assert!(error.to_string().contains("max_concurrency must be at least 1"), "{error}");
    assert_eq!(count(&format!("{tag}/1")), 0, "nothing ran");
}

async fn an_empty_batch_completes_at_once<S: Store>(store: S, tag: &str) {
    let (_, result) = run(store, tag, &[], 3, Completion::min_successful(1)).await;
    let batch = result.unwrap();
    assert!(batch.outcomes().is_empty());
    assert_eq!(batch.completed(), Completed::AllCompleted);
}

async fn parallel_branches_of_one_type<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(book, tag, tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let booked = vec!["r-300".to_owned(), "r-200".to_owned(), "car".to_owned()];
    assert_eq!(engine.result(book, tag).await.unwrap(), Ok(booked));
}

/// A crash after any commit (the items', each branch's, the result's): no branch whose outcome
/// was committed runs again, and the result is the same.
#[tokio::test]
async fn a_crash_after_any_commit_runs_no_finished_branch_again() {
    use durable_core::testing::{CrashAt, Harness};
    let amounts = vec![5, 2_000, 3, 8];
    let mut crashed = 0;
    for n in 2..=9 {
        let id = format!("batch-crash-{n}");
        let mut harness = Harness::new().register(charge_all);
        harness.crash_and_resume_at(&id, CrashAt::Event(n));
        harness.start(charge_all, &id, (id.clone(), amounts.clone(), 1, Completion::All)).await.unwrap();
        let batch = harness.result(charge_all, &id).await.unwrap().unwrap().unwrap();
        assert_eq!(shape(&batch), "r-5, failed(2000 declined), r-3, r-8", "crash {n}");
        // A branch whose outcome was committed never runs again (it would commit a second
        // outcome); the one in flight when the process died runs again, as a step would.
        let history = harness.history(&id).await.unwrap();
        let ended: Vec<&str> =
            history.iter().filter(|e| e.kind == EventKind::BranchEnded).map(|e| e.detail.as_deref().unwrap()).collect();
        assert_eq!(ended.len(), amounts.len(), "one outcome per branch (crash after commit {n}): {ended:?}");
        let runs: u32 = amounts.iter().map(|amount| count(&format!("{id}/{amount}"))).sum();
        assert!(runs <= amounts.len() as u32 + 1, "at most the branch in flight ran twice: {runs}");
        assert!(harness.crashes() <= 1);
        crashed += harness.crashes();
    }
    assert!(crashed >= 7, "the crashes happened: {crashed}");
}

/// A batch of 10,000 branches runs, with one history event per branch.
#[tokio::test]
async fn ten_thousand_branches() {
    let amounts: Vec<u64> = (0..10_000).map(|i| i % 1_000).collect();
    let (engine, result) = run(durable_core::MemoryStore::new(), "big", &amounts, 64, Completion::All).await;
    let batch = result.unwrap();
    assert_eq!(batch.succeeded_count(), 10_000);
    assert_eq!(batch.outcomes()[9_999], Outcome::Succeeded("r-999".to_owned()));
    let history = engine.store().history("big").await.unwrap();
    assert_eq!(history.iter().filter(|e| e.kind == EventKind::BranchEnded).count(), 10_000);
    assert!(most_at_once("big") <= 64);
}
