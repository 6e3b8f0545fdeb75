use durable_core::prelude::*;

#[durable]
async fn wf(id: u64) -> Result<u64, WorkflowError> {
    let total = step!("outer", Ok::<_, StepError>(step!("inner", Ok::<_, StepError>(id))? + 1))?;
    Ok(total)
}

fn main() {}
