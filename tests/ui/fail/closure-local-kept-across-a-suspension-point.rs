use durable_core::prelude::*;

#[durable]
async fn wf(id: u64) -> Result<u64, WorkflowError> {
    let add = |x: u64| x + id;
    let n = step!("load", Ok::<_, StepError>(1u64))?;
    Ok(add(n))
}

fn main() {}
