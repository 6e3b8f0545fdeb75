use durable_core::prelude::*;

#[durable]
async fn wf(id: u64) -> Result<String, WorkflowError> {
    let label = "order";
    let n = step!("load", Ok::<_, StepError>(id))?;
    Ok(format!("{label} {n}"))
}

fn main() {}
