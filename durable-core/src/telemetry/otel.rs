//! OpenTelemetry traces of executions: the engine's `tracing` spans exported through
//! [`tracing-opentelemetry`](tracing_opentelemetry) and OTLP.
//!
//! The engine emits three kinds of spans, each a child of the one before:
//!
//! - `execution`, one per run of an execution (and around its start, an event sent to it, its
//!   cancellation), with `workflow`, `execution_id`, `keys`, `business_key` and `worker`;
//! - a span per step attempt, named after the step (`otel.name`), with `workflow`,
//!   `execution_id`, `step`, `attempt`, `semantics`, `outcome`, `error`, `took_ms`, `file`,
//!   `line`, the business keys and `worker`; it is the current span while the step's body runs,
//!   so the body's own spans and log lines nest under it;
//! - a span `wait` where a timer fires, an event arrives or a wait times out, named after the
//!   wait's point, with `kind`, `outcome` and `waited_ms` (how long the wait lasted).
//!
//! # One trace per execution
//!
//! An execution outlives the processes that run it: it suspends, leaves memory for days, and
//! goes on in another run, maybe on another worker. Each of those runs is its own `execution`
//! span; to make them one trace, every `execution` span is given the same parent: a span
//! context whose trace id ([`trace_id`]) and span id are derived from the execution id (a
//! 128-bit and a 64-bit FNV-1a hash of it). Every worker computes the same ids from the id
//! alone, so no trace context needs to be stored with the execution, and the store's schema
//! does not change. The parent is remote and never exported itself: a backend shows the runs
//! of an execution as the top spans of one trace (some mark their parent as missing).
//!
//! A parent, not a link: with links, each run would be its own trace, and the question "what
//! happened to order o-42" would need a search across traces; with one trace id the backend
//! shows one waterfall, days wide.
//!
//! What this does not give is the caller's trace as the root (the HTTP request that started an
//! order): the execution's trace id is its own. When an execution is started (or sent an
//! event, or cancelled) inside a span that OpenTelemetry knows, the `execution` span links to
//! it, so the request and the workflow find each other. Making the request's trace the
//! execution's own needs the caller's trace context stored with the execution (a column of the
//! store), which this module leaves for later.
//!
//! # Setup
//!
//! ```no_run
//! use durable_core::telemetry::otel;
//! use tracing_subscriber::layer::SubscriberExt;
//! use tracing_subscriber::util::SubscriberInitExt;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // OTLP over HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT` (default `http://localhost:4318`).
//! let provider = otel::otlp_provider("orders")?;
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer())
//!     .with(otel::layer(&provider))
//!     .init();
//! // ... run the engine and its workers ...
//! provider.shutdown()?; // flushes the spans not yet exported
//! # Ok(())
//! # }
//! ```

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

/// The layer that turns the engine's `tracing` spans (and the application's) into OpenTelemetry
/// spans of `provider`'s tracer `durable`.
pub fn layer<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("durable"))
}

/// A tracer provider that exports spans in batches over OTLP/HTTP (protobuf), configured by the
/// standard `OTEL_EXPORTER_OTLP_*` environment variables, for the service `service_name`. Shut
/// it down before the process exits, so the last batch is sent.
pub fn otlp_provider(service_name: &str) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let resource = Resource::builder().with_service_name(service_name.to_owned()).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// The trace id of every span of execution `execution_id`, on every worker (see the
/// [module docs](self)).
pub fn trace_id(execution_id: &str) -> TraceId {
    let high = fnv1a(0, execution_id);
    let low = fnv1a(1, execution_id);
    let id = (u128::from(high) << 64) | u128::from(low);
    // An all-zero trace id is invalid; a hash gives one with a chance of 2^-128.
    TraceId::from_bytes(id.max(1).to_be_bytes())
}

/// The id of the (never exported) span that is the parent of the execution's `execution` spans.
fn root_span_id(execution_id: &str) -> SpanId {
    SpanId::from_bytes(fnv1a(2, execution_id).max(1).to_be_bytes())
}

/// FNV-1a, 64 bits, over `seed` then `text`: stable across processes, builds and platforms
/// (unlike `std`'s hasher, whose output may change between Rust releases).
fn fnv1a(seed: u8, text: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    std::iter::once(seed).chain(text.bytes()).fold(OFFSET, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
}

/// Makes `span` (an `execution` span, not yet entered) part of execution `execution_id`'s trace,
/// linked to the caller's span if OpenTelemetry knows it. Does nothing without the layer.
pub(crate) fn continue_trace(span: &tracing::Span, execution_id: &str) {
    if span.is_disabled() {
        return;
    }
    let trace_id = trace_id(execution_id);
    let caller = tracing::Span::current().context().span().span_context().clone();
    let root = SpanContext::new(trace_id, root_span_id(execution_id), TraceFlags::SAMPLED, true, TraceState::NONE);
    if span.set_parent(opentelemetry::Context::new().with_remote_span_context(root)).is_err() {
        return;
    }
    if caller.is_valid() && caller.trace_id() != trace_id {
        span.add_link(caller);
    }
}

#[cfg(test)]
mod tests {
    use super::trace_id;

    #[test]
    fn trace_ids_depend_on_the_execution_id_only() {
        assert_eq!(trace_id("o-42"), trace_id("o-42"));
        assert_ne!(trace_id("o-42"), trace_id("o-43"));
        // Fixed forever: workers of different builds must agree.
        assert_eq!(trace_id("o-42").to_string(), "0b3d93522ddca481219b746eeb4aa3be");
    }
}
