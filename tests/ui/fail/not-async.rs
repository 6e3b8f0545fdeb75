use durable_core::prelude::*;

#[durable]
fn wf(id: u64) -> Result<u64, WorkflowError> {
    Ok(id)
}

fn main() {}
