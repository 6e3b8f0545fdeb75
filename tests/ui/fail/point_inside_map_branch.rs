use durable_core::prelude::*;

async fn price(item: u64) -> Result<u64, std::io::Error> {
    Ok(item)
}

#[durable]
async fn prices(items: Vec<u64>) -> Result<u64, WorkflowError> {
    let batch = map!("price_all", items, |item| step!("price", price(item).await))?;
    Ok(batch.into_result()?.into_iter().sum())
}

fn main() {}
