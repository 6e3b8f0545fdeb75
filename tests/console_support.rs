//! Shared by the console tests: workflows with a failing step, and a minimal HTTP/1.1 client
//! (the console speaks plain HTTP on loopback; no client library is needed for that).

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use durable_core::prelude::*;
use durable_core::web::Server;
use durable_core::{Engine, ManualClock, MemoryStore, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The console's write token in tests.
pub const TOKEN: &str = "test-token-0123456789";

/// Orders whose shipment fails (their carrier refuses), by id.
static REFUSED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

pub fn refuse(id: &str, refused: bool) {
    let mut set = REFUSED.lock().unwrap_or_else(PoisonError::into_inner);
    if refused {
        set.insert(id.to_owned())
    } else {
        set.remove(id)
    };
}

async fn price(id: &str) -> Result<u64, std::io::Error> {
    Ok(id.len() as u64 * 100)
}

async fn ship(id: &str) -> Result<String, StepError> {
    if REFUSED.lock().unwrap_or_else(PoisonError::into_inner).contains(id) {
        return Err(StepError::terminal(format!("carrier refused parcel {id}")));
    }
    Ok(format!("T-{}", id.len()))
}

/// Price, wait for the payment, ship.
#[durable(key = order_id)]
pub async fn parcel(order_id: String) -> Result<String, WorkflowError> {
    let amount = step!("price", price(&order_id).await)?;
    let paid: u64 = wait!("payment", event);
    let tracking = step!("ship_order", ship(&order_id).await)?;
    Ok(format!("{tracking}: {paid} of {amount}"))
}

/// An engine on a fresh memory store with `parcel`, on a virtual clock.
pub fn engine() -> Engine<MemoryStore> {
    let clock = ManualClock::new(Timestamp::from_millis(1_767_225_600_000));
    Engine::builder(MemoryStore::new()).clock(Arc::new(clock)).register(parcel).build().unwrap()
}

/// `parcel` executions: `paid-*` shipped, `waiting-*` waiting for their payment, `failed-*`
/// refused by the carrier.
pub async fn orders(engine: &Engine<MemoryStore>, shipped: &[&str], waiting: &[&str], failed: &[&str]) {
    let worker = engine.worker("w-1");
    for id in shipped.iter().chain(waiting).chain(failed) {
        engine.start(parcel, *id, (*id).to_owned()).await.unwrap();
    }
    worker.run_until_idle().await.unwrap();
    for id in failed {
        refuse(id, true);
    }
    for id in shipped.iter().chain(failed) {
        engine.send_event(id, "payment", &42u64).await.unwrap();
    }
    worker.run_until_idle().await.unwrap();
}

/// The console of `engine` on an address of loopback, with [`TOKEN`].
pub async fn console(engine: &Engine<MemoryStore>) -> Server {
    durable_core::web::start(engine.clone(), "127.0.0.1:0".parse().unwrap(), TOKEN.to_owned()).await.unwrap()
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request (`Connection: close`) and reads the whole answer.
pub async fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|line| line.split(' ').nth(1)).and_then(|code| code.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { unchunk(body) } else { body.to_owned() };
    Answer { status, headers, body }
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// `text` percent-encoded for a URL path segment or query value.
pub fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
