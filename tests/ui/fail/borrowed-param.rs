use durable_core::prelude::*;

#[durable]
async fn wf(id: &'static str) -> Result<usize, WorkflowError> {
    Ok(id.len())
}

fn main() {}
