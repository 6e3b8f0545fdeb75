use durable_core::prelude::*;

fn describe(prefix: &str, n: u64) -> String {
    format!("{prefix} {n}")
}

#[durable]
async fn wf(id: u64) -> Result<String, WorkflowError> {
    let text = describe(&id.to_string(), step!("load", Ok::<_, StepError>(id))?);
    Ok(text)
}

fn main() {}
