use durable_core::prelude::*;

#[durable]
async fn wf(items: Vec<u64>) -> Result<u64, WorkflowError> {
    let mut total = 0;
    for item in items.iter() {
        total += step!("price", Ok::<_, StepError>(*item))?;
    }
    Ok(total)
}

fn main() {}
