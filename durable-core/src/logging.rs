//! Logs of executions, for people or for log pipelines (feature `logging`).
//!
//! The engine reports every history event as a `tracing` event inside a span per execution
//! (fields `workflow`, `execution_id`, `keys` and `business_key`; see the
//! [engine docs](crate::engine)). Any `tracing` subscriber shows them; [`init`] installs one
//! that writes them to standard error, as text or as one JSON object per line, filtered by
//! `RUST_LOG` (default `info`):
//!
//! ```no_run
//! use durable_core::logging::{self, LogFormat};
//!
//! // `DURABLE_LOG_FORMAT=json` chooses JSON, anything else (or nothing) text.
//! logging::init(LogFormat::from_env()).expect("no other subscriber was installed");
//! ```
//!
//! A text line reads `INFO execution{workflow=order_workflow execution_id=o-42 keys=order_id=o-42
//! business_key=o-42}: durable_core::engine::trace: order_workflow o-42 waiting for event payment
//! (timeout in 2d 0h) event="WaitStarted" point="payment" ...`; a JSON line carries the same
//! fields under `fields` (the event's) and `span` (the execution's).

use std::fmt;
use std::str::FromStr;

use tracing::Subscriber;
use tracing::subscriber::SetGlobalDefaultError;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry};

/// How [`init`] writes logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, with the event's fields and its execution's span.
    Json,
}

impl LogFormat {
    /// The format named by `DURABLE_LOG_FORMAT` (`json` or `text`); text if it is unset or
    /// names neither.
    pub fn from_env() -> Self {
        std::env::var("DURABLE_LOG_FORMAT").ok().and_then(|name| name.parse().ok()).unwrap_or_default()
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format `{other}`: use `text` or `json`")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Installs the global subscriber: logs in `format` on standard error, filtered by `RUST_LOG`
/// (`info` if it is unset or invalid).
///
/// Fails if a global subscriber was installed already.
pub fn init(format: LogFormat) -> Result<(), SetGlobalDefaultError> {
    init_with(format, "info")
}

/// Like [`init`], with `default_filter` (an `EnvFilter` directive such as `warn` or
/// `durable_core=debug`) when `RUST_LOG` is unset or invalid.
pub fn init_with(format: LogFormat, default_filter: &str) -> Result<(), SetGlobalDefaultError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing::subscriber::set_global_default(subscriber(format, filter, std::io::stderr))
}

/// A subscriber that writes logs in `format` to `writer`, filtered by `filter`: what [`init`]
/// installs, for programs that install it their own way (per thread, in tests, ...).
pub fn subscriber<W>(format: LogFormat, filter: EnvFilter, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let registry = Registry::default().with(filter);
    match format {
        LogFormat::Text => Box::new(registry.with(tracing_subscriber::fmt::layer().with_writer(writer))),
        LogFormat::Json => {
            let layer = tracing_subscriber::fmt::layer().json().with_current_span(true).with_span_list(false);
            Box::new(registry.with(layer.with_writer(writer)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::EnvFilter;

    use super::{LogFormat, subscriber};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_the_execution_span() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = subscriber(LogFormat::Json, EnvFilter::new("info"), move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("execution", workflow = "order", execution_id = "o-1", keys = "id=o-1");
            span.in_scope(|| {
                tracing::info!(event = "StepSucceeded", point = "price", "order o-1: step price succeeded")
            });
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["fields"]["message"], "order o-1: step price succeeded");
        assert_eq!(line["fields"]["event"], "StepSucceeded");
        assert_eq!(line["span"]["execution_id"], "o-1");
        assert_eq!(line["span"]["keys"], "id=o-1");
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().is_err());
    }
}
