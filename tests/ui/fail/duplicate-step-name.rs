use durable_core::prelude::*;

#[durable]
async fn wf(id: u64) -> Result<u64, WorkflowError> {
    let a = step!("load", Ok::<_, StepError>(id))?;
    let b = step!("load", Ok::<_, StepError>(id + 1))?;
    Ok(a + b)
}

fn main() {}
