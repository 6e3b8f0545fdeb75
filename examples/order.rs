//! The order story, end to end on SQLite (a file, no server):
//!
//! 1. a first process starts order `o-42`; it is validated and then waits for its payment;
//!    the process exits with the order suspended in the database;
//! 2. a second process opens the same file and finds the order where it was left;
//! 3. a payment of the wrong shape is refused; the real payment is delivered;
//! 4. shipping fails once (an injected carrier timeout), is retried after a durable delay, and
//!    succeeds;
//! 5. the result and the execution's history are printed.
//!
//! Run it with `cargo run --example order`. Set `DURABLE_DB` to choose the database file.

use std::path::PathBuf;
use std::process::Command;

use durable_core::store::HistoryEvent;
use durable_core::{Engine, SqliteStore};
use durable_examples::order::{Carrier, Payment, order_workflow};

const ORDER: &str = "o-42";

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let path = database();
    if std::env::args().nth(1).as_deref() == Some("--first-process") {
        return first_process(&path).await;
    }
    for stale in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{stale}", path.display()));
    }
    println!("== process 1: start order {ORDER} (database {})", path.display());
    let status = Command::new(std::env::current_exe()?).arg("--first-process").status()?;
    if !status.success() {
        return Err("the first process failed".into());
    }
    println!("\n== process 2: a new process opens the same database");
    second_process(&path).await
}

fn database() -> PathBuf {
    std::env::var_os("DURABLE_DB").map_or_else(|| std::env::temp_dir().join("durable-order-example.db"), PathBuf::from)
}

async fn first_process(path: &std::path::Path) -> Result<(), Error> {
    let engine = Engine::builder(SqliteStore::create(path)?).register(order_workflow).build()?;
    engine.start(order_workflow, ORDER, ORDER.to_owned()).await?;
    engine.worker("process-1").run_until_idle().await?;
    let status = engine.status(ORDER).await?;
    println!(
        "   order {ORDER} is {} at `{}`, waiting for event `{}`; process 1 exits",
        status.status,
        status.point.as_deref().unwrap_or("-"),
        status.waiting_for.as_deref().unwrap_or("-"),
    );
    Ok(())
}

async fn second_process(path: &std::path::Path) -> Result<(), Error> {
    let engine = Engine::builder(SqliteStore::open(path)?).register(order_workflow).build()?;
    let status = engine.status(ORDER).await?;
    println!(
        "   found order {ORDER} {}, waiting for `{}`",
        status.status,
        status.waiting_for.as_deref().unwrap_or("-")
    );

    let wrong = serde_json::json!({ "amount": "a lot" });
    match engine.send_event(ORDER, "payment", &wrong).await {
        Err(error) => println!("   a malformed payment is refused: {error}"),
        Ok(delivery) => return Err(format!("a malformed payment was accepted: {delivery:?}").into()),
    }

    Carrier::fail_next(1);
    let payment = Payment { amount: 4_200, reference: "pay-7".to_owned() };
    let delivery = engine.send_event(ORDER, "payment", &payment).await?;
    println!("   payment delivered ({delivery:?}); the carrier will time out once");

    let worker = engine.worker("process-2");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move { worker.run(async { stopped.await.unwrap_or(()) }).await });
    let result = engine.result(order_workflow, ORDER).await?;
    let _ = stop.send(());
    running.await?;

    match &result {
        Ok(shipment) => println!("\n== shipped: tracking {}", shipment.tracking),
        Err(error) => println!("\n== the order failed: {error}"),
    }
    println!("\n== history of {ORDER}");
    print_history(&engine.history(ORDER).await?);
    Ok(())
}

fn print_history(history: &[HistoryEvent]) {
    let start = history.first().map_or(0, |event| event.at.as_millis());
    for event in history {
        let at = event.at.as_millis().saturating_sub(start);
        let point = event.point.as_deref().unwrap_or("");
        let place = match (&event.file, event.line) {
            (Some(file), Some(line)) => format!(" ({file}:{line})"),
            _ => String::new(),
        };
        let attempt = event.attempt.map(|n| format!(" attempt {n}")).unwrap_or_default();
        let detail = event.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
        println!("{:>3} +{at:>5}ms {:<18} {point}{attempt}{place}{detail}", event.seq, event.kind.as_str());
    }
}
