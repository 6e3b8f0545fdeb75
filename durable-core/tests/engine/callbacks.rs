//! Callbacks: a token handed out by a submitter step, completed (or failed) by an external
//! system, with a timeout and heartbeats; on memory, SQLite and PostgreSQL.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use durable_core::prelude::*;
use durable_core::render::{self, ExecutionView};
use durable_core::store::{EventKind, Status, Store};
use durable_core::{CallbackFailure, Delivery, Engine, EngineError, ManualClock};

use crate::support::{HOUR, arm_gate, bump, clock, count, gate, stores};

const MINUTE: Duration = Duration::from_secs(60);

/// Every token a submitter handed out, by key, in order.
static TOKENS: LazyLock<Mutex<HashMap<String, Vec<String>>>> = LazyLock::new(Default::default);

/// The submitter: hands `token` to "the payment provider" (here, a map the test reads).
async fn hand_out(key: &str, token: String) -> Result<(), std::io::Error> {
    bump(&format!("{key}/submit"));
    TOKENS.lock().unwrap().entry(key.to_owned()).or_default().push(token);
    gate(key).await;
    Ok(())
}

fn token_of(key: &str) -> String {
    TOKENS.lock().unwrap()[key].last().cloned().expect("a token was handed out")
}

#[durable]
pub async fn checkout(key: String) -> Result<String, WorkflowError> {
    let paid: Result<u64, CallbackError> =
        wait!("payment", callback = |token| hand_out(&key, token).await, timeout = HOUR);
    match paid {
        Ok(amount) => Ok(format!("{key}: paid {amount}")),
        Err(error) => Ok(format!("{key}: {error}")),
    }
}

#[durable]
pub async fn long_job(key: String) -> Result<String, WorkflowError> {
    let done: Result<String, CallbackError> =
        wait!("job", callback = |token| hand_out(&key, token).await, heartbeat = MINUTE);
    Ok(match done {
        Ok(report) => report,
        Err(error) => error.to_string(),
    })
}

fn engine<S: Store>(store: S, clock: &ManualClock) -> Engine<S> {
    Engine::builder(store)
        .clock(std::sync::Arc::new(clock.clone()))
        .register(checkout)
        .register(long_job)
        .build()
        .expect("the engine builds")
}

stores!(
    a_completed_callback_resumes_the_wait_with_its_value,
    a_failure_is_reported_as_a_failure,
    a_callback_times_out_and_the_deadline_decides,
    heartbeats_keep_a_wait_alive_and_their_absence_times_it_out,
    a_wrong_payload_is_refused_and_the_wait_goes_on,
    tokens_that_are_not_awaited_are_refused,
    a_completion_while_the_submitter_runs_is_kept,
);

async fn a_completed_callback_resumes_the_wait_with_its_value<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(checkout, tag, tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(count(&format!("{tag}/submit")), 1);
    let record = engine.store().load(tag).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Suspended);
    let token = token_of(tag);
    assert!(!record.waiting_for.as_deref().unwrap().contains(&token[token.len() - 32..]), "no token in the record");

    // `durable show` never shows the token whole.
    let view = ExecutionView::load(engine.store(), tag).await.unwrap().unwrap();
    let text = render::show(&view, 10);
    assert!(!text.contains(&token[token.len() - 32..]), "{text}");
    assert!(text.contains("dcb1."), "{text}");
    // `durable list` says which callback it waits for, not the digest it is stored under.
    let listed = render::list(std::slice::from_ref(&record), |_| Vec::new());
    assert!(listed.contains("callback payment"), "{listed}");
    assert!(!listed.contains("callback:"), "{listed}");

    assert_eq!(engine.complete_callback(&token, Ok(&42u64)).await.unwrap(), Delivery::Delivered);
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(engine.result(checkout, tag).await.unwrap(), Ok(format!("{tag}: paid 42")));
    let history = engine.store().history(tag).await.unwrap();
    let kinds: Vec<EventKind> = history.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::WaitStarted) && kinds.contains(&EventKind::EventReceived), "{kinds:?}");

    // Once only.
    let again = engine.complete_callback(&token, Ok(&43u64)).await.unwrap_err();
    assert!(matches!(&again, EngineError::UnknownCallback { .. }), "{again}");
    assert!(!again.to_string().contains(&token[token.len() - 32..]), "errors mask the token: {again}");
}

