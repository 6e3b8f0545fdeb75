//! The order workflow behind an HTTP API (axum), with its worker in the same process: how an
//! application embeds the engine.
//!
//! - `POST /orders` with `{"order_id": "o-42"}` starts the order (idempotently: the order id is
//!   the execution id) and answers `201 Created`, or `200 OK` if it existed;
//! - `POST /orders/{id}/payment` with a [`Payment`](crate::order::Payment) delivers the payment event: `202 Accepted`,
//!   `404` for an unknown order, `409` for a finished one, `422` for a payload that is not a
//!   payment;
//! - `GET /orders/{id}` answers its status, the point of its last checkpoint, the state stored
//!   there, the event it waits for and, once finished, its result.
//!
//! Every answer is JSON; an error is `{"error": "..."}` with the engine's message, and a body
//! that is not the JSON a route expects is a `400`.
//!
//! [`serve`] runs the API and a worker until a shutdown signal; `cargo run --example service`
//! runs it on a SQLite file until Ctrl-C.

use std::future::Future;
use std::io;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use durable_core::store::{AnyStore, Store};
use durable_core::{Delivery, Engine, EngineError};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::order::order_workflow;

/// The engine the handlers share: one type whatever store the configuration names.
pub type OrderEngine = Engine<AnyStore>;

/// The body of `POST /orders`.
#[derive(Debug, Deserialize)]
pub struct NewOrder {
    /// The order's id, also its execution's id.
    pub order_id: String,
}

/// The API's routes, on `engine`.
pub fn router(engine: OrderEngine) -> Router {
    Router::new()
        .route("/orders", post(start_order))
        .route("/orders/{id}", get(order_status))
        .route("/orders/{id}/payment", post(pay_order))
        .with_state(engine)
}

/// Serves the API on `listener` and runs a worker named `worker` on `engine`, both until
/// `shutdown` completes. Then the server stops accepting connections and finishes the
/// requests in flight, and the worker claims nothing more and lets the runs in flight reach
/// their next checkpoint, where they commit and release their lease: no execution is left
/// leased to a process that is gone. Returns once both have stopped.
pub async fn serve(
    listener: TcpListener,
    engine: OrderEngine,
    worker: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // The worker stops when `stop` says so or is dropped: when the server stops, also on an
    // error, the shutdown future that owns `stop` is dropped with it.
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let worker = engine.worker(worker);
    let running = tokio::spawn(async move {
        worker.run(async move { stopped.wait_for(|stop| *stop).await.map_or((), |_| ()) }).await;
    });
    let served = axum::serve(listener, router(engine))
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await;
    running.await.map_err(io::Error::other)?;
    served
}

async fn start_order(State(engine): State<OrderEngine>, body: Bytes) -> Response {
    let order: NewOrder = match serde_json::from_slice(&body) {
        Ok(order) => order,
        Err(error) => return not_expected(&error),
    };
    match engine.start(order_workflow, order.order_id.clone(), order.order_id).await {
        Ok(handle) => {
            let code = if handle.is_new() { StatusCode::CREATED } else { StatusCode::OK };
            reply(code, json!({ "id": handle.id(), "new": handle.is_new() }))
        }
        Err(error) => problem(&error),
    }
}

async fn pay_order(State(engine): State<OrderEngine>, Path(id): Path<String>, body: Bytes) -> Response {
    // The engine checks the payload against the type the workflow waits for; take any JSON
    // here so that a wrong one gets the engine's explanation, not a generic one.
    let payment: Value = match serde_json::from_slice(&body) {
        Ok(payment) => payment,
        Err(error) => return not_expected(&error),
    };
    match engine.send_event(&id, "payment", &payment).await {
        Ok(delivery) => {
            let delivery = match delivery {
                Delivery::Delivered => "delivered",
                Delivery::Queued => "queued",
                Delivery::Duplicate => "duplicate",
            };
            reply(StatusCode::ACCEPTED, json!({ "id": id, "delivery": delivery }))
        }
        Err(error) => problem(&error),
    }
}

async fn order_status(State(engine): State<OrderEngine>, Path(id): Path<String>) -> Response {
    let status = match engine.status(&id).await {
        Ok(status) => status,
        Err(error) => return problem(&error),
    };
    // The status says where the order is; the record holds the state stored there and, once
    // it has finished, its result.
    let record = match engine.store().load(&id).await {
        Ok(Some(record)) => record,
        Ok(None) => return problem(&EngineError::UnknownExecution(id)),
        Err(error) => return problem(&EngineError::Store(error)),
    };
    let parse = |text: Option<&str>| text.and_then(|text| serde_json::from_str::<Value>(text).ok());
    let body = json!({
        "id": status.id,
        "status": status.status.as_str(),
        "point": status.point,
        "waiting_for": status.waiting_for,
        "state": parse(record.snapshot.as_ref().map(|snapshot| snapshot.state.as_str())),
        "result": parse(record.output.as_deref()),
        "updated_at": durable_core::render::utc(status.updated_at),
    });
    reply(StatusCode::OK, body)
}

/// An engine error as an HTTP answer: what the caller got wrong is a 4xx with the engine's
/// message; a failing store is a 503 (worth retrying) and the rest a 500.
fn problem(error: &EngineError) -> Response {
    let code = match error {
        EngineError::UnknownExecution(_) => StatusCode::NOT_FOUND,
        EngineError::Finished { .. } | EngineError::Cancelled(_) | EngineError::WorkflowMismatch { .. } => {
            StatusCode::CONFLICT
        }
        EngineError::Invalid(_) | EngineError::InvalidInput { .. } => StatusCode::BAD_REQUEST,
        EngineError::MalformedPayload { .. } | EngineError::EventRejected { .. } | EngineError::UnknownEvent { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        EngineError::Store(store) if store.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if code.is_server_error() {
        tracing::error!(%error, "request failed");
    }
    reply(code, json!({ "error": error.to_string() }))
}

/// A `400 Bad Request` for a body that is not the JSON a route expects.
///
/// (Routes read their bodies with serde_json rather than axum's `Json` extractor, whose
/// feature turns on serde_json's `raw_value` for the whole workspace, which changes compiler
/// messages the UI tests compare.)
fn not_expected(error: &serde_json::Error) -> Response {
    reply(StatusCode::BAD_REQUEST, json!({ "error": format!("the body is not the JSON expected: {error}") }))
}

/// A JSON answer.
fn reply(code: StatusCode, body: Value) -> Response {
    (code, [(CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}
