use durable_core::prelude::*;

async fn look(tries: u32) -> Result<Check<u32, String>, std::io::Error> {
    Ok(Check::NotYet(tries + 1))
}

#[durable]
async fn shipped() -> Result<String, WorkflowError> {
    let how = wait!("shipped", until = |tries| look(tries).await, state = 0u32)?;
    Ok(how)
}

fn main() {}
