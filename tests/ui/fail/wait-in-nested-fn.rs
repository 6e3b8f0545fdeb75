use durable_core::prelude::*;


#[durable]
async fn wf(id: u64) -> Result<u64, WorkflowError> {
    async fn pause() {
        wait!("pause", std::time::Duration::from_secs(1));
    }
    pause().await;
    Ok(id)
}

fn main() {}
