use durable_core::prelude::*;

struct Orders;

impl Orders {
    #[durable]
    async fn process(&self, id: u64) -> Result<u64, WorkflowError> {
        Ok(id)
    }
}

fn main() {}
