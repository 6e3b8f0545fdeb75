use durable_core::prelude::*;

#[durable]
async fn wf(id: u64) -> u64 {
    id
}

fn main() {}
