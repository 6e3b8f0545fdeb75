//! Criterion benchmarks of figure 1: per-step overhead with the in-memory store.
//!
//! `cargo bench -p durable-bench --bench steps`. Each iteration is a whole workflow of 1,000
//! steps; criterion reports the time per iteration and, as throughput, steps per second.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use durable_bench::figures::current_thread;
use durable_bench::figures::steps::{Loop, STEPS, engine_memory, test_run};

fn per_step(c: &mut Criterion) {
    let rt = current_thread().expect("a tokio runtime");
    let mut group = c.benchmark_group("fig1_per_step_memory");
    group.throughput(Throughput::Elements(STEPS));
    for (name, which) in [("for", Loop::For), ("while", Loop::While)] {
        group.bench_function(format!("engine_memory_{name}_1000_steps"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| rt.block_on(engine_memory(which, STEPS)).expect("the workflow runs"))
                    .sum::<Duration>()
            });
        });
        group.bench_function(format!("test_run_{name}_1000_steps"), |b| {
            b.iter_custom(|iters| {
                (0..iters).map(|_| rt.block_on(test_run(which, STEPS)).expect("the workflow runs")).sum::<Duration>()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, per_step);
criterion_main!(benches);
