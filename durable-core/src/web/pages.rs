//! The console's pages: rendered on the server from minijinja templates whose names end in
//! `.html`, so that every value is HTML-escaped.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::value::Serde;
use minijinja::{Environment, Value, context};

use super::{COOKIE, Console, data, pct, same_origin, same_secret};
use crate::EngineError;
use crate::engine::Operator;
use crate::store::{Status, Store, StoreError};

/// The templates, compiled once.
pub(super) fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    // Names ending in `.html` are escaped for HTML (minijinja's default for them); checked at
    // start, so a broken template is a test failure, never a page that half renders.
    let sources = [
        ("base.html", include_str!("templates/base.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("list.html", include_str!("templates/list.html")),
        ("execution.html", include_str!("templates/execution.html")),
        ("login.html", include_str!("templates/login.html")),
        ("message.html", include_str!("templates/message.html")),
    ];
    for (name, source) in sources {
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, "the console's template {name} does not compile");
        }
    }
    env.add_filter("pct", |text: String| pct(&text));
    env
}

/// A plain-text answer (for errors outside any page).
pub(super) fn plain(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message.to_owned()).into_response()
}

impl<S: Store> Console<S> {
    /// Renders template `name` with `ctx` and what every page shows (signed in, CSRF token).
    fn page(&self, status: StatusCode, name: &str, headers: &HeaderMap, ctx: Value) -> Response {
        let session = self.session(headers);
        let common = context! {
            signed_in => session.is_some(),
            csrf => session.map(|(_, csrf)| csrf),
            loopback => self.loopback,
        };
        let ctx = context! { ..ctx, ..common };
        let rendered = self.templates.get_template(name).and_then(|template| template.render(ctx));
        match rendered {
            Ok(html) => (status, Html(html)).into_response(),
            Err(error) => {
                tracing::error!(%error, "the console cannot render {name}");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "this page cannot be rendered (see the console's log)")
            }
        }
    }

    /// A page that says `message` (escaped like everything else).
    fn message(&self, status: StatusCode, headers: &HeaderMap, title: &str, message: &str) -> Response {
        self.page(status, "message.html", headers, context! { title, message })
    }

    fn store_failed(&self, headers: &HeaderMap, error: &StoreError) -> Response {
        let status =
            if error.is_retryable() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::INTERNAL_SERVER_ERROR };
        self.message(status, headers, "the store failed", &error.to_string())
    }
}

/// The HTTP status of an engine error.
pub(super) fn status_of(error: &EngineError) -> StatusCode {
    match error {
        EngineError::UnknownExecution(_) => StatusCode::NOT_FOUND,
        EngineError::Refused { .. } | EngineError::Finished { .. } => StatusCode::CONFLICT,
        EngineError::Store(error) if error.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
        EngineError::Store(_) | EngineError::Stopped => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

type Shared<S> = State<Arc<Console<S>>>;

pub(super) async fn overview<S: Store>(State(console): Shared<S>, headers: HeaderMap) -> Response {
    if let Err(refused) = console.may_read(&headers) {
        return refused;
    }
    match data::overview(console.engine.store()).await {
        Ok(workflows) => console.page(
            StatusCode::OK,
            "overview.html",
            &headers,
            context! { workflows => Value::from(Serde(&workflows)) },
        ),
        Err(error) => console.store_failed(&headers, &error),
    }
}

/// Reads an optional status from a query or a form: empty means none.
pub(super) fn parse_status(text: Option<&String>) -> Result<Option<Status>, String> {
    match text.map(|text| text.trim()).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|error: crate::store::ParseNameError| error.to_string()),
    }
}

