//! The web console (feature `web`): `durable serve`, pages for people who operate executions
//! without reading code, and a JSON API under `/api/` for scripts and other systems.
//!
//! Pages are rendered on the server (minijinja templates, every value HTML-escaped) and carry
//! no JavaScript at all: a `Content-Security-Policy` forbids scripts, so even a string that
//! escaped escaping could not run. Workflow diagrams are shown as their Mermaid source, the
//! same as `durable graph` prints.
//!
//! | page / endpoint                         | what                                                   |
//! |-----------------------------------------|--------------------------------------------------------|
//! | `GET /`                                 | per workflow: totals by status, where executions are ("3 failed at ship_order"), the diagram |
//! | `GET /executions?workflow=&status=&page=` | the execution list, filtered and paged              |
//! | `GET /executions/{id}`                  | where it is or broke, its state at every checkpoint, its timeline, controls |
//! | `GET /api/overview`                     | the overview as JSON                                   |
//! | `GET /api/executions?workflow=&status=&page=&per_page=` | the list as JSON                      |
//! | `GET /api/executions/{id}`              | the execution page as JSON                             |
//! | `POST /api/executions/{id}/redrive`     | `{"reason": "..", "by": "..", "from_seq": 3}` (all optional) |
//! | `POST /api/executions/{id}/wake`        | `{"reason": "..", "by": ".."}`                         |
//! | `POST /api/executions/{id}/cancel`      | `{"reason": "..", "by": ".."}`                         |
//! | `POST /api/executions/{id}/events`      | `{"name": "payment", "payload": {..}, "key": ".."}` (`key` optional: idempotency) |
//! | `POST /api/purge`                       | `{"older_than": "30d", "workflow": "..", "status": "succeeded"}` |
//!
//! **Authentication.** Every write needs the console's token: the API takes it as
//! `Authorization: Bearer TOKEN`; a person signs in once with it on `/login`, which sets a
//! session cookie (`HttpOnly`, `SameSite=Strict`). **CSRF:** each session has its own random
//! token that every form carries in a hidden field (the synchronizer-token pattern): a form
//! posted from another site has the cookie at most, never the field, and is refused; requests
//! with an `Origin` header of another host are refused too. **Reads** are open when the console
//! listens on a loopback address (the default, `127.0.0.1:8080`); bound to any other address,
//! reads need the token (or a session) as well. Full callback tokens and the console's own token
//! are never shown.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::cli::CliError;
use crate::engine::Engine;
use crate::store::Store;

mod api;
mod data;
mod pages;

/// The name of the session cookie.
const COOKIE: &str = "durable_console";
/// The most sessions kept at once; signing in beyond it forgets every other session.
const MAX_SESSIONS: usize = 1_024;

/// A console over `engine`: its token, its sessions, its templates.
pub(crate) struct Console<S: Store> {
    engine: Engine<S>,
    token: String,
    /// Whether it listens on loopback only (then reads need no token).
    loopback: bool,
    /// Session id -> its CSRF token.
    sessions: Mutex<HashMap<String, String>>,
    templates: minijinja::Environment<'static>,
}

/// A running console: where it listens, and its task.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// The address it listens on (with the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving.
    pub fn stop(self) {
        self.task.abort();
    }

    /// Serves until the task ends (an error of the listener).
    pub async fn wait(self) -> std::io::Result<()> {
        match self.task.await {
            Ok(result) => result,
            Err(error) => Err(std::io::Error::other(error)),
        }
    }
}

/// Starts the console of `engine` on `bind`, whose writes need `token`; returns once it
/// listens. For `durable serve`, tests and programs that embed the console next to their
/// workers (their engine then wakes its own worker at once after a redrive).
pub async fn start<S: Store>(engine: Engine<S>, bind: SocketAddr, token: String) -> std::io::Result<Server> {
    if token.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "the console's token must not be empty"));
    }
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let router = router(engine, token, addr.ip().is_loopback());
    let task = tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(Server { addr, task })
}

