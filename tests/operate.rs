//! The operators' controls (redrive, rewind, wake, cancel with a reason, purge) on every store:
//! in memory, SQLite and PostgreSQL, on a virtual clock (nothing here sleeps or times out).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use durable_core::engine::{Operator, PurgeFilter};
use durable_core::prelude::*;
use durable_core::store::{EventKind, PostgresOptions, Status};
use durable_core::testing::postgres::{SchemaGuard, server, unique_schema};
use durable_core::{Clock, Engine, EngineError, ManualClock, PostgresStore, Store, Timestamp};

/// How often each step body ran, by `<execution>/<step>`.
static RUNS: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());
/// Executions whose `ship` step fails.
static BROKEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn ran(what: String) -> u32 {
    let mut runs = RUNS.lock().unwrap_or_else(PoisonError::into_inner);
    let count = runs.entry(what).or_default();
    *count += 1;
    *count
}

fn runs(id: &str, step: &str) -> u32 {
    RUNS.lock().unwrap_or_else(PoisonError::into_inner).get(&format!("{id}/{step}")).copied().unwrap_or(0)
}

fn set_broken(id: &str, broken: bool) {
    let mut set = BROKEN.lock().unwrap_or_else(PoisonError::into_inner);
    if broken {
        set.insert(id.to_owned())
    } else {
        set.remove(id)
    };
}

async fn count<T>(id: &str, step: &str, value: T) -> Result<T, std::io::Error> {
    ran(format!("{id}/{step}"));
    Ok(value)
}

async fn ship(id: &str) -> Result<String, StepError> {
    ran(format!("{id}/ship"));
    if BROKEN.lock().unwrap_or_else(PoisonError::into_inner).contains(id) {
        return Err(StepError::terminal("the carrier refused the parcel"));
    }
    Ok(format!("T-{id}"))
}

/// Fails at its first attempt, succeeds at the next.
async fn flaky(id: &str) -> Result<u32, StepError> {
    let attempt = ran(format!("{id}/flaky"));
    if attempt == 1 { Err(StepError::retryable("not yet")) } else { Ok(attempt) }
}

#[durable]
async fn shipping(id: String) -> Result<String, WorkflowError> {
    let price = step!("price", count(&id, "price", 30u64).await)?;
    let label = step!("label", count(&id, "label", format!("L-{id}")).await)?;
    let tracking = step!("ship", ship(&id).await)?;
    Ok(format!("{label} {price} {tracking}"))
}

#[durable]
async fn patient(id: String) -> Result<u32, WorkflowError> {
    wait!("cool_off", Duration::from_secs(3600));
    let attempts = step!("flaky", retry = Retry::fixed(3, Duration::from_secs(3600)), flaky(&id).await)?;
    let _paid: u64 = wait!("payment", event);
    Ok(attempts)
}

fn alice() -> Operator {
    Operator::new("alice", "the carrier's API is back")
}

/// An engine on `store`, on a virtual clock, and that clock.
fn engine<S: Store>(store: S) -> (Engine<S>, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let engine =
        Engine::builder(store).clock(Arc::new(clock.clone())).register(shipping).register(patient).build().unwrap();
    (engine, clock)
}

async fn last_event<S: Store>(engine: &Engine<S>, id: &str) -> durable_core::store::HistoryEvent {
    engine.history(id).await.unwrap().pop().unwrap()
}

/// A failed execution, redriven once the cause is fixed, goes on from its last checkpoint: the
/// steps that succeeded do not run again. Redriving anything else is refused.
async fn redrive_goes_on_from_the_last_checkpoint<S: Store>(store: S, tag: &str) {
    let (engine, _clock) = engine(store);
    let worker = engine.worker("w-1");
    let id = format!("{tag}-redrive");
    set_broken(&id, true);
    engine.start(shipping, &id, id.clone()).await.unwrap();
    worker.run_until_idle().await.unwrap();
    assert_eq!(engine.status(&id).await.unwrap().status, Status::Failed);

    let unknown = engine.redrive(&format!("{tag}-nobody"), &alice()).await;
    assert!(matches!(unknown, Err(EngineError::UnknownExecution(_))), "{unknown:?}");
    let empty = engine.redrive(&id, &Operator::new("", "x")).await;
    assert!(matches!(empty, Err(EngineError::InvalidRequest(_))), "{empty:?}");

    set_broken(&id, false);
    let reopened = engine.redrive(&id, &alice()).await.unwrap();
    assert_eq!(reopened.status, Status::Running);
    let redriven = last_event(&engine, &id).await;
    assert_eq!(redriven.kind, EventKind::ExecutionRedriven);
    assert_eq!(redriven.point.as_deref(), Some("label"));
    let detail = redriven.detail.unwrap();
    assert!(detail.contains("by alice: the carrier's API is back"), "{detail}");

    let again = engine.redrive(&id, &alice()).await;
    assert!(
        matches!(&again, Err(EngineError::Refused { action: "redrive", why, .. }) if why.contains("running")),
        "{again:?}"
    );

    worker.run_until_idle().await.unwrap();
    assert_eq!(engine.result(shipping, &id).await.unwrap(), Ok(format!("L-{id} 30 T-{id}")));
    assert_eq!((runs(&id, "price"), runs(&id, "label"), runs(&id, "ship")), (1, 1, 2));
    let done = engine.redrive(&id, &alice()).await;
    assert!(matches!(&done, Err(EngineError::Refused { why, .. }) if why.contains("succeeded")), "{done:?}");
}