async fn a_failure_is_reported_as_a_failure<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(checkout, tag, tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let failure = CallbackFailure::new("card_declined", "the card was declined");
    engine.complete_callback::<u64>(&token_of(tag), Err(failure)).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let expected = format!("{tag}: callback `payment` failed: card_declined: the card was declined");
    assert_eq!(engine.result(checkout, tag).await.unwrap(), Ok(expected));
}

async fn a_callback_times_out_and_the_deadline_decides<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(checkout, tag, tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    clock.advance(HOUR);
    // No worker acted on the timeout yet: the deadline decides all the same.
    let late = engine.complete_callback(&token_of(tag), Ok(&42u64)).await.unwrap_err();
    assert!(matches!(late, EngineError::DeadlinePassed { .. }), "{late}");
    engine.worker("w-1").run_until_idle().await.unwrap();
    let expected = format!("{tag}: callback `payment` was not completed before its timeout");
    assert_eq!(engine.result(checkout, tag).await.unwrap(), Ok(expected));
    let after = engine.complete_callback(&token_of(tag), Ok(&42u64)).await.unwrap_err();
    assert!(after.to_string().contains("its execution has finished"), "{after}");
}

async fn heartbeats_keep_a_wait_alive_and_their_absence_times_it_out<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(long_job, tag, tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let token = token_of(tag);
    clock.advance(Duration::from_secs(50));
    engine.heartbeat_callback(&token).await.unwrap();
    clock.advance(Duration::from_secs(50));
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(engine.status(tag).await.unwrap().status, Status::Suspended, "the heartbeat at 50s kept it alive");
    clock.advance(Duration::from_secs(5));
    engine.heartbeat_callback(&token).await.unwrap();
    clock.advance(Duration::from_secs(50));
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(engine.status(tag).await.unwrap().status, Status::Suspended, "and the one at 105s");
    clock.advance(Duration::from_secs(20));
    engine.worker("w-1").run_until_idle().await.unwrap();
    let expected = "callback `job` timed out: no heartbeat for 60s".to_owned();
    assert_eq!(engine.result(long_job, tag).await.unwrap(), Ok(expected));
    assert!(engine.store().inbox(tag).await.unwrap().is_empty(), "the heartbeats were consumed");
}

async fn a_wrong_payload_is_refused_and_the_wait_goes_on<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(checkout, tag, tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let token = token_of(tag);
    let wrong = engine.complete_callback(&token, Ok(&"forty-two")).await.unwrap_err();
    assert!(matches!(wrong, EngineError::EventRejected { .. }), "{wrong}");
    assert_eq!(engine.status(tag).await.unwrap().status, Status::Suspended);
    engine.complete_callback(&token, Ok(&42u64)).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(engine.result(checkout, tag).await.unwrap(), Ok(format!("{tag}: paid 42")));
}

async fn tokens_that_are_not_awaited_are_refused<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(checkout, tag, tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let token = token_of(tag);
    // The same execution, another 128 random bits: a guess.
    let (head, _) = token.rsplit_once('.').unwrap();
    let guessed = format!("{head}.{:032x}", 0x5eed_u128);
    for bad in [guessed.as_str(), "not a token", "dcb1.6e6f626f6479.00000000000000000000000000000000"] {
        let error = engine.complete_callback(bad, Ok(&1u64)).await.unwrap_err();
        assert!(matches!(error, EngineError::UnknownCallback { .. }), "{bad}: {error}");
        let error = engine.heartbeat_callback(bad).await.unwrap_err();
        assert!(matches!(error, EngineError::UnknownCallback { .. }), "{bad}: {error}");
    }
    assert!(engine.store().inbox(tag).await.unwrap().is_empty(), "nothing was stored");
    assert_eq!(engine.status(tag).await.unwrap().status, Status::Suspended);
}

