use durable_core::prelude::*;


async fn not_a_workflow() {
    wait!("pause", std::time::Duration::from_secs(1));
}

fn main() {}
