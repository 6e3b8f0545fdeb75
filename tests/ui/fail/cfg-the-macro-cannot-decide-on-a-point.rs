use durable_core::prelude::*;

#[durable]
async fn wf(id: u64) -> Result<u64, WorkflowError> {
    #[cfg(feature = "audit")]
    step!("audit", Ok::<_, StepError>(id))?;
    Ok(id)
}

fn main() {}
