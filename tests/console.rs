//! The web console over HTTP: what its pages and its API show, escaping of every user string,
//! and who may write (token, sessions, CSRF).

mod console_support;

use console_support::{TOKEN, console, engine, http, orders, pct, refuse};
use durable_core::store::Store;

/// The session cookie `/login` sets for the right token.
async fn sign_in(addr: std::net::SocketAddr) -> String {
    let form = format!("token={TOKEN}");
    let answer = http(addr, "POST", "/login", &[("Content-Type", "application/x-www-form-urlencoded")], &form).await;
    assert_eq!(answer.status, 303, "{answer:?}");
    let cookie = answer.header("set-cookie").expect("a session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    cookie.split(';').next().unwrap().to_owned()
}

/// The CSRF token in the forms of `html`.
fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn pages_show_counts_positions_and_errors() {
    let engine = engine();
    orders(&engine, &["c-ok"], &["c-wait-1", "c-wait-2"], &["c-broken"]).await;
    let server = console(&engine).await;
    let addr = server.addr();

    let overview = http(addr, "GET", "/", &[], "").await;
    assert_eq!(overview.status, 200);
    let body = &overview.body;
    assert!(body.contains("data-workflow=\"parcel\""), "{body}");
    assert!(body.contains("<strong>2</strong> waiting at <code>payment</code>"), "{body}");
    assert!(body.contains("<strong>1</strong> failed at <code>ship_order</code>"), "{body}");
    assert!(
        body.contains("data-status=\"failed\"><a href=\"/executions?workflow=parcel&amp;status=failed\">1</a>"),
        "{body}"
    );
    assert!(body.contains("flowchart TD"), "the diagram's source: {body}");
    assert!(overview.header("content-security-policy").unwrap().contains("default-src 'none'"));

    let failed = http(addr, "GET", "/executions?status=failed", &[], "").await;
    assert!(failed.body.contains("c-broken") && !failed.body.contains("c-ok"), "{}", failed.body);
    let bad = http(addr, "GET", "/executions?status=sleeping", &[], "").await;
    assert_eq!(bad.status, 400);

    let page = http(addr, "GET", "/executions/c-broken", &[], "").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("failed at</th><td id=\"place\">step ship_order ("), "{}", page.body);
    assert!(page.body.contains("carrier refused parcel c-broken"), "{}", page.body);
    assert!(page.body.contains("<pre id=\"state\">"), "{}", page.body);
    assert!(page.body.contains("ExecutionFailed"), "the timeline: {}", page.body);
    assert!(page.body.contains("Sign in</a> to redrive"), "no controls before signing in");
    assert_eq!(http(addr, "GET", "/executions/nobody", &[], "").await.status, 404);

    // The API says what the pages show; paging.
    let api = http(addr, "GET", "/api/executions/c-broken", &[], "").await.json();
    assert_eq!(api["report"]["status"], "failed");
    assert_eq!(api["report"]["position"]["point"], "ship_order");
    assert_eq!(api["can_redrive"], true);
    let first = http(addr, "GET", "/api/executions?per_page=3", &[], "").await.json();
    assert_eq!((first["executions"].as_array().unwrap().len(), &first["has_next"]), (3, &serde_json::json!(true)));
    let second = http(addr, "GET", "/api/executions?per_page=3&page=2", &[], "").await.json();
    assert_eq!((second["executions"].as_array().unwrap().len(), &second["has_next"]), (1, &serde_json::json!(false)));
    let overview = http(addr, "GET", "/api/overview", &[], "").await.json();
    assert_eq!(overview["workflows"][0]["total"], 4);
    server.stop();
}