/// Redriving from an earlier checkpoint (a history seq) runs again what came after it; a seq
/// that is not a checkpoint is refused.
async fn redrive_from_an_earlier_checkpoint<S: Store>(store: S, tag: &str) {
    let (engine, _clock) = engine(store);
    let worker = engine.worker("w-1");
    let id = format!("{tag}-rewind");
    set_broken(&id, true);
    engine.start(shipping, &id, id.clone()).await.unwrap();
    worker.run_until_idle().await.unwrap();
    let history = engine.history(&id).await.unwrap();
    let after_price =
        history.iter().find(|e| e.kind == EventKind::StepSucceeded && e.point.as_deref() == Some("price"));
    let seq = after_price.unwrap().seq;
    let last = history.last().unwrap().seq;

    let refused = engine.redrive_from(&id, last, &alice()).await;
    assert!(
        matches!(&refused, Err(EngineError::Refused { why, .. }) if why.contains("not a checkpoint")),
        "{refused:?}"
    );
    set_broken(&id, false);
    engine.redrive_from(&id, seq, &alice()).await.unwrap();
    worker.run_until_idle().await.unwrap();
    assert_eq!(engine.result(shipping, &id).await.unwrap(), Ok(format!("L-{id} 30 T-{id}")));
    assert_eq!((runs(&id, "price"), runs(&id, "label"), runs(&id, "ship")), (1, 2, 2));

    // From the start (seq 1): every step again, and a cancelled execution can be redriven too.
    let id = format!("{tag}-restart");
    engine.start(shipping, &id, id.clone()).await.unwrap();
    engine.cancel_by(&id, &Operator::new("bob", "duplicate order")).await.unwrap();
    let cancelled = last_event(&engine, &id).await;
    assert_eq!(
        (cancelled.kind, cancelled.detail.as_deref()),
        (EventKind::ExecutionCancelled, Some("by bob: duplicate order"))
    );
    engine.redrive_from(&id, 1, &alice()).await.unwrap();
    worker.run_until_idle().await.unwrap();
    assert_eq!(engine.status(&id).await.unwrap().status, Status::Succeeded);
    assert_eq!(runs(&id, "price"), 1);
}

/// Waking an execution early fires its timer, then starts its step's next attempt at once;
/// waking one that is not suspended, or waits for an event, is refused.
async fn wake_fires_timers_and_retries_early<S: Store>(store: S, tag: &str) {
    let (engine, clock) = engine(store);
    let worker = engine.worker("w-1");
    let id = format!("{tag}-wake");
    let start = clock.now();
    engine.start(patient, &id, id.clone()).await.unwrap();
    worker.run_until_idle().await.unwrap();
    let status = engine.status(&id).await.unwrap();
    assert_eq!(status.status, Status::Suspended);

    engine.wake(&id, &Operator::new("carol", "customer called")).await.unwrap();
    let woken = last_event(&engine, &id).await;
    assert_eq!(woken.kind, EventKind::ExecutionWoken);
    assert!(woken.detail.as_deref().unwrap().contains("by carol: customer called"));
    worker.run_until_idle().await.unwrap();
    // Past the timer, the step failed once and waits an hour for its next attempt.
    assert_eq!(runs(&id, "flaky"), 1);
    let status = engine.status(&id).await.unwrap();
    assert_eq!(status.status, Status::Suspended);

    engine.wake(&id, &alice()).await.unwrap();
    worker.run_until_idle().await.unwrap();
    assert_eq!(runs(&id, "flaky"), 2);
    assert_eq!(clock.now(), start, "no time passed");

    // Now it waits for an event: waking is refused, it needs the event.
    let refused = engine.wake(&id, &alice()).await;
    assert!(
        matches!(&refused, Err(EngineError::Refused { why, .. }) if why.contains("event `payment`")),
        "{refused:?}"
    );
    engine.send_event(&id, "payment", &5u64).await.unwrap();
    worker.run_until_idle().await.unwrap();
    assert_eq!(engine.result(patient, &id).await.unwrap(), Ok(2));
    let finished = engine.wake(&id, &alice()).await;
    assert!(matches!(finished, Err(EngineError::Refused { action: "wake", .. })), "{finished:?}");
    let unknown = engine.wake(&format!("{tag}-nobody"), &alice()).await;
    assert!(matches!(unknown, Err(EngineError::UnknownExecution(_))), "{unknown:?}");
}

