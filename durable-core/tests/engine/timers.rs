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
        let engine = engine(SqliteStore::open(&path).unwrap(), &clock);
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
