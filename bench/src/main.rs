//! `durable-bench`: measures every figure of BENCHMARKS.md, prints the table and can write it
//! as JSON.
//!
//! ```text
//! cargo run --release -p durable-bench -- [--quick] [--json out.json] [--only 1,2,4]
//!                                         [--dir DIR] [--postgres URL]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use durable_bench::BenchError;
use durable_bench::figures::{self, Config};
use durable_bench::machine::{Machine, load_average};
use durable_bench::report::{Report, Row};

const USAGE: &str = "\
usage: durable-bench [--quick] [--json FILE] [--only 1,2,3,4,5,6,7,8] [--dir DIR] [--postgres URL]
                     [--wait-quiet SECONDS]

  --quick      smaller sizes and fewer runs (a smoke run of about a minute)
  --json FILE  also write the machine and every row, with each run's value, to FILE
  --only LIST  measure only these figures (default: all)
  --dir DIR    where the SQLite files go (default: the system's temporary directory)
  --postgres URL
               the PostgreSQL server of figure 6 (default: $DURABLE_PG_URL, else
               postgres://postgres@127.0.0.1:5432/test); figure 6 is skipped if it does not answer
  --wait-quiet SECONDS
               before each figure, wait up to SECONDS for the 1-minute load average to drop
               below half the cores (on a shared machine), and record the load each figure began at
";

struct Args {
    config: Config,
    json: Option<PathBuf>,
    only: Vec<u8>,
    wait_quiet: Option<Duration>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let mut config =
        Config { quick: false, dir: std::env::temp_dir(), postgres: std::env::var("DURABLE_PG_URL").ok(), exe };
    let (mut json, mut only, mut wait_quiet) = (None, Vec::new(), None);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => config.quick = true,
            "--json" => json = Some(PathBuf::from(value("--json")?)),
            "--dir" => config.dir = PathBuf::from(value("--dir")?),
            "--postgres" => config.postgres = Some(value("--postgres")?),
            "--wait-quiet" => {
                let seconds = value("--wait-quiet")?;
                let seconds = seconds.parse::<u64>().map_err(|_| format!("--wait-quiet: not seconds: {seconds:?}"))?;
                wait_quiet = Some(Duration::from_secs(seconds));
            }
            "--only" => {
                for figure in value("--only")?.split(',') {
                    match figure.trim().parse::<u8>() {
                        Ok(n @ 1..=8) => only.push(n),
                        _ => return Err(format!("--only: no figure {figure:?} (figures are 1 to 8)")),
                    }
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args { config, json, only, wait_quiet })
}

/// The hidden modes in which the binary is one of a figure's worker processes.
fn child(args: &[String]) -> Option<Result<String, BenchError>> {
    match args {
        [mode, path] if mode == "--child-memory" => {
            Some(figures::memory::child(path.as_ref()).and_then(|report| Ok(serde_json::to_string(&report)?)))
        }
        [mode, url, schema, name] if mode == "--child-postgres" => {
            Some(figures::postgres::child(url, schema, name).and_then(|report| Ok(serde_json::to_string(&report)?)))
        }
        [mode, path, name] if mode == "--child-composition" => Some(
            figures::composition::child(path.as_ref(), name).and_then(|report| Ok(serde_json::to_string(&report)?)),
        ),
        _ => None,
    }
}

/// Waits up to `patience` for the 1-minute load average to drop below half the cores.
fn wait_for_quiet(patience: Duration) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let start = Instant::now();
    loop {
        let load: f64 = load_average().split_whitespace().next().and_then(|l| l.parse().ok()).unwrap_or(0.0);
        if load < cores / 2.0 || start.elapsed() >= patience {
            return;
        }
        eprintln!("durable-bench: load {load:.2}, waiting for the machine to quieten ...");
        std::thread::sleep(Duration::from_secs(10));
    }
}

type Figure = fn(&Config) -> Result<Vec<Row>, BenchError>;

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if let Some(result) = child(&raw) {
        return match result {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("durable-bench worker: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match parse(raw.into_iter()) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("durable-bench: {message}");
            }
            eprint!("{USAGE}");
            return if message.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("durable-bench: this is a debug build; measure with `cargo run --release -p durable-bench`");
    }
    let machine = Machine::detect();
    eprintln!("durable-bench: {} cores, {}, load {}", machine.cores, machine.cpu, machine.load);
    let figures: [(u8, &str, Figure); 8] = [
        (1, "per-step overhead, in memory", figures::steps::run),
        (2, "per-step latency, SQLite", figures::sqlite::run),
        (3, "throughput, SQLite", figures::throughput::run),
        (4, "resume latency against steps completed, SQLite", figures::resume::run),
        (5, "memory of suspended executions", figures::memory::run),
        (6, "throughput with 1, 2, 4 workers, PostgreSQL", figures::postgres::run),
        (7, "starting work: 1,000 workflows from engine.start to the last result, SQLite", figures::starts::run),
        (
            8,
            "composition: a map of 1,000 step branches, 100 child workflows on 1 and 2 processes, SQLite",
            figures::composition::run,
        ),
    ];
    let (mut rows, mut skipped, mut loads, mut failed) = (Vec::new(), Vec::new(), Vec::new(), false);
    for (n, what, run) in figures {
        if !args.only.is_empty() && !args.only.contains(&n) {
            continue;
        }
        if n == 6 {
            let url = args.config.postgres.clone().unwrap_or_else(|| figures::postgres::DEFAULT_URL.to_owned());
            let reachable = figures::current_thread().and_then(|rt| rt.block_on(figures::postgres::reachable(&url)));
            if let Err(error) = reachable {
                eprintln!("figure 6 skipped: no PostgreSQL at {url}: {error}");
                skipped.push(format!("figure 6 ({what}): no PostgreSQL server at {url}: {error}"));
                continue;
            }
        }
        if let Some(patience) = args.wait_quiet {
            wait_for_quiet(patience);
        }
        let load = load_average();
        eprintln!("figure {n}: {what} (load {load}) ...");
        loads.push(format!("figure {n}: {load}"));
        let start = Instant::now();
        match run(&args.config) {
            Ok(new) => {
                eprintln!("figure {n}: done in {:.1} s", start.elapsed().as_secs_f64());
                rows.extend(new);
            }
            Err(error) => {
                eprintln!("figure {n} failed: {error}");
                skipped.push(format!("figure {n} ({what}) failed: {error}"));
                failed = true;
            }
        }
    }
    let report = Report { machine, quick: args.config.quick, loads, load_after: load_average(), rows, skipped };
    println!("{}", report.table());
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json + "\n").map_err(|e| e.to_string()));
        if let Err(error) = written {
            eprintln!("durable-bench: cannot write {}: {error}", path.display());
            failed = true;
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