/// The external system may answer before the submitter has returned: the token is stored (and
/// awaited) before the submitter runs, so the completion is kept and taken by the wait.
async fn a_completion_while_the_submitter_runs_is_kept<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = std::sync::Arc::new(engine(store, &clock));
    engine.start(checkout, tag, tag.to_owned()).await.unwrap();
    let gate = arm_gate(tag);
    let worker = tokio::spawn({
        let engine = std::sync::Arc::clone(&engine);
        async move { engine.worker("w-1").run_until_idle().await }
    });
    gate.entered.notified().await;
    // The submitter has handed the token out and not returned yet.
    assert_eq!(engine.complete_callback(&token_of(tag), Ok(&7u64)).await.unwrap(), Delivery::Queued);
    gate.release.notify_one();
    worker.await.unwrap().unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(engine.result(checkout, tag).await.unwrap(), Ok(format!("{tag}: paid 7")));
}

/// A crash after any commit: the submitter may run again, but always with the same token, and
/// the callback completes with it.
#[tokio::test]
async fn a_crash_after_any_checkpoint_keeps_the_token() {
    use durable_core::testing::{CrashAt, Harness};
    for n in 1..=4 {
        let id = format!("cb-crash-{n}");
        let mut harness = Harness::new().register(checkout);
        harness.crash_and_resume_at(&id, CrashAt::Checkpoint(n));
        harness.start(checkout, &id, id.clone()).await.unwrap();
        let tokens = TOKENS.lock().unwrap()[&id].clone();
        assert!(tokens.iter().all(|token| *token == tokens[0]), "one token, however often submitted: {tokens:?}");
        harness.engine().complete_callback(&tokens[0], Ok(&5u64)).await.unwrap();
        harness.settle().await.unwrap();
        assert_eq!(harness.result(checkout, &id).await.unwrap(), Some(Ok(format!("{id}: paid 5"))), "crash {n}");
    }
}

/// `durable complete-callback` and `durable heartbeat-callback`: the token from the command
/// line, the execution in a SQLite file.
#[cfg(feature = "cli")]
#[tokio::test]
async fn the_command_line_completes_and_fails_callbacks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callbacks.db");
    let engine = Engine::builder(durable_core::SqliteStore::create(&path).unwrap()).register(checkout).build().unwrap();
    for (key, args) in
        [("cli-cb-paid", vec!["21"]), ("cli-cb-declined", vec!["--error-type", "declined", "--message", "no funds"])]
    {
        engine.start(checkout, key, key.to_owned()).await.unwrap();
        engine.worker("w").run_until_idle().await.unwrap();
        let token = token_of(key);
        let out = crate::support::durable_cli(&path, &["heartbeat-callback", &token]).await.unwrap();
        assert!(out.contains("heartbeat recorded") && !out.contains(&token[token.len() - 32..]), "{out}");
        let mut complete = vec!["complete-callback", token.as_str()];
        complete.extend(args.iter().copied());
        let out = crate::support::durable_cli(&path, &complete).await.unwrap();
        assert!(out.contains("completed (queued)"), "{out}");
        engine.worker("w").run_until_idle().await.unwrap();
    }
    assert_eq!(engine.result(checkout, "cli-cb-paid").await.unwrap(), Ok("cli-cb-paid: paid 21".to_owned()));
    let declined = engine.result(checkout, "cli-cb-declined").await.unwrap().unwrap();
    assert_eq!(declined, "cli-cb-declined: callback `payment` failed: declined: no funds");
    let unknown =
        crate::support::durable_cli(&path, &["complete-callback", "dcb1.00.00000000000000000000000000000000"])
            .await
            .unwrap_err();
    assert!(unknown.to_string().contains("cannot be completed"), "{unknown}");
}
