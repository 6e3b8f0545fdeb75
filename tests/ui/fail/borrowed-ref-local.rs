use durable_core::prelude::*;

#[durable]
async fn wf(items: Vec<String>) -> Result<usize, WorkflowError> {
    let first = &items[0];
    step!("log", Ok::<_, StepError>(()))?;
    Ok(first.len())
}

fn main() {}
