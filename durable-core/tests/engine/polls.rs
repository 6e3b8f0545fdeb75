//! Waiting for a condition: one point that polls, durably apart, carrying a state.

use std::time::Duration;

use durable_core::prelude::*;
use durable_core::store::{EventKind, Status, Store};
use durable_core::{Engine, ManualClock};

use crate::support::{bump, clock, count, stores};

const MINUTE: Duration = Duration::from_secs(60);

/// A carrier's tracking: shipped at the `ready`-th look; each poll carries how often it looked.
async fn track(key: &str, looked: u32, ready: u32) -> Result<Check<u32, String>, std::io::Error> {
    bump(&format!("{key}/track"));
    if key.ends_with("-broken") && looked == 1 {
        return Err(std::io::Error::other("carrier is down"));
    }
    Ok(if looked + 1 >= ready {
        Check::Done(format!("shipped after {} looks", looked + 1))
    } else {
        Check::NotYet(looked + 1)
    })
}

#[durable]
pub async fn delivery(key: String, ready: u32) -> Result<String, WorkflowError> {
    let shipped = wait!(
        "shipped",
        until = |looked| track(&key, looked, ready).await,
        state = 0u32,
        schedule = Retry::fixed(4, MINUTE)
    );
    Ok(match shipped {
        Ok(how) => how,
        Err(error) => error.to_string(),
    })
}

fn engine<S: Store>(store: S, clock: &ManualClock) -> Engine<S> {
    Engine::builder(store).clock(std::sync::Arc::new(clock.clone())).register(delivery).build().unwrap()
}

stores!(polls_until_done_with_its_state_durably_apart, gives_up_after_the_schedule, a_failing_poll_ends_the_wait);

async fn polls_until_done_with_its_state_durably_apart<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(delivery, tag, (tag.to_owned(), 3)).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(count(&format!("{tag}/track")), 1);
    let record = engine.store().load(tag).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Suspended, "it left memory between polls");
    assert!(record.snapshot.unwrap().state.contains(r#""state":1"#), "the state is carried");
    clock.advance(MINUTE - Duration::from_secs(1));
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(count(&format!("{tag}/track")), 1, "not before its time");
    for _ in 0..2 {
        clock.advance(MINUTE);
        engine.worker("w-1").run_until_idle().await.unwrap();
    }
    assert_eq!(engine.result(delivery, tag).await.unwrap(), Ok("shipped after 3 looks".to_owned()));
    assert_eq!(count(&format!("{tag}/track")), 3);
    let history = engine.store().history(tag).await.unwrap();
    let polls: Vec<&str> =
        history.iter().filter(|e| e.kind == EventKind::WaitStarted).map(|e| e.detail.as_deref().unwrap()).collect();
    assert_eq!(
        polls,
        ["poll 1 found shipped not done; next poll in 1m 0s", "poll 2 found shipped not done; next poll in 1m 0s"]
    );
}

async fn gives_up_after_the_schedule<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(delivery, tag, (tag.to_owned(), 100)).await.unwrap();
    for _ in 0..6 {
        engine.worker("w-1").run_until_idle().await.unwrap();
        clock.advance(MINUTE);
    }
    assert_eq!(
        engine.result(delivery, tag).await.unwrap(),
        Ok("`shipped` was still not done after 4 polls".to_owned())
    );
    assert_eq!(count(&format!("{tag}/track")), 4);
}

async fn a_failing_poll_ends_the_wait<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    let key = format!("{tag}-broken");
    engine.start(delivery, &key, (key.clone(), 5)).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    clock.advance(MINUTE);
    engine.worker("w-1").run_until_idle().await.unwrap();
    let expected = "`shipped` failed at poll 2: carrier is down".to_owned();
    assert_eq!(engine.result(delivery, &key).await.unwrap(), Ok(expected));
}

/// A crash after any commit resumes from the last poll's state: no poll that was recorded runs
/// again.
#[tokio::test]
async fn a_crash_resumes_from_the_last_polls_state() {
    use durable_core::testing::{CrashAt, Harness};
    for n in 2..=8 {
        let id = format!("poll-crash-{n}");
        let mut harness = Harness::new().register(delivery);
        harness.crash_and_resume_at(&id, CrashAt::Event(n));
        harness.start(delivery, &id, (id.clone(), 3)).await.unwrap();
        for _ in 0..3 {
            harness.advance(MINUTE).await.unwrap();
        }
        let result = harness.result(delivery, &id).await.unwrap();
        assert_eq!(result, Some(Ok("shipped after 3 looks".to_owned())), "crash after event {n}");
        assert!(count(&format!("{id}/track")) <= 4, "at most the poll in flight ran twice");
    }
}
