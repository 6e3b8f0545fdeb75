use durable_core::prelude::*;

#[durable]
async fn wf<'a>(id: u64) -> Result<u64, WorkflowError> {
    let doubled = step!("double", Ok::<_, StepError>(id * 2))?;
    Ok(doubled)
}

fn main() {}
