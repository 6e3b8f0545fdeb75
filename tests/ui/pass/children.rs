use durable_core::prelude::*;

#[durable]
async fn part(n: u64) -> Result<u64, WorkflowError> {
    Ok(n)
}

#[durable]
async fn parts(n: u64) -> Result<u64, WorkflowError> {
    let mut total = 0;
    for i in 0..n {
        total += call!("part", part, i, key = i)?;
    }
    let later: Child<part> = start!("later", part, total);
    let more = wait!("later_done", child = later)?;
    let checked: Result<u64, ChildError<WorkflowError>> = call!("checked", part, more);
    Ok(checked.unwrap_or(0))
}

fn main() {}

#[durable]
async fn all_parts(n: u64) -> Result<usize, WorkflowError> {
    let batch = map!("parts", 0..n, child = part, max_concurrency = 3)?;
    Ok(batch.succeeded_count())
}
