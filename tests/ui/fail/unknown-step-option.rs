use durable_core::prelude::*;

#[durable]
async fn wf(id: u64) -> Result<u64, WorkflowError> {
    let a = step!("load", retries = 3, Ok::<_, StepError>(id))?;
    Ok(a)
}

fn main() {}