/// Purge deletes finished executions older than the given age, by workflow and status, and
/// never one that has not finished.
async fn purge_deletes_old_finished_executions<S: Store>(store: S, tag: &str) {
    let (engine, clock) = engine(store);
    let worker = engine.worker("w-1");
    let (ok, failed, waiting) = (format!("{tag}-p-ok"), format!("{tag}-p-failed"), format!("{tag}-p-waiting"));
    set_broken(&failed, true);
    for id in [&ok, &failed] {
        engine.start(shipping, id, id.clone()).await.unwrap();
    }
    engine.start(patient, &waiting, waiting.clone()).await.unwrap();
    worker.run_until_idle().await.unwrap();
    clock.advance(Duration::from_secs(40 * 86_400));
    let recent = format!("{tag}-p-recent");
    engine.start(shipping, &recent, recent.clone()).await.unwrap();
    worker.run_until_idle().await.unwrap();

    let by = Operator::new("ops", "retention");
    let month = Duration::from_secs(30 * 86_400);
    let unfinished = PurgeFilter { older_than: month, workflow: None, status: Some(Status::Suspended) };
    let refused = engine.purge(&unfinished, &by).await;
    assert!(matches!(refused, Err(EngineError::Refused { action: "purge", .. })), "{refused:?}");
    let succeeded =
        PurgeFilter { older_than: month, workflow: Some("shipping".to_owned()), status: Some(Status::Succeeded) };
    assert_eq!(engine.purge(&succeeded, &by).await.unwrap(), 1);
    assert!(matches!(engine.status(&ok).await, Err(EngineError::UnknownExecution(_))));
    assert!(engine.status(&failed).await.is_ok());
    let any = PurgeFilter { older_than: month, workflow: None, status: None };
    assert_eq!(engine.purge(&any, &by).await.unwrap(), 1);
    assert!(matches!(engine.history(&failed).await, Err(EngineError::UnknownExecution(_))));
    // The suspended one is old but not finished; the recent one is finished but not old.
    assert_eq!(engine.status(&waiting).await.unwrap().status, Status::Suspended);
    assert_eq!(engine.status(&recent).await.unwrap().status, Status::Succeeded);
    assert_eq!(engine.purge(&any, &by).await.unwrap(), 0);
}

macro_rules! on_every_store {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(durable_core::MemoryStore::new(), concat!("mem-", stringify!($check))).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = durable_core::SqliteStore::create(dir.path().join("ops.db")).unwrap();
                    super::$check(store, concat!("sqlite-", stringify!($check))).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some((store, _guard)) = super::postgres_store(stringify!($check)).await else { return };
                    super::$check(store, concat!("pg-", stringify!($check))).await;
                }
            )*
        }
    };
}

on_every_store!(
    redrive_goes_on_from_the_last_checkpoint,
    redrive_from_an_earlier_checkpoint,
    wake_fires_timers_and_retries_early,
    purge_deletes_old_finished_executions,
);

async fn postgres_store(tag: &str) -> Option<(PostgresStore, SchemaGuard)> {
    let url = server().await?;
    let schema = unique_schema(&tag[..tag.len().min(12)]);
    let guard = SchemaGuard::new(&url, &schema);
    let options = PostgresOptions { schema, ..PostgresOptions::default() };
    Some((PostgresStore::connect_with(&url, options).await.expect("the test server"), guard))
}