/// `durable serve`: starts the console, prints where, and serves until it fails.
pub(crate) async fn serve<S: Store>(
    engine: Engine<S>,
    bind: SocketAddr,
    token: Option<String>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (token, generated) = match token {
        Some(token) => (token, false),
        None => (random_hex(16), true),
    };
    let server = start(engine, bind, token.clone()).await.map_err(|error| CliError::Serve(error.to_string()))?;
    writeln!(out, "durable console on http://{}/", server.addr())?;
    if generated {
        writeln!(out, "write token (sign in with it; API: Authorization: Bearer ...): {token}")?;
    }
    if !server.addr().ip().is_loopback() {
        writeln!(out, "not on loopback: reads need the token too")?;
    }
    out.flush()?;
    server.wait().await.map_err(|error| CliError::Serve(error.to_string()))
}

fn router<S: Store>(engine: Engine<S>, token: String, loopback: bool) -> Router {
    let console = Arc::new(Console {
        engine,
        token,
        loopback,
        sessions: Mutex::new(HashMap::new()),
        templates: pages::templates(),
    });
    Router::new()
        .route("/", get(pages::overview::<S>))
        .route("/executions", get(pages::list::<S>))
        .route("/executions/{id}", get(pages::execution::<S>))
        .route("/executions/{id}/{action}", post(pages::control::<S>))
        .route("/login", get(pages::login_form::<S>).post(pages::login::<S>))
        .route("/logout", post(pages::logout::<S>))
        .route("/api/overview", get(api::overview::<S>))
        .route("/api/executions", get(api::list::<S>))
        .route("/api/executions/{id}", get(api::execution::<S>))
        .route("/api/executions/{id}/{action}", post(api::control::<S>))
        .route("/api/purge", post(api::purge::<S>))
        .fallback(|| async { pages::plain(StatusCode::NOT_FOUND, "not found") })
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(console)
}

/// Headers on every answer: no scripts, no framing, no sniffing, no caching of what may be
/// private. The referrer policy is `same-origin`, not `no-referrer`: under `no-referrer` a
/// browser sends `Origin: null` with the console's own forms, which the origin check refuses.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let csp = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
               frame-ancestors 'none'; base-uri 'none'";
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `bytes` random bytes as hex.
fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

/// Compares secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl<S: Store> Console<S> {
    /// Whether `headers` carry the console's token as `Authorization: Bearer TOKEN`.
    fn bearer(&self, headers: &HeaderMap) -> bool {
        let value = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
        value
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|token| same_secret(token.trim(), &self.token))
    }

    /// The session the request's cookie names, with its CSRF token.
    fn session(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let cookies = headers.get_all(header::COOKIE).iter().filter_map(|value| value.to_str().ok());
        let id = cookies
            .flat_map(|line| line.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value.to_owned())?;
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let csrf = sessions.iter().find(|(known, _)| same_secret(known, &id)).map(|(_, csrf)| csrf.clone())?;
        Some((id, csrf))
    }

    /// A new session; returns its id.
    fn sign_in(&self) -> String {
        let id = random_hex(32);
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() >= MAX_SESSIONS {
            sessions.clear();
        }
        sessions.insert(id.clone(), random_hex(32));
        id
    }

    fn sign_out(&self, id: &str) {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }

    /// `Err` (403) unless reads are open or the request is authenticated.
    #[allow(clippy::result_large_err)]
    fn may_read(&self, headers: &HeaderMap) -> Result<(), Response> {
        if self.loopback || self.bearer(headers) || self.session(headers).is_some() {
            return Ok(());
        }
        Err(pages::plain(
            StatusCode::UNAUTHORIZED,
            "this console is not on loopback: sign in (/login) or send the token",
        ))
    }
}

/// Whether a request with `headers` came from a page of this console, when the browser says
/// where it came from (`Origin`): a form posted by another site is refused.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    !host.is_empty() && origin_host == host
}

/// A JSON answer. (Not axum's `Json`: its feature turns on serde_json's `raw_value` for the
/// whole build, which changes the compiler messages the UI tests expect.)
fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => pages::plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot encode the answer: {error}")),
    }
}

/// Percent-encodes everything but unreserved characters, for an id in a URL path or query.
pub(crate) fn pct(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
