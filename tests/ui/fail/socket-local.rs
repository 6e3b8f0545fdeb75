use durable_core::prelude::*;
use std::net::UdpSocket;

#[durable]
async fn wf(port: u16) -> Result<usize, WorkflowError> {
    let socket = UdpSocket::bind(("127.0.0.1", port)).map_err(WorkflowError::new)?;
    step!("announce", Ok::<_, StepError>(()))?;
    let sent = socket.send_to(b"hi", ("127.0.0.1", port)).map_err(WorkflowError::new)?;
    Ok(sent)
}

fn main() {}
