//! Durable timers: a year-long wait is a stored wake-up time, also across a restart.

use durable_core::store::{Status, Store};
use durable_core::{Clock, SqliteStore};

use crate::support::{YEAR, both, clock, count, engine, nap};

both!(a_year_long_timer_holds_no_task);

async fn a_year_long_timer_holds_no_task<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(nap, "n-1", tag.to_owned()).await.unwrap();
    let worker = engine.worker("w-1");
    assert_eq!(worker.run_until_idle().await.unwrap(), 1);
    let record = engine.store().load("n-1").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Suspended);
    assert_eq!(record.wake_at, Some(clock.now().saturating_add(YEAR)));
    assert_eq!(record.lease, None, "a suspended execution is leased to nobody");
    assert_eq!(engine.stats().running, 0, "and held by no task");

    clock.advance(YEAR - std::time::Duration::from_secs(1));
    assert_eq!(worker.run_until_idle().await.unwrap(), 0, "not due a second early");
    clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(worker.run_until_idle().await.unwrap(), 1);
    assert_eq!(engine.result(nap, "n-1").await.unwrap(), Ok(format!("{tag} rested")));
    assert_eq!((count(&format!("{tag}/before")), count(&format!("{tag}/after"))), (1, 1));
}

#[tokio::test]
async fn a_timer_fires_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let clock = clock();
    {
        let engine = engine(SqliteStore::create(&path).unwrap(), &clock);
        engine.start(nap, "n-1", "restart".to_owned()).await.unwrap();
        engine.worker("w-1").run_until_idle().await.unwrap();
        assert_eq!(engine.status("n-1").await.unwrap().status, Status::Suspended);
    }
    clock.advance(YEAR);
    let engine = engine(SqliteStore::open(&path).unwrap(), &clock);
    assert_eq!(engine.worker("w-2").run_until_idle().await.unwrap(), 1);
    assert_eq!(engine.result(nap, "n-1").await.unwrap(), Ok("restart rested".to_owned()));
    assert_eq!((count("restart/before"), count("restart/after")), (1, 1), "no step ran twice");
}

#[durable_core::durable]
async fn nap_then_flaky(tag: String) -> Result<String, durable_core::WorkflowError> {
    durable_core::wait!("short_nap", std::time::Duration::from_secs(60));
    let done = durable_core::step!(
        "flaky",
        retry = durable_core::Retry::fixed(3, std::time::Duration::from_secs(5)),
        fail_twice(&tag).await
    )?;
    Ok(done)
}

async fn fail_twice(tag: &str) -> Result<String, durable_core::StepError> {
    let n = crate::support::bump(&format!("{tag}/flaky"));
    if n <= 2 { Err(durable_core::StepError::retryable(format!("attempt {n}"))) } else { Ok(format!("{tag} done")) }
}

#[tokio::test]
async fn a_fired_timer_is_recorded_once_however_often_the_next_step_retries() {
    let clock = clock();
    let engine = durable_core::Engine::builder(durable_core::MemoryStore::new())
        .clock(std::sync::Arc::new(clock.clone()))
        .register(nap_then_flaky)
        .build()
        .unwrap();
    let worker = engine.worker("w-1");
    engine.start(nap_then_flaky, "t-1", "once".to_owned()).await.unwrap();
    worker.run_until_idle().await.unwrap();
    for _ in 0..4 {
        clock.advance(std::time::Duration::from_secs(60));
        worker.run_until_idle().await.unwrap();
    }
    assert_eq!(engine.result(nap_then_flaky, "t-1").await.unwrap(), Ok("once done".to_owned()));
    let history = engine.history("t-1").await.unwrap();
    let fired = history.iter().filter(|event| event.kind == durable_core::store::EventKind::WaitSucceeded).count();
    let failed = history.iter().filter(|event| event.kind == durable_core::store::EventKind::StepFailed).count();
    assert_eq!((fired, failed), (1, 2), "one timer, two failed attempts");
}
