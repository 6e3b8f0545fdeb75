//! Telemetry built on the hooks: spans per step attempt and per wait, the worker's name on
//! every line, Prometheus metrics of the order story, and its OpenTelemetry trace.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_core::prelude::*;
use durable_core::store::MemoryStore;
use durable_core::{Engine, ManualClock};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::support::{Payment, clock, effect, flaky_call};

/// The order story: a step, an event wait, a step that fails once and is retried.
#[durable]
pub async fn order_story(order_id: String) -> Result<String, WorkflowError> {
    step!("validate", validate(&order_id).await)?;
    tracing::info!("validated, now waiting for the payment");
    let payment: Payment = wait!("payment", event);
    let shipped = step!("ship", retry = Retry::fixed(3, Duration::from_secs(10)), flaky_call(&order_id, 1).await)?;
    Ok(format!("{order_id}: paid {}, {shipped}", payment.amount))
}

async fn validate(order_id: &str) -> Result<(), std::io::Error> {
    tracing::info!("validating before a yield");
    effect(format!("{order_id}/validate"), ()).await?;
    tracing::info!("validating after a yield");
    Ok(())
}

fn engine(store: MemoryStore, clock: &ManualClock, hooks: impl durable_core::engine::Hooks) -> Engine<MemoryStore> {
    Engine::builder(store).clock(Arc::new(clock.clone())).register(order_story).hooks(hooks).build().unwrap()
}

/// Runs the order story `key` to its end on two engines sharing a store, as two processes
/// would: `first` runs it up to the wait, `second` delivers the event and runs the rest.
/// `between` is called while it waits for the payment.
async fn run_story(key: &str, hooks: impl Fn() -> Arc<dyn durable_core::engine::Hooks>, between: impl AsyncFnOnce()) {
    let (clock, store) = (clock(), MemoryStore::new());
    let first = engine(store.clone(), &clock, hooks());
    first.start(order_story, key, key.to_owned()).await.unwrap();
    first.worker("w-1").run_until_idle().await.unwrap();
    between().await;
    let second = engine(store, &clock, hooks());
    second.send_event(key, "payment", &Payment { amount: 30 }).await.unwrap();
    second.worker("w-2").run_until_idle().await.unwrap();
    clock.advance(Duration::from_secs(10));
    second.worker("w-2").run_until_idle().await.unwrap();
    let result = second.result(order_story, key).await.unwrap();
    assert_eq!(result, Ok(format!("{key}: paid 30, ok after 2")));
}

/// A span or an event as a line: its name and fields.
#[derive(Clone, Debug, Default)]
struct Seen {
    name: String,
    fields: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(field, _)| field == name).map(|(_, value)| value.as_str())
    }
}

impl Visit for Seen {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.fields.retain(|(name, _)| name != field.name());
        self.fields.push((field.name().to_owned(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields.retain(|(name, _)| name != field.name());
        self.fields.push((field.name().to_owned(), value.to_owned()));
    }
}

/// Records each event's message with the spans it is in (innermost first, their fields as the
/// event saw them), and every span as it closes.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Logged>>>, Arc<Mutex<Vec<Seen>>>);

/// An event's message and the spans around it.
type Logged = (String, Vec<Seen>);

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut seen = Seen { name: attrs.metadata().name().to_owned(), fields: Vec::new() };
        attrs.record(&mut seen);
        ctx.span(id).unwrap().extensions_mut().insert(seen);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).unwrap();
        let mut extensions = span.extensions_mut();
        if let Some(seen) = extensions.get_mut::<Seen>() {
            values.record(seen);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut message = Seen::default();
        event.record(&mut message);
        let message = message.field("message").unwrap_or_default().to_owned();
        let scope = ctx.event_scope(event).into_iter().flatten();
        let spans = scope.map(|span| span.extensions().get::<Seen>().cloned().unwrap_or_default()).collect();
        self.0.lock().unwrap().push((message, spans));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let span = ctx.span(&id).unwrap();
        let seen = span.extensions().get::<Seen>().cloned().unwrap_or_default();
        self.1.lock().unwrap().push(seen);
    }
}

