use std::collections::BTreeMap;

use durable_core::prelude::*;

#[durable]
async fn wf(prices: BTreeMap<String, u64>) -> Result<u64, WorkflowError> {
    let mut total = 0;
    for name in prices.keys() {
        total += step!("price", Ok::<_, StepError>(name.len() as u64))?;
    }
    Ok(total)
}

fn main() {}
