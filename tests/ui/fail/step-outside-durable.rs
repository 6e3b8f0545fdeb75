use durable_core::prelude::*;

async fn not_a_workflow(id: u64) -> Result<u64, StepError> {
    step!("load", Ok::<_, StepError>(id))
}

fn main() {}