impl Spans {
    /// The closed spans named `name` whose `otel.name` is `otel`, as `field=value` with the
    /// fields asked for.
    fn closed(&self, name: &str, otel: &str, fields: &[&str]) -> Vec<String> {
        let closed = self.1.lock().unwrap();
        let spans = closed.iter().filter(|span| span.name == name && span.field("otel.name") == Some(otel));
        let show = |span: &Seen| {
            let shown = fields.iter().filter_map(|field| span.field(field).map(|value| format!("{field}={value}")));
            shown.collect::<Vec<_>>().join(" ")
        };
        spans.map(show).collect()
    }

    /// The spans around the first event whose message contains `text`, as `name(field=..)`
    /// with the fields asked for, innermost first.
    fn around(&self, text: &str, fields: &[&str]) -> Vec<String> {
        let events = self.0.lock().unwrap();
        let (_, spans) = events.iter().find(|(message, _)| message.contains(text)).expect(text);
        spans
            .iter()
            .map(|span| {
                let shown: Vec<String> = fields
                    .iter()
                    .filter_map(|field| span.field(field).map(|value| format!("{field}={value}")))
                    .collect();
                format!("{}({})", span.name, shown.join(" "))
            })
            .collect()
    }
}

#[tokio::test]
async fn a_step_body_logs_inside_its_attempts_span_and_every_line_names_its_worker() {
    let spans = Spans::default();
    let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    run_story("span-1", || Arc::new(durable_core::engine::TracingHooks), async || {}).await;
    let fields = ["otel.name", "attempt", "semantics", "outcome", "error", "worker", "execution_id"];
    let step = "step(otel.name=validate attempt=1 semantics=at_least_once worker=w-1 execution_id=span-1)";
    let execution = "execution(worker=w-1 execution_id=span-1)";
    // Before and after the body's first await: both inside the attempt's span.
    assert_eq!(spans.around("validating before a yield", &fields), [step, execution]);
    assert_eq!(spans.around("validating after a yield", &fields), [step, execution]);
    // The workflow's own code after the step is outside it.
    assert_eq!(spans.around("validated, now waiting", &fields), [execution]);
    // The engine's line for the step: in the execution's span, with the worker's name.
    assert_eq!(spans.around("step validate succeeded", &fields), [execution]);
    // The engine's line for the failure is in the run of worker w-2, not in the step's span.
    let failed = spans.around("connection refused", &fields);
    assert_eq!(failed, ["execution(worker=w-2 execution_id=span-1)"]);
    // The attempts' spans, as they closed: their outcome and error, where they are in the code.
    let took = spans.closed("step", "ship", &["took_ms"]);
    assert!(took.iter().all(|took| took.starts_with("took_ms=")), "{took:?}");
    let ship = spans.closed("step", "ship", &["attempt", "outcome", "error", "file", "worker"]);
    let file = "file=durable-core/tests/engine/telemetry.rs";
    assert_eq!(
        ship,
        [
            format!("attempt=1 outcome=failed error=connection refused (1) {file} worker=w-2"),
            format!("attempt=2 outcome=succeeded {file} worker=w-2"),
        ]
    );
    // The wait's end: inside a `wait` span, in the run of the sender's engine (it runs the
    // execution at once, under a worker name of its own).
    let received = spans.around("received event payment", &["otel.name", "kind", "outcome", "waited_ms", "worker"]);
    let sender = received[1].strip_prefix("execution(worker=").and_then(|rest| rest.strip_suffix(')')).unwrap();
    assert!(sender.starts_with("engine-"), "{received:?}");
    let wait = format!("wait(otel.name=payment kind=Event outcome=Received waited_ms=0 worker={sender})");
    assert_eq!(received[0], wait);
}

