use durable_core::prelude::*;

#[durable]
async fn wf(id: u64) -> Result<u64, WorkflowError> {
    let later = async move { step!("load", Ok::<_, StepError>(id)) };
    let n = later.await?;
    Ok(n)
}

fn main() {}
