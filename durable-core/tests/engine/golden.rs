//! Golden states catch a build that could not resume the executions in flight.

use durable_core::Store;
use durable_core::prelude::*;
use durable_core::testing::{GoldenError, Harness, check_golden_states};

mod v1 {
    use super::*;

    #[durable]
    pub async fn order(id: String) -> Result<String, WorkflowError> {
        let total = step!("price", Ok::<u64, StepError>(id.len() as u64))?;
        let paid: u64 = wait!("payment", event);
        Ok(format!("{id}: {paid} of {total}"))
    }
}

/// The same workflow, a stored local renamed.
mod renamed {
    use super::*;

    #[durable]
    pub async fn order(id: String) -> Result<String, WorkflowError> {
        let amount = step!("price", Ok::<u64, StepError>(id.len() as u64))?;
        let paid: u64 = wait!("payment", event);
        Ok(format!("{id}: {paid} of {amount}"))
    }
}

/// The same names, but a stored local's type changed: the layout's names do not see it, the
/// decoding does.
mod retyped {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Total {
        pub cents: u64,
        pub currency: String,
    }

    #[durable]
    pub async fn order(id: String) -> Result<String, WorkflowError> {
        let total = step!("price", Ok::<Total, StepError>(Total { cents: 1, currency: "EUR".into() }))?;
        let paid: u64 = wait!("payment", event);
        Ok(format!("{id}: {paid} of {} {}", total.cents, total.currency))
    }
}

/// A point removed.
mod shorter {
    use super::*;

    #[durable]
    pub async fn order(id: String) -> Result<String, WorkflowError> {
        let total = step!("price", Ok::<u64, StepError>(id.len() as u64))?;
        Ok(format!("{id}: {total}"))
    }
}

#[tokio::test]
async fn golden_states_pass_with_the_same_build_and_fail_with_a_changed_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = Harness::new().register(v1::order);
    harness.start(v1::order, "o-1", "o-1".to_owned()).await.unwrap();
    harness.send_event("o-1", "payment", &3).await.unwrap();
    assert_eq!(harness.save_golden_states("o-1", dir.path()).await.unwrap(), 3);
    let mut files: Vec<String> = std::fs::read_dir(dir.path().join("order"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["payment.json", "payment_waiting.json", "price.json"]);

    assert_eq!(check_golden_states(v1::order, dir.path()).await.unwrap(), 3);

    let renamed = check_golden_states(renamed::order, dir.path()).await.unwrap_err();
    assert!(matches!(&renamed, GoldenError::Incompatible { .. }), "{renamed}");
    assert!(renamed.to_string().contains("incompatible version"), "{renamed}");

    let retyped = check_golden_states(retyped::order, dir.path()).await.unwrap_err();
    assert!(matches!(&retyped, GoldenError::Incompatible { .. }), "{retyped}");
    assert!(retyped.to_string().contains("cannot resume the state stored after `payment"), "{retyped}");
    // Caught by decoding the state, though the layout's fingerprint (names only) is the same.
    assert!(!retyped.to_string().contains("incompatible version"), "{retyped}");

    let shorter = check_golden_states(shorter::order, dir.path()).await.unwrap_err();
    assert!(
        shorter.to_string().contains("no longer exists") || shorter.to_string().contains("incompatible"),
        "{shorter}"
    );
}

/// An execution whose state the latest build cannot read says so in `durable show`, instead of
/// looking like a healthy wait.
#[tokio::test]
async fn show_says_when_the_latest_build_cannot_run_an_execution() {
    use durable_core::render::{self, ExecutionView};
    use durable_core::{Engine, MemoryStore};
    let store = MemoryStore::new();
    let old = Engine::builder(store.clone()).register(v1::order).build().unwrap();
    old.start(v1::order, "o-old", "o-old".to_owned()).await.unwrap();
    old.worker("old").run_until_idle().await.unwrap();
    let view = ExecutionView::load(&store, "o-old").await.unwrap().unwrap();
    assert!(!render::show(&view, 3).contains("layout:"), "the build that wrote it is the latest");

    let new = Engine::builder(store.clone()).register(renamed::order).build().unwrap();
    new.worker("new").run_until_idle().await.unwrap();
    let view = ExecutionView::load(&store, "o-old").await.unwrap().unwrap();
    let text = render::show(&view, 3);
    let expected = format!(
        "layout:       {} written by an earlier build; the latest registered build has layout {} and cannot run it",
        v1::order.facts().fingerprint,
        renamed::order.facts().fingerprint
    );
    assert!(text.contains(&expected), "{text}");
}

/// Two builds side by side on one store (a deploy in progress): each worker finishes the
/// executions of its own layout and leaves the others, unleased, to the other.
#[tokio::test]
async fn old_and_new_builds_each_finish_their_own_executions() {
    use durable_core::{Engine, MemoryStore};
    let store = MemoryStore::new();
    let old = Engine::builder(store.clone()).register(v1::order).build().unwrap();
    let new = Engine::builder(store.clone()).register(renamed::order).build().unwrap();
    old.start(v1::order, "o-old", "o-old".to_owned()).await.unwrap();
    old.worker("old").run_until_idle().await.unwrap();
    new.start(renamed::order, "o-new", "o-new".to_owned()).await.unwrap();
    new.worker("new").run_until_idle().await.unwrap();
    // Both wait for their payment; the events arrive through the new build's engine.
    new.send_event("o-old", "payment", &1).await.unwrap();
    new.send_event("o-new", "payment", &2).await.unwrap();
    assert_eq!(new.worker("new").run_until_idle().await.unwrap(), 1, "only its own");
    assert_eq!(store.load("o-old").await.unwrap().unwrap().lease, None, "the old one is left, not held");
    assert_eq!(old.worker("old").run_until_idle().await.unwrap(), 1);
    assert_eq!(old.result(v1::order, "o-old").await.unwrap(), Ok("o-old: 1 of 5".to_owned()));
    assert_eq!(new.result(renamed::order, "o-new").await.unwrap(), Ok("o-new: 2 of 5".to_owned()));
}
