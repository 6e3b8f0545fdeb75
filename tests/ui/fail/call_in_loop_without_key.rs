use durable_core::prelude::*;

#[durable]
async fn part(n: u64) -> Result<u64, WorkflowError> {
    Ok(n)
}

#[durable]
async fn parts(n: u64) -> Result<u64, WorkflowError> {
    let mut total = 0;
    for i in 0..n {
        total += call!("part", part, i)?;
    }
    Ok(total)
}

fn main() {}
