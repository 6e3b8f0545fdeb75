//! The order workflow's logs as an engineer reads them: snapshots of rendered histories and of
//! `durable show`, what `show` says about a failure, and the structured `tracing` events.
//!
//! Snapshots live in `snapshots/`; review a changed one by reading the `.snap.new` file insta
//! writes, then rename it over the `.snap`.

mod stories;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use durable_core::render::{ExecutionView, Report};
use durable_core::testing::Harness;
use stories::{SHIPPING, harness};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

/// The history `show` prints for a snapshot: enough to see what led to where it is.
const LAST: usize = 6;

async fn snapshot_story(name: &str, story: impl AsyncFnOnce(&mut Harness, &str)) {
    let _turn = SHIPPING.lock().await;
    let mut h = harness();
    story(&mut h, "o-42").await;
    insta::assert_snapshot!(format!("{name}_log"), h.render_log("o-42").await.unwrap());
    insta::assert_snapshot!(format!("{name}_show"), h.show("o-42", LAST).await.unwrap());
}

#[tokio::test]
async fn a_successful_order() {
    snapshot_story("succeeded", stories::succeeded).await;
}

#[tokio::test]
async fn an_order_waiting_for_its_payment() {
    snapshot_story("waiting", stories::waiting).await;
}

#[tokio::test]
async fn an_order_whose_shipment_failed_after_payment() {
    snapshot_story("shipment_failed", stories::shipment_failed).await;
}

#[tokio::test]
async fn an_order_resumed_after_a_two_hour_wait() {
    snapshot_story("resumed_after_two_hours", stories::resumed_after_two_hours).await;
}

async fn snapshot_log(name: &str, story: impl AsyncFnOnce(&mut Harness, &str)) {
    let _turn = SHIPPING.lock().await;
    let mut h = harness();
    story(&mut h, "o-42").await;
    insta::assert_snapshot!(format!("{name}_log"), h.render_log("o-42").await.unwrap());
}

#[tokio::test]
async fn an_order_shipped_at_the_second_attempt() {
    snapshot_log("retried", stories::retried).await;
}

#[tokio::test]
async fn an_order_whose_payment_never_came() {
    snapshot_log("timed_out", stories::timed_out).await;
}

#[tokio::test]
async fn an_order_whose_process_crashed_after_validation() {
    snapshot_log("crashed_after_validation", stories::crashed_after_validation).await;
}

/// The line of `step!("ship_order", ...)` in the example's source, read from the file.
fn ship_order_line() -> u32 {
    let source = include_str!("../examples/src/order.rs");
    let at = source
        .match_indices("step!(")
        .map(|(at, _)| at)
        .find(|&at| source[at + "step!(".len()..].trim_start().starts_with("\"ship_order\""))
        .expect("a `step!(\"ship_order\"` in examples/src/order.rs");
    source[..at].lines().count() as u32
}

#[tokio::test]
async fn show_names_the_failing_point_its_line_the_error_and_the_state_before() {
    let _turn = SHIPPING.lock().await;
    let mut h = harness();
    stories::shipment_failed(&mut h, "o-7").await;
    let shown = h.show("o-7", LAST).await.unwrap();

    let line = ship_order_line();
    let field = |label: &str| {
        let found = shown.lines().find_map(|l| l.strip_prefix(label)?.strip_prefix(':')).map(str::trim);
        found.unwrap_or_else(|| panic!("no `{label}:` in:\n{shown}")).to_owned()
    };
    assert_eq!(field("failed at"), format!("step ship_order (examples/src/order.rs:{line}), attempt 3"));
    assert_eq!(field("error"), "step `ship_order` failed after 3 attempts: carrier did not answer in time");

    // The state is the one stored at the last checkpoint before the failure: after the payment.
    let view = ExecutionView::load(h.store(), "o-7").await.unwrap().unwrap();
    let failed = view.history.iter().rposition(|e| e.kind.as_str() == "ExecutionFailed").unwrap();
    let checkpoint = view.history[..failed].iter().rev().find(|e| e.state.is_some()).unwrap();
    assert_eq!(checkpoint.point.as_deref(), Some("payment"));
    let stored: serde_json::Value = serde_json::from_str(checkpoint.state.as_deref().unwrap()).unwrap();
    assert_eq!(stored["payment"]["payment"]["reference"], "pay-7");
    let (seq, at) = (checkpoint.seq, checkpoint.line.unwrap());
    let header = format!("state after payment (examples/src/order.rs:{at}), event {seq}:");
    let section: String =
        shown.lines().skip_while(|line| *line != header).skip(1).take_while(|line| line.starts_with("  ")).collect();
    let printed: serde_json::Value = serde_json::from_str(&section).expect("the state, as JSON, under its header");
    assert_eq!(printed, stored, "{shown}");

    let report = Report::new(&view, LAST);
    let position = report.position.unwrap();
    assert_eq!((position.what, position.point.as_deref(), position.line), ("failed", Some("ship_order"), Some(line)));
    assert_eq!(report.state.unwrap().state, stored);
}