#[cfg(feature = "metrics")]
#[test]
fn the_order_story_in_prometheus_metrics() {
    use durable_core::telemetry::{MetricsHooks, metrics_router, prometheus_recorder};

    let recorder = prometheus_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (waiting, end) = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, metrics_router(handle)).await });
            let waiting = Arc::new(Mutex::new(String::new()));
            let during = Arc::clone(&waiting);
            run_story(
                "metrics-1",
                || Arc::new(MetricsHooks::new()),
                async move || {
                    *during.lock().unwrap() = scrape(address).await;
                },
            )
            .await;
            let waiting = waiting.lock().unwrap().clone();
            (waiting, scrape(address).await)
        })
    });
    assert!(waiting.contains("durable_waiting{workflow=\"order_story\",point=\"payment\"} 1\n"), "{waiting}");
    let series = [
        "durable_executions_started_total{workflow=\"order_story\"} 1",
        "durable_executions_finished_total{workflow=\"order_story\",outcome=\"succeeded\"} 1",
        "durable_step_attempts_total{workflow=\"order_story\",step=\"validate\"} 1",
        "durable_step_attempts_total{workflow=\"order_story\",step=\"ship\"} 2",
        "durable_step_failures_total{workflow=\"order_story\",step=\"ship\"} 1",
        "durable_step_duration_seconds_count{workflow=\"order_story\",step=\"ship\"} 2",
        "durable_step_duration_seconds_count{workflow=\"order_story\",step=\"validate\"} 1",
        // It suspended at the wait, then at the retry delay, and was picked up after each.
        "durable_waiting{workflow=\"order_story\",point=\"payment\"} 0",
        "durable_waiting{workflow=\"order_story\",point=\"ship\"} 0",
        "durable_resume_lag_seconds_count{workflow=\"order_story\"} 2",
        "durable_resume_lag_seconds_sum{workflow=\"order_story\"} 0",
        // The sender's engine ran it at once, then handed it over to worker w-2.
        "durable_runs_continued_total{workflow=\"order_story\"} 1",
    ];
    for line in series {
        assert!(end.lines().any(|l| l == line), "no `{line}` in:\n{end}");
    }
    let batches = end.lines().find_map(|l| l.strip_prefix("durable_commit_batch_size_count ")).expect("commit batches");
    assert!(batches.parse::<u64>().unwrap() >= 5, "{end}");
    assert!(end.contains("# TYPE durable_step_duration_seconds histogram"), "{end}");
    assert!(end.contains("durable_commit_seconds_bucket{le=\"0.001\"}"), "{end}");
    assert!(!end.contains("metrics-1"), "execution ids are never labels:\n{end}");
}

/// Scrapes `GET /metrics` at `address` with a bare HTTP/1.1 request.
#[cfg(feature = "metrics")]
async fn scrape(address: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

#[cfg(feature = "otel")]
#[tokio::test]
async fn the_order_story_is_one_trace_across_two_processes() {
    use durable_core::telemetry::otel;
    use opentelemetry::trace::SpanId;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber = tracing_subscriber::registry().with(otel::layer(&provider));
    let default = tracing::subscriber::set_default(subscriber);
    run_story("trace-1", || Arc::new(durable_core::engine::TracingHooks), async || {}).await;
    drop(default);
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();

    let trace = otel::trace_id("trace-1");
    assert!(spans.iter().all(|span| span.span_context.trace_id() == trace), "one trace: {spans:#?}");
    let executions: Vec<_> = spans.iter().filter(|span| span.name == "execution").collect();
    // The start, the run up to the wait, the event sent, the sender's run, the run after the
    // hand-over and the run after the retry delay.
    assert!(executions.len() >= 4, "{executions:#?}");
    let root = executions[0].parent_span_id;
    assert_ne!(root, SpanId::INVALID);
    assert!(executions.iter().all(|span| span.parent_span_id == root), "one parent for every run");
    let execution_ids: Vec<SpanId> = executions.iter().map(|span| span.span_context.span_id()).collect();
    let children = |name: &str| -> Vec<_> {
        spans
            .iter()
            .filter(|span| span.name == name)
            .map(|span| {
                assert!(execution_ids.contains(&span.parent_span_id), "{name} is a child of a run");
                let worker = span.attributes.iter().find(|kv| kv.key.as_str() == "worker");
                worker.map(|kv| kv.value.to_string()).unwrap_or_default()
            })
            .collect()
    };
    assert_eq!(children("validate"), ["w-1"]);
    assert_eq!(children("ship").len(), 2, "two attempts of ship");
    assert_eq!(children("payment").len(), 1, "one wait span");
    let ship = spans.iter().find(|span| span.name == "ship").unwrap();
    let outcome = ship.attributes.iter().find(|kv| kv.key.as_str() == "outcome").unwrap();
    assert_eq!(outcome.value.to_string(), "failed", "the first attempt of ship failed");
}
