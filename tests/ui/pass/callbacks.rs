use std::time::Duration;

use durable_core::prelude::*;

async fn submit(order: &str, token: String) -> Result<(), std::io::Error> {
    let _ = (order, token);
    Ok(())
}

#[durable]
async fn checkout(order: String) -> Result<u64, WorkflowError> {
    let paid: u64 = wait!(
        "payment",
        callback = |token| submit(&order, token).await,
        retry = Retry::exponential(3),
        timeout = Duration::from_secs(3600),
        heartbeat = Duration::from_secs(60)
    )?;
    Ok(paid)
}

fn main() {}
