use durable_core::prelude::*;

#[durable(key = order)]
async fn wf(order_id: String) -> Result<String, WorkflowError> {
    Ok(order_id)
}

fn main() {}
