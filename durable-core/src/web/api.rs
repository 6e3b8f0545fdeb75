//! The JSON API under `/api/`: what the pages show, and the controls. Writes need
//! `Authorization: Bearer TOKEN`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::pages::{parse_status, status_of};
use super::{Console, data, json_response};
use crate::EngineError;
use crate::engine::{Operator, PurgeFilter};
use crate::store::{Store, StoreError};

type Shared<S> = State<Arc<Console<S>>>;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, &json!({ "error": message.into() }))
}

fn store_error(failure: &StoreError) -> Response {
    let status =
        if failure.is_retryable() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::INTERNAL_SERVER_ERROR };
    error(status, failure.to_string())
}

fn engine_error(failure: &EngineError) -> Response {
    error(status_of(failure), failure.to_string())
}

impl<S: Store> Console<S> {
    #[allow(clippy::result_large_err)]
    fn api_read(&self, headers: &HeaderMap) -> Result<(), Response> {
        if self.loopback || self.bearer(headers) || self.session(headers).is_some() {
            return Ok(());
        }
        Err(error(StatusCode::UNAUTHORIZED, "this console is not on loopback: send Authorization: Bearer TOKEN"))
    }

    #[allow(clippy::result_large_err)]
    fn api_write(&self, headers: &HeaderMap) -> Result<(), Response> {
        if self.bearer(headers) {
            return Ok(());
        }
        Err(error(StatusCode::UNAUTHORIZED, "writes need the console's token: Authorization: Bearer TOKEN"))
    }
}

pub(super) async fn overview<S: Store>(State(console): Shared<S>, headers: HeaderMap) -> Response {
    if let Err(refused) = console.api_read(&headers) {
        return refused;
    }
    match data::overview(console.engine.store()).await {
        Ok(workflows) => json_response(StatusCode::OK, &json!({ "workflows": workflows })),
        Err(failure) => store_error(&failure),
    }
}

pub(super) async fn list<S: Store>(
    State(console): Shared<S>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = console.api_read(&headers) {
        return refused;
    }
    let status = match parse_status(query.get("status")) {
        Ok(status) => status,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let number = |name: &str, default: usize| match query.get(name) {
        None => Ok(default),
        Some(text) => text.parse::<usize>().map_err(|_| format!("`{name}` must be a whole number, not `{text}`")),
    };
    let (page, per_page) = match (number("page", 1), number("per_page", 50)) {
        (Ok(page), Ok(per_page)) => (page, per_page),
        (Err(message), _) | (_, Err(message)) => return error(StatusCode::BAD_REQUEST, message),
    };
    let workflow = query.get("workflow").filter(|w| !w.is_empty()).cloned();
    match data::list(console.engine.store(), workflow, status, page, per_page).await {
        Ok(list) => json_response(StatusCode::OK, &list),
        Err(failure) => store_error(&failure),
    }
}

pub(super) async fn execution<S: Store>(
    State(console): Shared<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(refused) = console.api_read(&headers) {
        return refused;
    }
    match data::execution(console.engine.store(), &id).await {
        Ok(Some(page)) => json_response(StatusCode::OK, &page),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("there is no execution `{id}`")),
        Err(failure) => store_error(&failure),
    }
}

/// The body of a control; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlBody {
    reason: Option<String>,
    by: Option<String>,
    from_seq: Option<u64>,
    name: Option<String>,
    payload: Option<serde_json::Value>,
    key: Option<String>,
}

/// Decodes a JSON body; an empty body is `{}`.
#[allow(clippy::result_large_err)]
fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &Bytes) -> Result<T, Response> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|failure| error(StatusCode::BAD_REQUEST, format!("the body is not valid: {failure}")))
}

pub(super) async fn control<S: Store>(
    State(console): Shared<S>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    bytes: Bytes,
) -> Response {
    if let Err(refused) = console.api_write(&headers) {
        return refused;
    }
    let request: ControlBody = match body(&bytes) {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let by = request.by.clone().filter(|by| !by.is_empty()).unwrap_or_else(|| "api".to_owned());
    let operator = Operator::new(by, request.reason.clone().unwrap_or_default());
    let engine = &console.engine;
    let answer = match action.as_str() {
        "redrive" => {
            let redriven = match request.from_seq {
                Some(seq) => engine.redrive_from(&id, seq, &operator).await,
                None => engine.redrive(&id, &operator).await,
            };
            redriven.map(|record| json!({ "id": record.id, "status": record.status, "version": record.version }))
        }
        "wake" => engine
            .wake(&id, &operator)
            .await
            .map(|record| json!({ "id": record.id, "status": record.status, "version": record.version })),
        "cancel" => engine.cancel_by(&id, &operator).await.map(|()| json!({ "id": id, "status": "cancelled" })),
        "events" => {
            let Some(name) = request.name.as_deref() else {
                return error(StatusCode::BAD_REQUEST, "an event needs a `name`");
            };
            let payload = request.payload.clone().unwrap_or(serde_json::Value::Null).to_string();
            let delivery = match request.key.as_deref() {
                Some(key) => engine.send_event_once(&id, name, key, &request.payload).await,
                None => engine.send_event_json(&id, name, &payload).await,
            };
            delivery
                .map(|delivery| json!({ "id": id, "event": name, "delivery": format!("{delivery:?}").to_lowercase() }))
        }
        _ => return error(StatusCode::NOT_FOUND, format!("no control `{action}`: redrive, wake, cancel or events")),
    };
    match answer {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(failure) => engine_error(&failure),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeBody {
    older_than: Option<String>,
    workflow: Option<String>,
    status: Option<String>,
    by: Option<String>,
    reason: Option<String>,
}

pub(super) async fn purge<S: Store>(State(console): Shared<S>, headers: HeaderMap, bytes: Bytes) -> Response {
    if let Err(refused) = console.api_write(&headers) {
        return refused;
    }
    let request: PurgeBody = match body(&bytes) {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let Some(older_than) = request.older_than.as_deref() else {
        return error(StatusCode::BAD_REQUEST, "a purge needs `older_than` (`30d`, `12h`...)");
    };
    let older_than = match crate::cli::parse_age(older_than) {
        Ok(age) => age,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let status = match parse_status(request.status.as_ref()) {
        Ok(status) => status,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let filter = PurgeFilter { older_than, workflow: request.workflow.filter(|w| !w.is_empty()), status };
    let by = request.by.filter(|by| !by.is_empty()).unwrap_or_else(|| "api".to_owned());
    match console.engine.purge(&filter, &Operator::new(by, request.reason.unwrap_or_default())).await {
        Ok(purged) => json_response(StatusCode::OK, &json!({ "purged": purged })),
        Err(failure) => engine_error(&failure),
    }
}
