//! Figure 1: per-step overhead with the in-memory store.
//!
//! A workflow of 1,000 steps whose bodies return a number at once, run through the
//! [`Engine`] with a [`MemoryStore`] and through [`TestRun`]. The time per step is everything
//! the runtime does around a step: the state machine, serializing the state to JSON, the
//! history event, the commit (through the group committer and the store), and for the engine
//! the claim and the completion, spread over the 1,000 steps.

use std::time::{Duration, Instant};

use durable_core::engine::Hooks;
use durable_core::telemetry::{MetricsHooks, prometheus_recorder};
use durable_core::testing::TestRun;
use durable_core::{Engine, MemoryStore};

use super::{Config, current_thread, ensure, micros, multi_thread};
use crate::BenchError;
use crate::report::{Better, Row, Target};
use crate::stats::Summary;
use crate::workflows::{for_steps, while_steps};

/// Which loop the 1,000 steps are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loop {
    /// `for i in 0..n` ([`for_steps`]): each checkpoint stores the loop's iterator.
    For,
    /// `while i < n` ([`while_steps`]): each checkpoint stores three numbers.
    While,
}

/// The steps of figure 1.
pub const STEPS: u64 = 1_000;

/// Uncounted runs of every case before figure 1 measures.
const WARM_UP_RUNS: usize = 5;

fn expected(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Runs one execution of `n` steps through an [`Engine`] on a [`MemoryStore`], and returns the
/// time from the worker's start to the execution's end (the engine is built and the execution
/// started before the clock starts).
pub async fn engine_memory(which: Loop, n: u64) -> Result<Duration, BenchError> {
    engine_memory_with(which, n, None::<MetricsHooks>).await
}

/// [`engine_memory`] with `hooks` registered on the engine.
pub async fn engine_memory_with(which: Loop, n: u64, hooks: Option<impl Hooks>) -> Result<Duration, BenchError> {
    let mut builder = Engine::builder(MemoryStore::new()).register(for_steps).register(while_steps);
    if let Some(hooks) = hooks {
        builder = builder.hooks(hooks);
    }
    let engine = builder.build()?;
    let worker = engine.worker("bench");
    match which {
        Loop::For => engine.start(for_steps, "steps", n).await?,
        Loop::While => engine.start(while_steps, "steps", n).await?,
    };
    let start = Instant::now();
    worker.run_until_idle().await?;
    let took = start.elapsed();
    let result = match which {
        Loop::For => engine.result(for_steps, "steps").await?,
        Loop::While => engine.result(while_steps, "steps").await?,
    };
    ensure(result == Ok(expected(n)), || format!("the {n}-step workflow returned {result:?}"))?;
    Ok(took)
}

/// Runs one execution of `n` steps with [`TestRun`] (no engine, no store: the stored record is
/// a struct that also keeps every checkpoint written) and returns the time it took.
pub async fn test_run(which: Loop, n: u64) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let result = match which {
        Loop::For => TestRun::start(for_steps, "steps", n).run_to_end().await?,
        Loop::While => TestRun::start(while_steps, "steps", n).run_to_end().await?,
    };
    let took = start.elapsed();
    ensure(result == Ok(expected(n)), || format!("the {n}-step workflow returned {result:?}"))?;
    Ok(took)
}

/// The size of the state stored at the first and at the last checkpoint of an execution of `n`
/// steps (a `for` loop stores the items it has left, in whatever form the macro keeps them).
pub async fn state_sizes(which: Loop, n: u64) -> Result<(usize, usize), BenchError> {
    let sizes = |checkpoints: &[durable_core::testing::StoredState]| {
        let first = checkpoints.first().map_or(0, |c| c.state.len());
        (first, checkpoints.last().map_or(0, |c| c.state.len()))
    };
    Ok(match which {
        Loop::For => {
            let mut run = TestRun::start(for_steps, "sizes", n);
            run.run_to_end().await?.map_err(|e| e.to_string())?;
            sizes(&run.stored().checkpoints)
        }
        Loop::While => {
            let mut run = TestRun::start(while_steps, "sizes", n);
            run.run_to_end().await?.map_err(|e| e.to_string())?;
            sizes(&run.stored().checkpoints)
        }
    })
}

