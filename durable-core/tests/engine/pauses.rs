//! Pausing a workflow type for an incident, and finding executions by business key.

use durable_core::engine::Operator;
use durable_core::prelude::*;
use durable_core::store::{ListFilter, Status, Store};
use durable_core::{Engine, ManualClock};

use crate::support::{bump, clock, count, stores};

#[durable(key = order_id)]
pub async fn ship(order_id: String, region: String) -> Result<String, WorkflowError> {
    step!("ship", shipped(&order_id, &region).await)?;
    Ok(format!("{order_id} shipped"))
}

async fn shipped(order_id: &str, region: &str) -> Result<(), std::io::Error> {
    bump(&format!("{order_id}/{region}"));
    Ok(())
}

#[durable]
pub async fn refund(order_id: String) -> Result<String, WorkflowError> {
    step!("refund", shipped(&order_id, "refund").await)?;
    Ok(format!("{order_id} refunded"))
}

/// Waits for a go.
#[durable]
pub async fn hold(key: String) -> Result<String, WorkflowError> {
    let go: bool = wait!("go", event);
    Ok(format!("{key}: {go}"))
}

fn engine<S: Store>(store: S, clock: &ManualClock) -> Engine<S> {
    Engine::builder(store)
        .clock(std::sync::Arc::new(clock.clone()))
        .register(ship)
        .register(refund)
        .register(hold)
        .build()
        .unwrap()
}

stores!(a_paused_workflow_waits_until_resumed, executions_are_found_by_business_key);

async fn a_paused_workflow_waits_until_resumed<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    let by = Operator::new("alice", "carrier outage");
    engine.pause_workflow("ship", &by).await.unwrap();
    assert_eq!(engine.paused_workflows().await.unwrap(), ["ship"]);
    let (order, other) = (format!("{tag}-o"), format!("{tag}-r"));
    engine.start(ship, &order, (order.clone(), "eu".to_owned())).await.unwrap();
    engine.start(refund, &other, other.clone()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(engine.status(&order).await.unwrap().status, Status::Running, "accepted, not run");
    assert_eq!(count(&format!("{order}/eu")), 0);
    assert_eq!(engine.result(refund, &other).await.unwrap(), Ok(format!("{other} refunded")), "others run");

    engine.resume_workflow("ship", &by).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    assert_eq!(engine.result(ship, &order).await.unwrap(), Ok(format!("{order} shipped")));
    assert!(engine.paused_workflows().await.unwrap().is_empty());
}

async fn executions_are_found_by_business_key<S: Store>(store: S, tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    let order = format!("{tag}-order");
    engine.start(ship, "s-1", (order.clone(), "eu".to_owned())).await.unwrap();
    engine.start_many(ship, [("s-2", (format!("{tag}-other"), "us".to_owned()))]).await.unwrap();
    let filter = ListFilter { key: Some(("order_id".to_owned(), order.clone())), ..ListFilter::default() };
    let found: Vec<String> = engine.store().list(filter).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(found, ["s-1"]);
    // `region` is not a key of `ship`.
    let filter = ListFilter { key: Some(("region".to_owned(), "eu".to_owned())), ..ListFilter::default() };
    assert!(engine.store().list(filter).await.unwrap().is_empty());
}

/// `durable pause`, `durable resume`, `durable list --key`.
#[cfg(feature = "cli")]
#[tokio::test]
async fn the_command_line_pauses_and_finds_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ops.db");
    let engine = engine(durable_core::SqliteStore::create(&path).unwrap(), &clock());
    assert_eq!(
        crate::support::durable_cli(&path, &["pause", "ship", "--reason", "outage", "--by", "bob"]).await.unwrap(),
        "workflow ship paused\n"
    );
    engine.start(ship, "c-1", ("cli-o-1".to_owned(), "eu".to_owned())).await.unwrap();
    engine.start(ship, "c-2", ("cli-o-2".to_owned(), "eu".to_owned())).await.unwrap();
    engine.worker("w").run_until_idle().await.unwrap();
    let listed = crate::support::durable_cli(&path, &["list", "--key", "order_id=cli-o-2"]).await.unwrap();
    assert!(listed.contains("c-2") && !listed.contains("c-1"), "{listed}");
    assert!(listed.contains("paused workflows (no worker claims their executions): ship"), "{listed}");
    let bad = crate::support::durable_cli(&path, &["list", "--key", "order_id"]).await.unwrap_err().to_string();
    assert!(bad.contains("is not a business key"), "{bad}");
    crate::support::durable_cli(&path, &["resume", "ship"]).await.unwrap();
    engine.worker("w").run_until_idle().await.unwrap();
    assert_eq!(engine.status("c-1").await.unwrap().status, Status::Succeeded);
}

/// `durable versions`: the layouts in flight, by workflow and point, and which build runs them.
#[cfg(feature = "cli")]
#[tokio::test]
async fn the_command_line_lists_the_layouts_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("versions.db");
    let engine = engine(durable_core::SqliteStore::create(&path).unwrap(), &clock());
    assert_eq!(
        crate::support::durable_cli(&path, &["versions"]).await.unwrap(),
        "WORKFLOW  LAYOUT  POINT  EXECUTIONS  RUN BY\n(no execution in flight)\n"
    );
    for id in ["h-1", "h-2"] {
        engine.start(hold, id, id.to_owned()).await.unwrap();
    }
    engine.worker("w").run_until_idle().await.unwrap();
    engine.pause_workflow("ship", &Operator::new("ops", "")).await.unwrap();
    engine.start(ship, "v-1", ("v-o-1".to_owned(), "eu".to_owned())).await.unwrap();
    let layout = hold.facts().fingerprint;
    let text = crate::support::durable_cli(&path, &["versions"]).await.unwrap();
    assert!(text.contains(&format!("hold  {layout}  go  2  the latest registered build\n")), "{text}");
    assert!(text.contains("ship  -  (not started)  1  any build\n"), "{text}");
    let json: serde_json::Value = serde_json::from_str(
        &crate::support::durable_cli(&path, &["versions", "--workflow", "hold", "--json"]).await.unwrap(),
    )
    .unwrap();
    assert_eq!(
        json,
        serde_json::json!([{ "workflow": "hold", "layout": layout, "point": "go", "executions": 2, "build": "the latest registered build" }])
    );
}
