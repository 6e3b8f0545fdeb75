use std::time::Duration;

use durable_core::prelude::*;

async fn look(order: &str, tries: u32) -> Result<Check<u32, String>, std::io::Error> {
    Ok(if tries > 3 { Check::Done(order.to_owned()) } else { Check::NotYet(tries + 1) })
}

#[durable]
async fn shipped(order: String) -> Result<String, WorkflowError> {
    let how = wait!(
        "shipped",
        until = |tries| look(&order, tries).await,
        state = 0u32,
        schedule = Retry::exponential(10).initial_delay(Duration::from_secs(30))
    )?;
    Ok(how)
}

fn main() {}
