use durable_core::prelude::*;

async fn submit(token: String) -> Result<(), std::io::Error> {
    let _ = token;
    Ok(())
}

#[durable]
async fn checkout() -> Result<u64, WorkflowError> {
    let paid: u64 = wait!("payment", callback = submit)?;
    Ok(paid)
}

fn main() {}
