use durable_core::prelude::*;

#[durable]
async fn part(n: u64) -> Result<u64, WorkflowError> {
    Ok(n)
}

#[durable]
async fn parts() -> Result<u64, WorkflowError> {
    let total = call!("part", part)?;
    Ok(total)
}

fn main() {}