#[tokio::test]
async fn every_user_string_is_escaped() {
    let engine = engine();
    let evil = "<script>alert('id')</script>";
    let evil_waiting = "w<script>alert(2)</script>";
    orders(&engine, &[], &[evil_waiting], &[evil]).await;
    let now = durable_core::Timestamp::from_millis(1_767_225_600_000);
    let store = engine.store();
    store.send_event(evil_waiting, "<script>name</script>", "\"<script>payload</script>\"", now).await.unwrap();
    let server = console(&engine).await;
    let addr = server.addr();
    let cookie = sign_in(addr).await;

    let mut bodies = Vec::new();
    for path in [
        "/".to_owned(),
        "/executions".to_owned(),
        format!("/executions?workflow={}", pct("<script>w</script>")),
        format!("/executions/{}", pct(evil)),
        format!("/executions/{}", pct(evil_waiting)),
        format!("/executions/{}", pct("<script>missing</script>")),
    ] {
        let answer = http(addr, "GET", &path, &[("Cookie", &cookie)], "").await;
        bodies.push((path, answer.body));
    }
    // An error message that quotes the event name the sender gave.
    let page = &bodies[4].1;
    let form = format!("csrf={}&name={}&payload={}", csrf(page), pct("<script>ev</script>"), pct("\"<script>\""));
    let headers = [("Cookie", cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
    let path = format!("/executions/{}/event", pct(evil_waiting));
    let refused = http(addr, "POST", &path, &headers, &form).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    bodies.push((path, refused.body));

    for (path, body) in &bodies {
        assert!(!body.contains("<script"), "{path} shows a raw <script>: {body}");
    }
    let page = &bodies[3].1;
    assert!(page.contains("&lt;script&gt;alert(") && page.contains("carrier refused parcel &lt;script&gt;"), "{page}");
    let waiting = &bodies[4].1;
    assert!(waiting.contains("&lt;script&gt;name&lt;"), "the inbox event's name: {waiting}");
    assert!(waiting.contains("&lt;script&gt;payload"), "the inbox event's payload: {waiting}");
    assert!(bodies[6].1.contains("&lt;script&gt;ev&lt;"), "{}", bodies[6].1);
    // The API answers JSON, never HTML, with the strings as they are.
    let api = http(addr, "GET", &format!("/api/executions/{}", pct(evil)), &[], "").await;
    assert!(api.header("content-type").unwrap().starts_with("application/json"));
    assert_eq!(api.json()["report"]["id"], evil);
    server.stop();
}

#[tokio::test]
async fn writes_need_the_token_and_forms_need_their_csrf_token() {
    let engine = engine();
    orders(&engine, &[], &["a-wait"], &["a-broken"]).await;
    let server = console(&engine).await;
    let addr = server.addr();
    let json = [("Content-Type", "application/json")];
    let bearer = format!("Bearer {TOKEN}");

    // The API: no token, a wrong one.
    let none = http(addr, "POST", "/api/executions/a-broken/redrive", &json, "{}").await;
    assert_eq!(none.status, 401, "{none:?}");
    let wrong = [("Authorization", "Bearer nope"), ("Content-Type", "application/json")];
    assert_eq!(http(addr, "POST", "/api/executions/a-broken/redrive", &wrong, "{}").await.status, 401);
    assert_eq!(http(addr, "POST", "/api/purge", &json, r#"{"older_than":"1d"}"#).await.status, 401);

    // Forms: no session, a wrong token at sign-in.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    assert_eq!(http(addr, "POST", "/executions/a-broken/redrive", &form, "csrf=x").await.status, 403);
    assert_eq!(http(addr, "POST", "/login", &form, "token=nope").await.status, 401);
    let cookie = sign_in(addr).await;
    let page = http(addr, "GET", "/executions/a-broken", &[("Cookie", &cookie)], "").await;
    let token = csrf(&page.body);
    assert!(!page.body.contains(TOKEN), "the console's token is never shown");
    let signed = [("Cookie", cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
    // A session without its form's token (a form posted from another site), another origin.
    assert_eq!(http(addr, "POST", "/executions/a-broken/redrive", &signed, "csrf=forged").await.status, 403);
    let elsewhere = [signed[0], signed[1], ("Origin", "http://evil.example")];
    let body = format!("csrf={token}");
    assert_eq!(http(addr, "POST", "/executions/a-broken/redrive", &elsewhere, &body).await.status, 403);
    assert_eq!(engine.status("a-broken").await.unwrap().status, durable_core::store::Status::Failed, "nothing changed");

    // With both: done, and the history says who.
    let body = format!("csrf={token}&reason=carrier+is+back");
    let done = http(addr, "POST", "/executions/a-broken/redrive", &signed, &body).await;
    assert_eq!((done.status, done.header("location")), (303, Some("/executions/a-broken")), "{done:?}");
    let last = engine.history("a-broken").await.unwrap().pop().unwrap();
    assert_eq!(last.detail.as_deref(), Some("from the checkpoint after payment, by web console: carrier is back"));

    // The API with the token: a clear refusal for a running execution, events delivered.
    let auth = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let again = http(addr, "POST", "/api/executions/a-broken/redrive", &auth, r#"{"reason":"again"}"#).await;
    assert_eq!(again.status, 409, "{again:?}");
    assert!(again.json()["error"].as_str().unwrap().contains("only a failed or cancelled execution"));
    let event = r#"{"name":"payment","payload":7,"key":"pay-1"}"#;
    let sent = http(addr, "POST", "/api/executions/a-wait/events", &auth, event).await;
    assert_eq!((sent.status, sent.json()["delivery"].as_str()), (200, Some("queued")), "{sent:?}");
    let bad = http(addr, "POST", "/api/executions/a-wait/events", &auth, r#"{"nme":"x"}"#).await;
    assert_eq!(bad.status, 400);
    let purge = http(addr, "POST", "/api/purge", &auth, r#"{"older_than":"30d","status":"running"}"#).await;
    assert_eq!(purge.status, 409, "{purge:?}");
    server.stop();
}

#[tokio::test]
async fn off_loopback_reads_need_the_token_too() {
    let engine = engine();
    orders(&engine, &["r-ok"], &[], &[]).await;
    let server =
        durable_core::web::start(engine.clone(), "0.0.0.0:0".parse().unwrap(), TOKEN.to_owned()).await.unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", server.addr().port()).parse().unwrap();
    assert_eq!(http(addr, "GET", "/", &[], "").await.status, 401);
    assert_eq!(http(addr, "GET", "/api/executions", &[], "").await.status, 401);
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(http(addr, "GET", "/api/executions", &[("Authorization", &bearer)], "").await.status, 200);
    let cookie = sign_in(addr).await;
    assert_eq!(http(addr, "GET", "/", &[("Cookie", &cookie)], "").await.status, 200);
    server.stop();
}

#[tokio::test]
async fn a_redrive_through_the_api_runs_to_success() {
    let engine = engine();
    orders(&engine, &[], &[], &["x-broken"]).await;
    let server = console(&engine).await;
    let addr = server.addr();
    refuse("x-broken", false);
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let redriven =
        http(addr, "POST", "/api/executions/x-broken/redrive", &auth, r#"{"by":"ops","reason":"fixed"}"#).await;
    assert_eq!((redriven.status, redriven.json()["status"].as_str()), (200, Some("running")), "{redriven:?}");
    engine.worker("w-2").run_until_idle().await.unwrap();
    let page = http(addr, "GET", "/api/executions/x-broken", &[], "").await.json();
    assert_eq!(page["report"]["status"], "succeeded");
    let kinds: Vec<&str> = page["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"ExecutionRedriven"), "{kinds:?}");
    server.stop();
}
