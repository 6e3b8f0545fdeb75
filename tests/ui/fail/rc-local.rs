use durable_core::prelude::*;
use std::rc::Rc;

#[durable]
async fn wf(id: u64) -> Result<u64, WorkflowError> {
    let shared = Rc::new(id);
    let n = step!("load", Ok::<_, StepError>(1u64))?;
    Ok(n + *shared)
}

fn main() {}
