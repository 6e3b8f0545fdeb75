//! The web console in a real browser: the system's headless Chromium, driven over the DevTools
//! protocol. Open the overview and read the counts, open a failed execution and read its state
//! and error, sign in, redrive it, and see it succeed; send an event through the API and see
//! the waiting execution's page change.
//!
//! Without Chromium the test says that it skips, unless `CI` is set: there it must run
//! (`.ci/run` installs Chromium from the system's packages).

#[path = "../../tests/console_support.rs"]
mod console_support;

use std::path::PathBuf;

use chromiumoxide::cdp::browser_protocol::page::EventLoadEventFired;
use chromiumoxide::{Browser, BrowserConfig, Page};
use console_support::{TOKEN, console, engine, http, orders, refuse};
use futures_util::StreamExt;

/// The system's Chromium, if there is one on `PATH`.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}

/// The text of the first element `selector` matches on `page`.
async fn text(page: &Page, selector: &str) -> String {
    let element = page.find_element(selector).await.unwrap_or_else(|e| panic!("no `{selector}` on the page: {e}"));
    element.inner_text().await.unwrap().unwrap_or_default()
}

/// Opens `url` and waits until it has loaded (each navigation of the test is awaited to its
/// load event, so that no navigation is still under way when the next one starts).
async fn open(page: &Page, url: String) {
    let mut loaded = page.event_listener::<EventLoadEventFired>().await.unwrap();
    page.goto(url).await.unwrap();
    loaded.next().await.expect("the page loads");
}

/// Clicks `selector` and waits until the page it leads to has loaded: the listener is set up
/// before the click, so the load event cannot be missed, whenever the navigation starts.
async fn click(page: &Page, selector: &str) {
    let mut loaded = page.event_listener::<EventLoadEventFired>().await.unwrap();
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("no `{selector}` to click: {e}"))
        .click()
        .await
        .unwrap();
    loaded.next().await.expect("the page loads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_redrives_a_failed_execution_in_the_browser() {
    let Some(executable) = chromium() else {
        assert!(!in_ci(), "CI is set but Chromium is not installed: .ci/run installs it (apt-get install chromium)");
        eprintln!("skipping the browser test: no Chromium on PATH (apt-get install chromium)");
        return;
    };
    let engine = engine();
    orders(&engine, &["web-ok"], &["web-wait"], &["web-broken"]).await;
    let server = console(&engine).await;
    let base = format!("http://{}", server.addr());

    let profile = tempfile::tempdir().unwrap();
    let config = BrowserConfig::builder()
        .chrome_executable(executable)
        .no_sandbox()
        .user_data_dir(profile.path())
        .args([
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .build()
        .unwrap();
    let (mut browser, mut handler) = Browser::launch(config).await.expect("Chromium starts");
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });

    // The overview: totals and where executions are.
    let page = browser.new_page("about:blank").await.unwrap();
    open(&page, format!("{base}/")).await;
    assert_eq!(text(&page, "td[data-status=failed]").await.trim(), "1");
    assert_eq!(text(&page, "td[data-status=succeeded]").await.trim(), "1");
    assert_eq!(
        text(&page, "li[data-what=failed]").await.trim(),
        "1 failed at ship_order (the longest since 2026-01-01T00:00:00.000Z)"
    );
    assert!(text(&page, "li[data-what=waiting]").await.starts_with("1 waiting at payment"));

    // The failed ones, then the failed execution: where, why, in what state.
    click(&page, "td[data-status=failed] a").await;
    click(&page, "a.execution").await;
    assert!(text(&page, "#place").await.starts_with("step ship_order ("));
    assert_eq!(text(&page, "#error").await.trim(), "step `ship_order` failed: carrier refused parcel web-broken");
    let state = text(&page, "#state").await;
    assert!(state.contains("\"paid\": 42") && state.contains("\"amount\": 1000"), "{state}");
    assert_eq!(text(&page, "#status").await, "failed");

    // Sign in, redrive; a worker runs it; the page shows it succeeded.
    open(&page, format!("{base}/login")).await;
    page.find_element("#token").await.unwrap().click().await.unwrap().type_str(TOKEN).await.unwrap();
    click(&page, "#sign-in-button").await;
    open(&page, format!("{base}/executions/web-broken")).await;
    refuse("web-broken", false);
    page.find_element("input[name=reason]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str("carrier is back")
        .await
        .unwrap();
    click(&page, "#redrive").await;
    assert_eq!(text(&page, "#status").await, "running");
    engine.worker("w-2").run_until_idle().await.unwrap();
    open(&page, page.url().await.unwrap().unwrap()).await;
    assert_eq!(text(&page, "#status").await, "succeeded");
    let timeline = text(&page, "#timeline").await;
    assert!(
        timeline.contains("ExecutionRedriven") && timeline.contains("by web console: carrier is back"),
        "{timeline}"
    );

    // An external system sends the awaited event through the API; the page changes.
    open(&page, format!("{base}/executions/web-wait")).await;
    assert_eq!(text(&page, "#status").await, "suspended");
    let bearer = format!("Bearer {TOKEN}");
    let headers = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let sent =
        http(server.addr(), "POST", "/api/executions/web-wait/events", &headers, r#"{"name":"payment","payload":9}"#)
            .await;
    assert_eq!(sent.status, 200, "{sent:?}");
    engine.worker("w-2").run_until_idle().await.unwrap();
    open(&page, page.url().await.unwrap().unwrap()).await;
    assert_eq!(text(&page, "#status").await, "succeeded");

    browser.close().await.unwrap();
    browser.wait().await.unwrap();
    events.abort();
    server.stop();
}
