//! Property-style: random workflow bodies (written by `build.rs` from a seed) give, run and
//! crashed after every checkpoint, what the same body gives without the macro.
//!
//! More cases or another seed: `DURABLE_GEN_CASES=200 DURABLE_GEN_SEED=7 cargo test -p
//! durable-tests --test generated` (the default is 12 cases of seed 1).

mod common;

use std::future::Future;
use std::pin::Pin;

use common::crash_everywhere_any_layout;
use durable_core::Workflow;
use durable_core::prelude::*;

/// A step body: deterministic, and counted as a side effect.
async fn det(step: u64, x: u64) -> Result<u64, std::io::Error> {
    common::effect(format!("s{step}"), step.wrapping_mul(31).wrapping_add(x)).await
}

#[allow(unused_mut, unused_variables, unused_assignments, unreachable_code, clippy::all, missing_docs)]
mod cases {
    use super::*;
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}

/// What `step!` does with a body's error, without the checkpoint.
fn plain_step<T>(result: Result<T, std::io::Error>) -> Result<T, StepError> {
    result.map_err(Into::into)
}

type Plain = fn(u64) -> Pin<Box<dyn Future<Output = Result<u64, WorkflowError>>>>;

async fn check<W>(workflow: W, plain: Plain, case: usize)
where
    W: Workflow<Input = u64, Output = u64, Error = WorkflowError> + Copy,
{
    for input in [0u64, 1, 6, 13] {
        let expected = plain(input).await;
        let got = crash_everywhere_any_layout(workflow, input).await;
        assert_eq!(got, expected, "case {case}, input {input}");
    }
}

#[tokio::test]
async fn random_bodies_match_the_same_body_without_the_macro() {
    cases::check_all().await;
}
