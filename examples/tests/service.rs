//! The order service over real HTTP on loopback: start an order, read where it waits, pay it,
//! read its result; then shut down and find nothing left leased.

use std::net::SocketAddr;
use std::time::Duration;

use durable_core::Engine;
use durable_core::store::{AnyStore, Status, Store};
use durable_examples::order::order_workflow;
use durable_examples::service;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

/// One request on a connection of its own; the answer's status and JSON body.
async fn call(addr: SocketAddr, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let stream = TcpStream::connect(addr).await.expect("connect to the service");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let body = body.map_or_else(Bytes::new, |body| Bytes::from(body.to_string()));
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {bytes:?}"));
    (status, json)
}

/// Reads `GET /orders/{id}` until `done` holds for it. The worker runs in the background, so
/// this polls; it fails only by hanging, which the test runner reports.
async fn until(addr: SocketAddr, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    loop {
        let (status, order) = call(addr, Method::GET, &format!("/orders/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{order}");
        if done(&order) {
            return order;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_pay_and_read_an_order_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("orders.db").display());
    let engine = Engine::builder(AnyStore::connect(&url).await.unwrap()).register(order_workflow).build().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service::serve(listener, engine.clone(), "test-worker", async {
        stopped.await.unwrap_or(());
    }));

    let (status, started) = call(addr, Method::POST, "/orders", Some(json!({ "order_id": "o-1" }))).await;
    assert_eq!((status, &started), (StatusCode::CREATED, &json!({ "id": "o-1", "new": true })));
    let (status, again) = call(addr, Method::POST, "/orders", Some(json!({ "order_id": "o-1" }))).await;
    assert_eq!((status, &again["new"]), (StatusCode::OK, &json!(false)), "starting is idempotent");

    let waiting = until(addr, "o-1", |order| order["waiting_for"] == "payment").await;
    assert_eq!(waiting["status"], "suspended");
    assert_eq!(waiting["point"], "payment");
    let state = waiting["state"].to_string();
    assert!(state.contains(r#""amount":4200"#) && state.contains(r#""id":"o-1""#), "the validated order: {state}");
    assert_eq!(waiting["result"], Value::Null);

    let (status, refused) = call(addr, Method::POST, "/orders/o-1/payment", Some(json!({ "amount": "a lot" }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("payment"), "{refused}");
    let (status, refused) = call(addr, Method::POST, "/orders", Some(json!({ "id": "o-3" }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("order_id"), "{refused}");
    let (status, _) = call(addr, Method::POST, "/orders/o-9/payment", Some(json!({ "amount": 1 }))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(addr, Method::GET, "/orders/o-9", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let payment = json!({ "amount": 4200, "reference": "pay-7" });
    let (status, paid) = call(addr, Method::POST, "/orders/o-1/payment", Some(payment)).await;
    assert_eq!((status, &paid["delivery"]), (StatusCode::ACCEPTED, &json!("delivered")), "{paid}");
    let shipped = engine.result(order_workflow, "o-1").await.unwrap().unwrap();
    let done = until(addr, "o-1", |order| order["status"] != "suspended").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["point"], "ship_order");
    assert!(done["updated_at"].as_str().is_some_and(|at| at.starts_with("20") && at.ends_with('Z')), "{done}");
    assert_eq!(done["result"]["Ok"]["tracking"], shipped.tracking, "{done}");
    let (status, _) = call(addr, Method::POST, "/orders/o-1/payment", Some(json!({ "amount": 1 }))).await;
    assert_eq!(status, StatusCode::CONFLICT, "a finished order takes no more payments");

    // A second order waits for its payment when the service shuts down.
    call(addr, Method::POST, "/orders", Some(json!({ "order_id": "o-2" }))).await;
    until(addr, "o-2", |order| order["waiting_for"] == "payment").await;
    stop.send(()).unwrap();
    server.await.unwrap().expect("the service stops cleanly");
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
    let store = engine.store();
    for id in ["o-1", "o-2"] {
        let record = store.load(id).await.unwrap().unwrap();
        assert_eq!(record.lease, None, "{id} is left leased after shutdown");
    }
    assert_eq!(store.load("o-2").await.unwrap().unwrap().status, Status::Suspended);
}
