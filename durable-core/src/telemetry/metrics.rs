//! Metrics in business terms, as a hook.

use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::engine::{
    Attempt, AttemptOutcome, CommitBatch, Hooks, Outcome, Resumption, RunCause, RunInfo, SuspendReason, Suspension,
};

/// The metrics of an engine, recorded through the [`metrics`] facade (to whatever recorder the
/// application installed, Prometheus with [`prometheus_recorder`]). Register it with
/// [`EngineBuilder::hooks`](crate::engine::EngineBuilder::hooks).
///
/// | metric | kind | labels |
/// |---|---|---|
/// | `durable_executions_started_total` | counter | `workflow` |
/// | `durable_executions_finished_total` | counter | `workflow`, `outcome` (`succeeded`, `failed`, `cancelled`) |
/// | `durable_step_attempts_total` | counter | `workflow`, `step` |
/// | `durable_step_failures_total` | counter | `workflow`, `step` |
/// | `durable_step_duration_seconds` | histogram | `workflow`, `step` |
/// | `durable_waiting` | gauge | `workflow`, `point` |
/// | `durable_resume_lag_seconds` | histogram | `workflow` |
/// | `durable_runs_continued_total` | counter | `workflow` |
/// | `durable_commit_batch_size` | histogram | |
/// | `durable_commit_seconds` | histogram | |
/// | `durable_commit_failures_total` | counter | |
///
/// Labels are workflow, step and point names and outcomes, all fixed by the code: their number
/// stays bounded whatever the load (execution ids are never labels).
///
/// - `durable_waiting` goes up when an execution suspends at a point (a timer, an event, a
///   retry delay) and down when a run picks it up again. It counts what this process saw: with
///   several workers, one worker's suspension is another's resumption, so sum it across
///   processes (`sum by (workflow, point)`); executions that were waiting before the processes
///   started are not counted, and one cancelled while waiting stays counted.
/// - `durable_resume_lag_seconds` is how long after it was due (its timer, retry delay or
///   timeout passed, or its event arrived) a worker picked an execution up.
/// - `durable_runs_continued_total` counts lease takeovers: runs that picked up an execution
///   left running, because its worker died and its lease expired, or because its run stopped
///   early (a worker shutting down, a sender handing over after delivering an event).
/// - The commit metrics are per group commit: checkpoints per store transaction and how long the
///   store took.
///
/// Durations of step attempts and commits are wall time on this process; the lag is measured on
/// the engine's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct MetricsHooks(());

impl MetricsHooks {
    /// The hook. Describes the metrics (units and help texts) to the recorder installed now, so
    /// create it after installing one.
    pub fn new() -> Self {
        describe_counter!("durable_executions_started_total", "Executions started");
        describe_counter!("durable_executions_finished_total", "Executions finished, by outcome");
        describe_counter!("durable_step_attempts_total", "Step attempts whose body returned");
        describe_counter!("durable_step_failures_total", "Step attempts that failed");
        describe_histogram!("durable_step_duration_seconds", Unit::Seconds, "How long a step attempt's body ran");
        describe_gauge!("durable_waiting", "Executions suspended at a point (timer, event, retry delay)");
        describe_histogram!(
            "durable_resume_lag_seconds",
            Unit::Seconds,
            "How long after it was due a suspended execution was picked up"
        );
        describe_counter!("durable_runs_continued_total", "Runs that took over an execution left running");
        describe_histogram!("durable_commit_batch_size", Unit::Count, "Checkpoints per group commit");
        describe_histogram!("durable_commit_seconds", Unit::Seconds, "How long the store took to write a group commit");
        describe_counter!("durable_commit_failures_total", "Group commits that failed");
        MetricsHooks(())
    }
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

impl Hooks for MetricsHooks {
    fn execution_started(&self, run: &RunInfo<'_>) {
        counter!("durable_executions_started_total", "workflow" => run.workflow.to_owned()).increment(1);
    }

