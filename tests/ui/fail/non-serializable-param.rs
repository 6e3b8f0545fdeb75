use durable_core::prelude::*;
use std::net::TcpStream;

#[durable]
async fn wf(connection: TcpStream) -> Result<u64, WorkflowError> {
    let _ = connection.peer_addr();
    Ok(1)
}

fn main() {}
