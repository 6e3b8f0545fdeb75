//! Criterion benchmarks of figures 2, 3 and 4 on SQLite: one step of a sequential workflow
//! beside a plain one-row transaction (the floor), the throughput of one worker, and resume
//! after 10 and 10,000 steps.
//!
//! `cargo bench -p durable-bench --bench sqlite`. The files go to the system's temporary
//! directory (`TMPDIR`).

use std::path::PathBuf;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use durable_bench::figures::floor::{Floor, WARM_UP_PAGES};
use durable_bench::figures::resume::{self, Mode};
use durable_bench::figures::sqlite::Sequential;
use durable_bench::figures::{copy_store, current_thread, multi_thread, throughput};
use durable_core::store::Synchronous;

/// A scratch directory for this bench process, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("durable-criterion-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a scratch directory");
        Dir(path)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn step_latency(c: &mut Criterion) {
    let dir = Dir::new("latency");
    let rt = current_thread().expect("a tokio runtime");
    let mut group = c.benchmark_group("fig2_step_latency_sqlite");
    group.sample_size(20).measurement_time(Duration::from_secs(8));
    for (label, synchronous) in [("full", Synchronous::Full), ("normal", Synchronous::Normal)] {
        let mut floor = Floor::open(&dir.file(&format!("floor-{label}.db")), synchronous).expect("the floor opens");
        floor.warm_up().expect("the floor warms up");
        group.bench_function(format!("floor_one_row_transaction_{label}"), |b| {
            b.iter_custom(|iters| floor.transactions(iters as usize).expect("a transaction").into_iter().sum());
        });
        let path = dir.file(&format!("store-{label}.db"));
        let mut sequential = rt.block_on(async { Sequential::open(&path, synchronous) }).expect("the store opens");
        // Past the first wrap-around of its WAL, as the floor (see `Floor::warm_up`).
        rt.block_on(sequential.run(WARM_UP_PAGES as u64 / 2)).expect("the warm-up runs");
        group.bench_function(format!("workflow_step_{label}"), |b| {
            b.iter_custom(|iters| rt.block_on(sequential.run(iters + 1)).expect("the workflow runs").into_iter().sum());
        });
    }
    group.finish();
}

fn throughput(c: &mut Criterion) {
    let dir = Dir::new("throughput");
    let rt = multi_thread().expect("a tokio runtime");
    let n = 1_000;
    let template = dir.file("template.db");
    rt.block_on(throughput::prepare(&template, n)).expect("the executions are created");
    let mut group = c.benchmark_group("fig3_throughput_sqlite_full");
    group.sample_size(10).sampling_mode(SamplingMode::Flat).measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(n));
    for max_batch in [512, 1] {
        group.bench_function(BenchmarkId::new("executions_of_3_steps_max_batch", max_batch), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let path = dir.file("run.db");
                    copy_store(&template, &path).expect("the copy");
                    total += rt.block_on(throughput::run_all(&path, n, max_batch, 256)).expect("the run").elapsed;
                    remove_db(&path);
                }
                total
            });
        });
    }
    group.finish();
}

fn resume_latency(c: &mut Criterion) {
    let dir = Dir::new("resume");
    let rt = current_thread().expect("a tokio runtime");
    let mut group = c.benchmark_group("fig4_resume_sqlite_full");
    group.sample_size(20).sampling_mode(SamplingMode::Flat).measurement_time(Duration::from_secs(8));
    for k in [10, 10_000] {
        let template = dir.file(&format!("template-{k}.db"));
        rt.block_on(resume::prepare(&template, k)).expect("the probe is set up");
        for (name, mode) in [("restart", Mode::Restart), ("running_worker", Mode::Running)] {
            group.bench_function(BenchmarkId::new(format!("{name}_to_next_step_after_steps"), k), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let path = dir.file("run.db");
                        copy_store(&template, &path).expect("the copy");
                        total += rt.block_on(resume::resume(&path, Synchronous::Full, mode)).expect("resumes").reached;
                        remove_db(&path);
                    }
                    total
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, step_latency, throughput, resume_latency);
criterion_main!(benches);
