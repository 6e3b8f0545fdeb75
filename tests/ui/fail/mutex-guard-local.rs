use durable_core::prelude::*;
use std::sync::Mutex;

static COUNTER: Mutex<u64> = Mutex::new(0);

#[durable]
async fn wf(id: u64) -> Result<u64, WorkflowError> {
    let guard = COUNTER.lock().unwrap();
    let n = step!("load", Ok::<_, StepError>(id))?;
    Ok(n + *guard)
}

fn main() {}