/// One `tracing` event: its level, its own fields, and the fields of the spans around it.
#[derive(Clone, Debug)]
struct Captured {
    level: tracing::Level,
    fields: BTreeMap<String, String>,
    spans: BTreeMap<String, String>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// A layer that keeps every event with its fields and its spans' fields, as a log pipeline
/// receives them.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut spans = BTreeMap::new();
        for span in ctx.event_scope(event).into_iter().flatten() {
            if let Some(own) = span.extensions().get::<Fields>() {
                spans.extend(own.0.clone());
            }
        }
        let captured = Captured { level: *event.metadata().level(), fields: fields.0, spans };
        self.0.lock().unwrap().push(captured);
    }
}

#[tokio::test]
async fn log_events_carry_the_execution_and_its_business_keys_as_fields() {
    let _turn = SHIPPING.lock().await;
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(Registry::default().with(capture.clone()));
    let mut h = harness();
    stories::resumed_after_two_hours(&mut h, "o-42").await;
    stories::shipment_failed(&mut h, "o-43").await;

    let events = capture.0.lock().unwrap().clone();
    let history_events: Vec<&Captured> = events.iter().filter(|e| e.fields.contains_key("event")).collect();
    for id in ["o-42", "o-43"] {
        let of: Vec<&&Captured> = history_events.iter().filter(|e| e.spans["execution_id"] == id).collect();
        for event in &of {
            assert_eq!(event.spans["workflow"], "order_workflow", "{event:?}");
            assert_eq!(event.spans["keys"], format!("order_id={id}"), "{event:?}");
            assert_eq!(event.spans["business_key"], id, "{event:?}");
        }
        // Every history event was a tracing event, in order.
        let kinds: Vec<&str> = of.iter().map(|e| e.fields["event"].as_str()).collect();
        let history = h.history(id).await.unwrap();
        assert_eq!(kinds, history.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>());
    }

    let find = |id: &str, kind: &str| {
        let found = history_events.iter().find(|e| e.spans["execution_id"] == id && e.fields["event"] == kind);
        found.unwrap_or_else(|| panic!("a {kind} event of {id}"))
    };
    let waiting = find("o-42", "WaitStarted");
    assert_eq!(waiting.fields["message"], "order_workflow o-42 waiting for event payment (timeout in 2d 0h)");
    assert_eq!(waiting.fields["point"], "payment");
    assert_eq!(waiting.fields["file"], "examples/src/order.rs");
    let resumed = find("o-42", "Resumed");
    assert!(resumed.fields["message"].starts_with("order_workflow o-42 resumed after 2h 0m"), "{resumed:?}");
    let failed = history_events.iter().rev().find(|e| e.fields["event"] == "StepFailed").unwrap();
    assert_eq!(failed.spans["execution_id"], "o-43");
    assert_eq!(failed.level, tracing::Level::WARN);
    assert_eq!(failed.fields["attempt"], "3");
    assert_eq!(
        failed.fields["message"],
        "order_workflow o-43: step ship_order failed (attempt 3 of 3): carrier did not answer in time; no attempt left"
    );
    assert_eq!(failed.fields["line"], ship_order_line().to_string());
}