pub(super) async fn list<S: Store>(
    State(console): Shared<S>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = console.may_read(&headers) {
        return refused;
    }
    let status = match parse_status(query.get("status")) {
        Ok(status) => status,
        Err(message) => return console.message(StatusCode::BAD_REQUEST, &headers, "bad filter", &message),
    };
    let workflow = query.get("workflow").map(|w| w.trim().to_owned()).filter(|w| !w.is_empty());
    let page = query.get("page").and_then(|page| page.parse().ok()).unwrap_or(1);
    match data::list(console.engine.store(), workflow, status, page, 50).await {
        Ok(list) => {
            let statuses: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            console.page(
                StatusCode::OK,
                "list.html",
                &headers,
                context! { list => Value::from(Serde(&list)), statuses },
            )
        }
        Err(error) => console.store_failed(&headers, &error),
    }
}

pub(super) async fn execution<S: Store>(
    State(console): Shared<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(refused) = console.may_read(&headers) {
        return refused;
    }
    match data::execution(console.engine.store(), &id).await {
        Ok(Some(page)) => {
            console.page(StatusCode::OK, "execution.html", &headers, context! { page => Value::from(Serde(&page)), id })
        }
        Ok(None) => {
            let message = format!("there is no execution `{id}` (it may have been purged)");
            console.message(StatusCode::NOT_FOUND, &headers, "not found", &message)
        }
        Err(error) => console.store_failed(&headers, &error),
    }
}

/// A control posted by a form of the execution page: redrive, wake, cancel, event.
pub(super) async fn control<S: Store>(
    State(console): Shared<S>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let csrf_ok = match console.session(&headers) {
        Some((_, csrf)) => form.get("csrf").is_some_and(|sent| same_secret(sent, &csrf)),
        None => false,
    };
    if !same_origin(&headers) || !csrf_ok {
        let message = "sign in with the console's token first (or reload the page: the form is stale)";
        return console.message(StatusCode::FORBIDDEN, &headers, "not allowed", message);
    }
    let field = |name: &str| form.get(name).map(|value| value.trim().to_owned()).unwrap_or_default();
    let by = Some(field("by")).filter(|by| !by.is_empty()).unwrap_or_else(|| "web console".to_owned());
    let operator = Operator::new(by, field("reason"));
    let engine = &console.engine;
    let result = match action.as_str() {
        "redrive" => match field("from_seq") {
            seq if seq.is_empty() => engine.redrive(&id, &operator).await.map(drop),
            seq => match seq.parse() {
                Ok(seq) => engine.redrive_from(&id, seq, &operator).await.map(drop),
                Err(_) => Err(EngineError::InvalidRequest(format!("`{seq}` is not a history event number"))),
            },
        },
        "wake" => engine.wake(&id, &operator).await.map(drop),
        "cancel" => engine.cancel_by(&id, &operator).await,
        "event" => {
            let payload = Some(field("payload")).filter(|p| !p.is_empty()).unwrap_or_else(|| "null".to_owned());
            engine.send_event_json(&id, &field("name"), &payload).await.map(drop)
        }
        _ => return console.message(StatusCode::NOT_FOUND, &headers, "not found", "no such control"),
    };
    match result {
        Ok(()) => Redirect::to(&format!("/executions/{}", pct(&id))).into_response(),
        Err(error) => console.message(status_of(&error), &headers, &format!("cannot {action}"), &error.to_string()),
    }
}

pub(super) async fn login_form<S: Store>(State(console): Shared<S>, headers: HeaderMap) -> Response {
    console.page(StatusCode::OK, "login.html", &headers, context! { error => false })
}

pub(super) async fn login<S: Store>(
    State(console): Shared<S>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let token = form.get("token").map(|token| token.trim()).unwrap_or("");
    if !same_origin(&headers) || !same_secret(token, &console.token) {
        return console.page(StatusCode::UNAUTHORIZED, "login.html", &headers, context! { error => true });
    }
    let session = console.sign_in();
    let cookie = format!("{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict");
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub(super) async fn logout<S: Store>(
    State(console): Shared<S>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some((id, csrf)) = console.session(&headers)
        && same_origin(&headers)
        && form.get("csrf").is_some_and(|sent| same_secret(sent, &csrf))
    {
        console.sign_out(&id);
    }
    let mut response = Redirect::to("/").into_response();
    let expired = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
