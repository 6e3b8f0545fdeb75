//! Telemetry built on [`Hooks`](crate::engine::Hooks): metrics (feature `metrics`) and
//! OpenTelemetry traces (feature `otel`).
//!
//! Both are one mechanism with the engine's logs: the engine reports what happens to the
//! [hooks](crate::engine::hooks), and [`MetricsHooks`] is one more hook; the spans that
//! OpenTelemetry exports are the engine's `tracing` spans (`execution`, `step`, `wait`), turned
//! into OpenTelemetry spans by the layer of [`otel`].

#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "otel")]
pub mod otel;

#[cfg(feature = "metrics")]
pub use self::metrics::{MetricsHooks, metrics_router, prometheus_recorder};
