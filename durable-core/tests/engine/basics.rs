//! Starting, status, results and cancelling.

use durable_core::store::{EventKind, Status, Store};
use durable_core::{Engine, EngineError, MemoryStore};

use crate::support::{YEAR, both, clock, count, engine, greet, nap, pay};

both!(start_is_idempotent, status_follows_the_execution, cancel_finishes_for_good);

async fn start_is_idempotent<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    let first = engine.start(greet, "g-1", tag.to_owned()).await.unwrap();
    assert!(first.is_new());
    assert_eq!((first.id(), first.workflow()), ("g-1", "greet"));
    let again = engine.start(greet, "g-1", "someone else".to_owned()).await.unwrap();
    assert!(!again.is_new(), "starting an existing id returns it");
    let json = engine.start_json("greet", "g-1", "\"a third\"").await.unwrap();
    assert!(!json.is_new());

    assert_eq!(engine.worker("w-1").run_until_idle().await.unwrap(), 1);
    assert!(!engine.start(greet, "g-1", tag.to_owned()).await.unwrap().is_new());
    assert_eq!(engine.worker("w-1").run_until_idle().await.unwrap(), 0, "a finished execution never runs again");
    assert_eq!(count(&format!("{tag}/compose")), 1, "one execution, one run of its step");
    assert_eq!(engine.result(greet, "g-1").await.unwrap(), Ok(format!("hello, {tag}")));

    let other = engine.start(nap, "g-1", tag.to_owned()).await.unwrap_err();
    assert!(matches!(&other, EngineError::WorkflowMismatch { existing, .. } if existing == "greet"), "{other}");
    assert!(other.to_string().contains("already exists as a `greet` execution"), "{other}");
}

async fn status_follows_the_execution<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(nap, "n-1", tag.to_owned()).await.unwrap();
    let status = engine.status("n-1").await.unwrap();
    assert_eq!((status.status, status.version, status.point.as_deref()), (Status::Running, 1, None));

    engine.worker("w-1").run_until_idle().await.unwrap();
    let status = engine.status("n-1").await.unwrap();
    assert_eq!(status.status, Status::Suspended);
    assert_eq!(status.point.as_deref(), Some("nap"));
    assert_eq!(status.wake_at, Some(clock.now_plus(YEAR)));
    assert_eq!((status.leased_by, status.problem), (None, None));

    clock.advance(YEAR);
    engine.worker("w-1").run_until_idle().await.unwrap();
    let status = engine.status("n-1").await.unwrap();
    assert_eq!((status.status, status.wake_at), (Status::Succeeded, None));
    assert_eq!(engine.result(nap, "n-1").await.unwrap(), Ok(format!("{tag} rested")));
    let kinds: Vec<EventKind> = engine.history("n-1").await.unwrap().iter().map(|e| e.kind).collect();
    use EventKind::*;
    let expected = [ExecutionStarted, StepSucceeded, WaitStarted, Suspended, Resumed, WaitSucceeded, StepSucceeded];
    assert_eq!(kinds, [&expected[..], &[ExecutionSucceeded]].concat());
}

async fn cancel_finishes_for_good<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    engine.start(pay, "p-1", tag.to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    engine.cancel("p-1").await.unwrap();
    assert_eq!(engine.status("p-1").await.unwrap().status, Status::Cancelled);
    assert!(matches!(engine.result(pay, "p-1").await, Err(EngineError::Cancelled(_))));
    let again = engine.cancel("p-1").await.unwrap_err();
    assert!(matches!(again, EngineError::Finished { status: Status::Cancelled, .. }), "{again}");
    let event = engine.send_event("p-1", "payment", &serde_json::json!({"amount": 1})).await.unwrap_err();
    assert!(event.to_string().contains("has already finished (cancelled)"), "{event}");
    assert_eq!(engine.worker("w-1").run_until_idle().await.unwrap(), 0);
    let last = engine.history("p-1").await.unwrap().pop().unwrap();
    assert_eq!(last.kind, EventKind::ExecutionCancelled);
}

#[tokio::test]
async fn unknown_workflows_are_refused_by_name() {
    let clock = clock();
    let engine = engine(MemoryStore::new(), &clock);
    let error = engine.start_json("refund", "r-1", "{}").await.unwrap_err();
    assert!(matches!(&error, EngineError::UnknownWorkflow { name, .. } if name == "refund"));
    let message = error.to_string();
    assert!(
        message.starts_with("no workflow named `refund` is registered with this engine (registered: broken, chain,")
    );
    let input = engine.start_json("greet", "g-1", "42").await.unwrap_err();
    assert!(matches!(input, EngineError::InvalidInput { .. }), "{input}");
    assert!(input.to_string().contains("does not match its parameters"), "{input}");
    assert!(engine.store().load("g-1").await.unwrap().is_none(), "nothing was created");

    let bare = Engine::builder(MemoryStore::new()).build().unwrap();
    let error = bare.start(greet, "g-1", "x".to_owned()).await.unwrap_err();
    assert_eq!(error.to_string(), "no workflow named `greet` is registered with this engine (registered: none)");
}

#[test]
fn building_needs_a_runtime() {
    let error = Engine::builder(MemoryStore::new()).register(greet).build().err().unwrap();
    assert!(matches!(error, EngineError::NoRuntime), "{error}");
}

/// `clock.now() + by`, read without moving the clock.
trait NowPlus {
    fn now_plus(&self, by: std::time::Duration) -> durable_core::Timestamp;
}

impl NowPlus for durable_core::ManualClock {
    fn now_plus(&self, by: std::time::Duration) -> durable_core::Timestamp {
        use durable_core::Clock;
        self.now().saturating_add(by)
    }
}
