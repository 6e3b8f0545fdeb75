use durable_core::prelude::*;
use serde::{Serialize, de::DeserializeOwned};

#[durable]
async fn generic<T>(ctx: &Ctx, value: T) -> Result<Vec<T>, WorkflowError>
where
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let copy = step!("copy", Ok::<_, StepError>(value.clone()))?;
    let _ = ctx.execution_id();
    Ok(vec![value, copy])
}

/// Docs on the function stay on the workflow.
#[durable(name = "renamed")]
pub async fn annotated(items: Vec<u64>) -> Result<u64, WorkflowError> {
    let mut sum: u64 = 0;
    for item in items {
        let price: u64 = step!("price", Ok::<_, StepError>(item * 2))?;
        sum += price;
    }
    Ok(sum)
}

fn main() {
    assert_eq!(generic::<u8>::new().facts().name, "generic");
    assert_eq!(annotated.facts().name, "renamed");
}
