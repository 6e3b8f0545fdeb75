use durable_core::prelude::*;

#[durable]
async fn wf(id: u64) -> Result<String, WorkflowError> {
    Ok(format!("{}", step!("load", Ok::<_, StepError>(id))?))
}

fn main() {}
