use durable_core::prelude::*;

async fn price(currency: &str, item: u64) -> Result<u64, std::io::Error> {
    Ok(item + currency.len() as u64)
}

#[durable]
async fn prices(currency: String, items: Vec<u64>) -> Result<u64, WorkflowError> {
    let batch = map!(
        "price_all",
        items,
        |item| price(&currency, item).await,
        max_concurrency = 8,
        completion = Completion::min_successful(2)
    )?;
    let both = parallel!("two", [price(&currency, 1).await, price("EUR", 2).await])?;
    let first: u64 = batch.succeeded().into_iter().map(|(_, value)| *value).sum();
    Ok(first + both.into_result()?.into_iter().sum::<u64>())
}

fn main() {}