    fn run_started(&self, run: &RunInfo<'_>, cause: RunCause) {
        if cause == RunCause::Continued {
            counter!("durable_runs_continued_total", "workflow" => run.workflow.to_owned()).increment(1);
        }
    }

    fn attempt_finished(&self, run: &RunInfo<'_>, attempt: &Attempt<'_>) {
        let labels = [("workflow", run.workflow.to_owned()), ("step", attempt.step.to_owned())];
        counter!("durable_step_attempts_total", &labels).increment(1);
        if matches!(attempt.outcome, AttemptOutcome::Failed { .. }) {
            counter!("durable_step_failures_total", &labels).increment(1);
        }
        histogram!("durable_step_duration_seconds", &labels).record(secs(attempt.took));
    }

    fn suspended(&self, run: &RunInfo<'_>, suspension: &Suspension<'_>) {
        if let (Some(point), false) = (suspension.point, suspension.reason == SuspendReason::Panicked) {
            gauge!("durable_waiting", "workflow" => run.workflow.to_owned(), "point" => point.to_owned())
                .increment(1.0);
        }
    }

    fn resumed(&self, run: &RunInfo<'_>, resumption: &Resumption<'_>) {
        if let Some(point) = resumption.point {
            gauge!("durable_waiting", "workflow" => run.workflow.to_owned(), "point" => point.to_owned())
                .decrement(1.0);
        }
        if let Some(late) = resumption.late {
            histogram!("durable_resume_lag_seconds", "workflow" => run.workflow.to_owned()).record(secs(late));
        }
    }

    fn finished(&self, run: &RunInfo<'_>, outcome: Outcome) {
        let labels = [("workflow", run.workflow.to_owned()), ("outcome", outcome.as_str().to_owned())];
        counter!("durable_executions_finished_total", &labels).increment(1);
    }

    fn committed(&self, batch: &CommitBatch) {
        histogram!("durable_commit_batch_size").record(batch.commits as f64);
        histogram!("durable_commit_seconds").record(secs(batch.took));
        if batch.failed {
            counter!("durable_commit_failures_total").increment(1);
        }
    }
}

/// Buckets of the duration histograms, in seconds: from a millisecond (a step, a commit) to a
/// day (a resume lag).
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3_600.0, 86_400.0,
];

/// Buckets of the commit batch size.
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// A Prometheus recorder with histogram buckets that suit [`MetricsHooks`]' metrics. Install it
/// (`metrics::set_global_recorder`) after taking its [`handle`](PrometheusRecorder::handle),
/// which renders the text that [`metrics_router`] serves.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use durable_core::telemetry::{MetricsHooks, metrics_router, prometheus_recorder};
/// use durable_core::{Engine, MemoryStore};
///
/// let recorder = prometheus_recorder();
/// let handle = recorder.handle();
/// metrics::set_global_recorder(recorder)?;
/// let engine = Engine::builder(MemoryStore::new()).hooks(MetricsHooks::new()).build()?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9100").await?;
/// tokio::spawn(async move { axum::serve(listener, metrics_router(handle)).await });
/// # drop(engine);
/// # Ok(())
/// # }
/// ```
pub fn prometheus_recorder() -> PrometheusRecorder {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS)
        .and_then(|builder| {
            builder.set_buckets_for_metric(Matcher::Full("durable_commit_batch_size".to_owned()), BATCH)
        })
        .expect("the buckets are not empty");
    builder.build_recorder()
}

/// An axum router that serves the metrics of `handle` at `GET /metrics`, in the Prometheus text
/// format. Merge it into an application's router, or serve it alone (see
/// [`prometheus_recorder`]).
pub fn metrics_router(handle: PrometheusHandle) -> axum::Router {
    use axum::http::header::CONTENT_TYPE;
    let scrape = move || {
        let handle = handle.clone();
        async move {
            handle.run_upkeep();
            ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render())
        }
    };
    axum::Router::new().route("/metrics", axum::routing::get(scrape))
}