/// Measures figure 1.
pub fn run(config: &Config) -> Result<Vec<Row>, BenchError> {
    let runs = config.runs(15, 5);
    let per_step = |d: Duration| micros(d) / STEPS as f64;
    let current = current_thread()?;
    let multi = multi_thread()?;
    let recorder = prometheus_recorder();
    let cases: [(&str, &str, &str, Loop, u8); 8] = [
        ("1a", "1,000 steps in `for i in 0..1000`: Engine, current-thread runtime", "memory", Loop::For, 0),
        ("1b", "1,000 steps in `while i < 1000`: Engine, current-thread runtime", "memory", Loop::While, 0),
        ("1c", "1,000 steps in `while i < 1000`: Engine, multi-thread runtime", "memory", Loop::While, 1),
        ("1d", "1,000 steps in `for i in 0..1000`: TestRun", "TestRun (none)", Loop::For, 2),
        ("1e", "1,000 steps in `while i < 1000`: TestRun", "TestRun (none)", Loop::While, 2),
        ("1m", "as 1b, with MetricsHooks and a Prometheus recorder", "memory", Loop::While, 3),
        ("1s", "as 1b, with a subscriber taking every INFO span and event (fmt, to a sink)", "memory", Loop::While, 4),
        ("1o", "as 1b, with OpenTelemetry's layer and an in-memory exporter", "memory", Loop::While, 5),
    ];
    let once = |which: Loop, how: u8| match how {
        0 => current.block_on(engine_memory(which, STEPS)),
        1 => multi.block_on(engine_memory(which, STEPS)),
        3 => metrics::with_local_recorder(&recorder, || {
            current.block_on(engine_memory_with(which, STEPS, Some(MetricsHooks::new())))
        }),
        4 => {
            let subscriber =
                tracing_subscriber::fmt().with_max_level(tracing::Level::INFO).with_writer(std::io::sink).finish();
            tracing::subscriber::with_default(subscriber, || current.block_on(engine_memory(which, STEPS)))
        }
        5 => {
            use tracing_subscriber::layer::SubscriberExt;
            let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
            let provider =
                opentelemetry_sdk::trace::SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
            let subscriber = tracing_subscriber::registry()
                .with(tracing_subscriber::filter::LevelFilter::INFO)
                .with(durable_core::telemetry::otel::layer(&provider));
            let took = tracing::subscriber::with_default(subscriber, || current.block_on(engine_memory(which, STEPS)));
            let spans = exporter.get_finished_spans().map_err(|error| error.to_string())?.len();
            ensure(spans as u64 > STEPS, || format!("only {spans} spans were exported"))?;
            took
        }
        _ => current.block_on(test_run(which, STEPS)),
    };
    // Warm-up, not counted: the first few hundred thousand steps of a process sometimes run
    // half again as slow (the allocator settling on its thresholds), whichever case comes first.
    // Not 1s and 1o: once a subscriber has been set, even for a scope, `tracing` asks at every
    // log line of every later case whether it is wanted, so they are measured last, each after
    // its own warm-up.
    for _ in 0..WARM_UP_RUNS {
        for (_, _, _, which, how) in cases.iter().copied().filter(|case| case.4 < 4) {
            once(which, how)?;
        }
    }
    let mut rows = Vec::new();
    for (figure, name, store, which, how) in cases {
        if how >= 4 {
            for _ in 0..WARM_UP_RUNS {
                once(which, how)?;
            }
        }
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            samples.push(per_step(once(which, how)?));
        }
        let (first, last) = current.block_on(state_sizes(which, STEPS))?;
        let row = Row::new(figure, name, "µs/step", store, Better::Lower, Summary::of(&samples))
            .target(Target::Value { bound: 5.0 })
            .note(format!("the state stored at the first step is {first} bytes of JSON, at the last {last}"));
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_hosts_run_the_workflows() {
        let rt = current_thread().unwrap();
        for which in [Loop::For, Loop::While] {
            rt.block_on(engine_memory(which, 10)).unwrap();
            rt.block_on(test_run(which, 10)).unwrap();
        }
    }
}