/// The command line's controls, on a store an engine (with the workflows) shares with it: the
/// command line has none of the workflows' code, the engine's worker runs what it redrives. The
/// command line reads the system clock; the engine's virtual clock starts 40 days earlier and
/// is moved to the present half-way, so that what finished before is old enough to purge.
async fn command_line_controls<S: Store>(store: S, tag: &str, database: &[String]) {
    let past = durable_core::SystemClock.now().as_millis() - 40 * 86_400_000;
    let clock = ManualClock::new(Timestamp::from_millis(past));
    let engine =
        Engine::builder(store).clock(Arc::new(clock.clone())).register(shipping).register(patient).build().unwrap();
    let worker = engine.worker("w-1");
    let durable = |args: &[&str]| {
        let mut all: Vec<String> = vec!["durable".to_owned()];
        all.extend(database.iter().cloned());
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        async move { durable_core::cli::run_args(all).await }
    };
    let (broken, sleepy, doomed) = (format!("{tag}-broken"), format!("{tag}-sleepy"), format!("{tag}-doomed"));
    set_broken(&broken, true);
    engine.start(shipping, &broken, broken.clone()).await.unwrap();
    engine.start(patient, &doomed, doomed.clone()).await.unwrap();
    worker.run_until_idle().await.unwrap();

    // Refusals are errors with the engine's message.
    let refused = durable(&["redrive", &doomed]).await.unwrap_err().to_string();
    assert!(refused.contains("only a failed or cancelled execution can be redriven"), "{refused}");
    let unknown = durable(&["wake", "nobody"]).await.unwrap_err().to_string();
    assert!(unknown.contains("nobody"), "{unknown}");

    set_broken(&broken, false);
    let out = durable(&["redrive", &broken, "--reason", "carrier fixed", "--by", "alice"]).await.unwrap();
    assert!(out.contains("redriven") && out.contains("running"), "{out}");
    worker.run_until_idle().await.unwrap();
    assert_eq!(engine.status(&broken).await.unwrap().status, Status::Succeeded);
    assert_eq!(runs(&broken, "price"), 1);
    let history = durable(&["history", &broken]).await.unwrap();
    assert!(history.contains("ExecutionRedriven") && history.contains("by alice: carrier fixed"), "{history}");

    durable(&["cancel", &doomed, "--reason", "test order", "--by", "bob"]).await.unwrap();
    let event = engine.history(&doomed).await.unwrap().pop().unwrap();
    assert_eq!((event.kind, event.detail.as_deref()), (EventKind::ExecutionCancelled, Some("by bob: test order")));

    // In the present: a timer an hour away, woken now.
    clock.advance(Duration::from_secs(40 * 86_400));
    engine.start(patient, &sleepy, sleepy.clone()).await.unwrap();
    worker.run_until_idle().await.unwrap();
    let out = durable(&["wake", &sleepy, "--reason", "now please", "--json"]).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["id"], sleepy.as_str());
    // The command line's "now" is a few milliseconds past the virtual clock's.
    clock.advance(Duration::from_secs(60));
    worker.run_until_idle().await.unwrap();
    assert_eq!(runs(&sleepy, "flaky"), 1, "the timer fired early");

    let sent = durable(&["send-event", &sleepy, "payment", "3"]).await.unwrap();
    assert!(sent.contains("queued"), "{sent}");

    let bad = durable(&["purge", "--older-than", "30y"]).await.unwrap_err().to_string();
    assert!(bad.contains("not an age"), "{bad}");
    let purged = durable(&["purge", "--older-than", "30d", "--status", "succeeded"]).await.unwrap();
    assert_eq!(purged, "purged 1 executions\n");
    assert!(engine.store().load(&broken).await.unwrap().is_none());
    assert!(engine.store().load(&doomed).await.unwrap().is_some(), "cancelled just now: not old enough");
}

#[tokio::test]
async fn command_line_controls_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cli.db");
    let store = durable_core::SqliteStore::create(&path).unwrap();
    command_line_controls(store, "cli-sqlite", &["--database".to_owned(), path.display().to_string()]).await;
}

#[tokio::test]
async fn command_line_controls_on_postgres() {
    let Some(url) = server().await else { return };
    let schema = unique_schema("cli_ops");
    let _guard = SchemaGuard::new(&url, &schema);
    let options = PostgresOptions { schema: schema.clone(), ..PostgresOptions::default() };
    let store = PostgresStore::connect_with(&url, options).await.expect("the test server");
    let database = ["--database".to_owned(), url.clone(), "--schema".to_owned(), schema.clone()];
    command_line_controls(store, "cli-pg", &database).await;
}
