//! The trip story, end to end on SQLite (a file, no server):
//!
//! 1. trip `t-1` reserves a flight, a hotel and a car at once (`parallel!`), then pays through
//!    a child workflow that hands a callback token to the payment provider and waits;
//! 2. the provider's webhook answers with `Engine::complete_callback`; the payment child
//!    ends, which wakes the trip, which confirms;
//! 3. trip `t-2` asks for a car nobody has: the reservations that were made are released
//!    (`map!` over them) and the trip fails with the reason;
//! 4. the trip's `durable show`, with its children, and the Mermaid graph of both workflows
//!    with `t-1`'s path are printed.
//!
//! Run it with `cargo run --example trip`. Set `DURABLE_DB` to choose the database file.

use std::path::PathBuf;

use durable_core::render::{self, ExecutionView, GraphMarks};
use durable_core::{Engine, SqliteStore, Store};
use durable_examples::trip::{PaymentProvider, TripRequest, payment_workflow, trip_workflow};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let path = std::env::var_os("DURABLE_DB")
        .map_or_else(|| std::env::temp_dir().join("durable-trip-example.db"), PathBuf::from);
    for stale in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{stale}", path.display()));
    }
    let engine =
        Engine::builder(SqliteStore::create(&path)?).register(trip_workflow).register(payment_workflow).build()?;
    let worker = engine.worker("worker-1");

    println!("== trip t-1: flight, hotel and car at once, then the payment");
    let request = |car: &str| TripRequest {
        flight: "LH400".to_owned(),
        hotel: "Adlon".to_owned(),
        car: car.to_owned(),
        amount: 129_000,
    };
    engine.start(trip_workflow, "t-1", ("t-1".to_owned(), request("compact"))).await?;
    worker.run_until_idle().await?;
    println!(
        "   t-1 is {}; its payment child is {}",
        engine.status("t-1").await?.status,
        engine.status("t-1/pay").await?.status
    );

    for (trip, amount, token) in PaymentProvider::take_pending() {
        println!("   the provider authorizes {amount} cents for {trip} (token {}…)", &token[..14]);
        engine.complete_callback(&token, Ok(&format!("auth-{trip}"))).await?;
    }
    worker.run_until_idle().await?;
    let booked = engine.result(trip_workflow, "t-1").await?;
    match &booked {
        Ok(reservations) => {
            let what: Vec<&str> = reservations.iter().map(|r| r.what.as_str()).collect();
            println!("   t-1 booked: {}", what.join(", "));
        }
        Err(error) => println!("   t-1 failed: {error}"),
    }

    println!("\n== trip t-2: no car available");
    engine.start(trip_workflow, "t-2", ("t-2".to_owned(), request("none"))).await?;
    worker.run_until_idle().await?;
    match engine.result(trip_workflow, "t-2").await? {
        Ok(_) => return Err("t-2 should not have been booked".into()),
        Err(error) => println!("   {error}"),
    }

    println!("\n== durable show t-1");
    let view = ExecutionView::load(engine.store(), "t-1").await?.ok_or("t-1 is gone")?;
    print!("{}", render::show(&view, 6));

    println!("\n== durable graph trip_workflow --id t-1");
    let facts = engine.store().workflow("trip_workflow", None).await?.ok_or("not registered")?.facts()?;
    print!("{}", render::graph(&facts, Some(&GraphMarks::of(&view, &facts))));
    Ok(())
}
