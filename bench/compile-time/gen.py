#!/usr/bin/env python3
"""Writes a crate with one N-point `#[durable]` workflow, for compile-time measurements.

    gen.py DIR N SHAPE

SHAPE is `total` (one running total: one local kept across every point) or `kept` (every
step's value is kept to the end: point i stores i values). The crate depends on the checkout's
durable-core by path; its binary runs the workflow on a thread with a 2 MiB stack and prints the
size of the workflow's future. See BENCHMARKS.md ("Compile time") for how it is used.
"""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def body(n, shape):
    lines = []
    if shape == "total":
        lines.append("    let mut total = 0u64;")
        for i in range(n):
            lines.append(f'    total += step!("s{i}", work({i}).await)?;')
        lines.append("    Ok(total)")
    elif shape == "kept":
        for i in range(n):
            lines.append(f'    let v{i} = step!("s{i}", work({i}).await)?;')
        lines.append("    Ok(0" + "".join(f" + v{i}" for i in range(n)) + ")")
    else:
        sys.exit(f"unknown shape {shape}")
    return "\n".join(lines)


def expected(n, shape):
    return n * (n - 1) // 2


def main():
    out, n, shape = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(os.path.join(out, "src"), exist_ok=True)
    with open(os.path.join(out, "Cargo.toml"), "w") as f:
        f.write(f"""[package]
name = "wf-{shape}-{n}"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
durable-core = {{ path = "{ROOT}/durable-core", default-features = false, features = ["macros"] }}
tokio = {{ version = "1", features = ["rt"] }}

[workspace]
""")
    with open(os.path.join(out, "src", "main.rs"), "w") as f:
        f.write(f"""use durable_core::prelude::*;

async fn work(i: u64) -> Result<u64, std::io::Error> {{
    Ok(i)
}}

#[durable]
async fn wf(seed: u64) -> Result<u64, WorkflowError> {{
    let _ = seed;
{body(n, shape)}
}}

/// A host that is never called: the future is built, measured and dropped unpolled.
struct Unused;

impl durable_core::Host for Unused {{
    fn checkpoint<'a>(&'a mut self, _: &'static durable_core::PointFacts, _: String) -> durable_core::BoxFuture<'a, Result<(), durable_core::Pause>> {{ unreachable!() }}
    fn step_begin<'a>(&'a mut self, _: &'static durable_core::PointFacts, _: &'a durable_core::StepPolicy) -> durable_core::BoxFuture<'a, Result<durable_core::Gate, durable_core::Pause>> {{ unreachable!() }}
    fn step_end<'a>(&'a mut self, _: &'static durable_core::PointFacts, _: &'a durable_core::StepPolicy, _: Result<(), StepError>) -> durable_core::BoxFuture<'a, Result<Result<(), StepError>, durable_core::Pause>> {{ unreachable!() }}
    fn sleep_start(&mut self, _: &'static durable_core::PointFacts, _: std::time::Duration) -> durable_core::Timestamp {{ unreachable!() }}
    fn sleep_due(&mut self, _: &'static durable_core::PointFacts, _: durable_core::Timestamp) -> bool {{ unreachable!() }}
    fn event_start(&mut self, _: &'static durable_core::PointFacts, _: Option<std::time::Duration>) -> Option<durable_core::Timestamp> {{ unreachable!() }}
    fn event_poll(&mut self, _: &'static durable_core::PointFacts, _: Option<durable_core::Timestamp>) -> durable_core::EventPoll {{ unreachable!() }}
    fn event_rejected(&mut self, _: &'static durable_core::PointFacts, _: String) {{ unreachable!() }}
}}

fn main() {{
    let clock: durable_core::SharedClock =
        std::sync::Arc::new(durable_core::ManualClock::new(durable_core::Timestamp::from_millis(0)));
    let ctx = durable_core::Ctx::new("size", "wf", clock);
    let mut host = Unused;
    let future = wf.run(&ctx, &mut host, durable_core::Entry::Start(0));
    println!("points {n} shape {shape}: future {{}} bytes", std::mem::size_of_val(&future));
    drop(future);
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {{
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {{
                let mut run = durable_core::testing::TestRun::start(wf, "stack", 0);
                run.run_to_end().await.unwrap()
            }})
        }})
        .unwrap();
    let result = handle.join().expect("ran on a 2 MiB stack");
    assert_eq!(result.unwrap(), {expected(n, shape)});
    println!("ran on a 2 MiB stack");
}}
""")


main()
