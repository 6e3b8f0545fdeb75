//! Benchmarks for durable: what the snapshot design costs, measured.
//!
//! Each figure of `BENCHMARKS.md` (at the repository root) is a module of [`figures`], shared by
//! the `durable-bench` binary (which prints the table and writes JSON) and the criterion benches
//! in `benches/`. The workflows they run are in [`workflows`].
//!
//! Every figure is the median of several runs, printed with its spread and, where one exists,
//! next to its physical floor measured in the same run: on a shared machine absolute times are
//! noisy, ratios much less so.

pub mod figures;
pub mod machine;
pub mod report;
pub mod stats;
pub mod workflows;

/// What a figure fails with: a message for the person running the benchmarks.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
