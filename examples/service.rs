//! The order workflow as an HTTP service (axum), its worker in the same process.
//!
//! ```sh
//! cargo run --example service        # on 127.0.0.1:3000, SQLite file in the temporary directory
//! curl -X POST localhost:3000/orders -H 'content-type: application/json' -d '{"order_id":"o-42"}'
//! curl localhost:3000/orders/o-42    # suspended at `payment`, waiting for event `payment`
//! curl -X POST localhost:3000/orders/o-42/payment -H 'content-type: application/json' \
//!      -d '{"amount":4200,"reference":"pay-7"}'
//! curl localhost:3000/orders/o-42    # succeeded, with the shipment as its result
//! ```
//!
//! `DURABLE_STORE` picks the store (`sqlite:PATH?mode=rwc`, `memory:`, or
//! `postgres://...?schema=NAME` with `cargo run --example service --features
//! durable-core/postgres`) and `ADDR` the address. Ctrl-C stops it gracefully: requests in
//! flight are answered and running executions reach their next checkpoint and release their
//! lease.

use durable_core::Engine;
use durable_core::store::AnyStore;
use durable_examples::order::order_workflow;
use durable_examples::service;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    durable_core::logging::init(durable_core::logging::LogFormat::from_env())?;
    let default_store = format!("sqlite:{}?mode=rwc", std::env::temp_dir().join("durable-service.db").display());
    let url = std::env::var("DURABLE_STORE").unwrap_or(default_store);
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());

    let store = AnyStore::connect(&url).await?;
    println!("store: {} ({url})", store.kind());
    let engine = Engine::builder(store).register(order_workflow).build()?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}; Ctrl-C stops", listener.local_addr()?);
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            eprintln!("cannot listen for Ctrl-C ({error}); stopping");
        }
    };
    service::serve(listener, engine, "service-1", ctrl_c).await?;
    println!("stopped");
    Ok(())
}
