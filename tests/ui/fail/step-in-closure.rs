use durable_core::prelude::*;

#[durable]
async fn wf(ids: Vec<u64>) -> Result<u64, WorkflowError> {
    let total = ids.iter().map(|id| step!("load", Ok::<_, StepError>(*id)).unwrap()).sum();
    Ok(total)
}

fn main() {}
