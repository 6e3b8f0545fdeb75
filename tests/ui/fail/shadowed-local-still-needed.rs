use durable_core::prelude::*;

#[durable]
async fn wf(id: u64) -> Result<String, WorkflowError> {
    let name = format!("order-{id}");
    let total = {
        let name = id * 2;
        step!("price", Ok::<_, StepError>(name))?
    };
    Ok(format!("{name} {total}"))
}

fn main() {}
