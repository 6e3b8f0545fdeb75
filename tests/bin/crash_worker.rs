//! `crash-worker`: runs the crash-test workflows on a SQLite file until every execution it
//! started has finished, then prints a summary and exits 0. The `crash` test kills it with
//! SIGKILL at random points and starts it again, many times over.
//!
//! ```text
//! crash-worker <database> <effect-log> <run> <executions> <clock-offset-ms>
//! ```
//!
//! - `run` numbers this process among the restarts; every effect line carries it.
//! - executions `crash-0` to `crash-<executions - 1>` are started idempotently by id, so a
//!   restart finds them started and only runs them on.
//! - durable time is the wall clock plus `clock-offset-ms`: the test moves it forward by more
//!   than a lease at each restart, so the killed worker's leases have expired when the next one
//!   starts (as they would after waiting), and timers due by then fire at once.
//!
//! Phase markers on stdout, one per line, tell the test where the worker is: `@start`,
//! `@ready` (executions started, the worker runs), `@claim <n>`, `@begin <key>` and
//! `@end <key>` (a step body), `@commit <n>` (a commit of `n` checkpoints is durable), `@busy`
//! and `@idle` (some or no execution in memory), `@done`. Then `summary <id> <status> <output>`
//! lines.

#[path = "crash_worker/workflows.rs"]
mod workflows;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use durable_core::store::{
    Commit, Created, ExecutionRecord, HistoryEvent, InboxEvent, Lease, LeaseToken, ListFilter, NewExecution, Sent,
    Store, StoreError,
};
use durable_core::{Clock, Engine, SharedClock, SqliteStore, SystemClock, Timestamp};

use crate::workflows::{Effects, Lookup, marker};

/// The command line.
struct Args {
    database: PathBuf,
    effects: PathBuf,
    run: u32,
    executions: usize,
    clock_offset: Duration,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let usage = "usage: crash-worker <database> <effect-log> <run> <executions> <clock-offset-ms>";
        let [database, effects, run, executions, offset] = args.as_slice() else {
            return Err(usage.to_owned());
        };
        let number = |what: &str, text: &str| text.parse::<u64>().map_err(|e| format!("bad {what} `{text}`: {e}"));
        Ok(Args {
            database: database.into(),
            effects: effects.into(),
            run: u32::try_from(number("run", run)?).map_err(|e| e.to_string())?,
            executions: usize::try_from(number("executions", executions)?).map_err(|e| e.to_string())?,
            clock_offset: Duration::from_millis(number("clock offset", offset)?),
        })
    }
}

fn main() -> ExitCode {
    println!("@start");
    let result = Args::parse().and_then(|args| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        runtime.block_on(run(args))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("crash-worker: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let store = SqliteStore::open(&args.database).map_err(|e| e.to_string())?;
    let effects = Effects::open(&args.effects, args.run, Lookup::Sqlite(store.clone()), true)
        .map_err(|e| format!("cannot open {}: {e}", args.effects.display()))?;
    workflows::install(effects);
    let engine = workflows::register(Engine::builder(Traced(store)))
        .clock(Arc::new(OffsetClock(args.clock_offset)))
        .lease(workflows::LEASE)
        .poll_interval(workflows::POLL)
        .build()
        .map_err(|e| e.to_string())?;
    let ids = workflows::start_all(&engine, args.executions).await.map_err(|e| e.to_string())?;
    marker(format_args!("ready"));
    let monitor = tokio::spawn(watch_memory(engine.clone()));
    let worker = engine.worker(format!("crash-worker-{}", args.run));
    worker.run(all_finished(&engine, &ids)).await;
    monitor.abort();
    marker(format_args!("done"));
    for id in &ids {
        let record = engine.store().load(id).await.map_err(|e| e.to_string())?.ok_or(format!("{id} vanished"))?;
        println!("summary {id} {} {}", record.status, record.output.unwrap_or_default());
    }
    Ok(())
}

/// Completes once every execution in `ids` has finished.
async fn all_finished<S: Store>(engine: &Engine<S>, ids: &[String]) {
    loop {
        let listed = engine.store().list(ListFilter::default()).await;
        if let Ok(records) = listed {
            let finished = records.iter().filter(|r| r.status.is_terminal() && ids.contains(&r.id)).count();
            if finished == ids.len() {
                return;
            }
        }
        tokio::time::sleep(workflows::POLL).await;
    }
}

/// Prints `@busy` when runs enter memory and `@idle` when none is left (every execution waits on
/// a timer, a retry delay or an event, or has finished).
async fn watch_memory<S: Store>(engine: Engine<S>) {
    let mut busy = false;
    loop {
        let now_busy = engine.stats().running > 0;
        if now_busy != busy {
            busy = now_busy;
            marker(format_args!("{}", if busy { "busy" } else { "idle" }));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The wall clock moved forward by a fixed offset.
struct OffsetClock(Duration);

impl Clock for OffsetClock {
    fn now(&self) -> Timestamp {
        SystemClock.now().saturating_add(self.0)
    }
}

/// A [`SqliteStore`] that prints `@claim` and `@commit` markers once a claim or commit is
/// durable.
struct Traced(SqliteStore);

impl Store for Traced {
    fn create(&self, new: NewExecution) -> impl Future<Output = Result<Created, StoreError>> + Send {
        self.0.create(new)
    }

    fn load(&self, id: &str) -> impl Future<Output = Result<Option<ExecutionRecord>, StoreError>> + Send {
        self.0.load(id)
    }

    async fn commit(&self, commit: Commit) -> Result<ExecutionRecord, StoreError> {
        let result = self.0.commit(commit).await;
        if result.is_ok() {
            marker(format_args!("commit 1"));
        }
        result
    }

    async fn commit_batch(&self, commits: Vec<Commit>) -> Result<Vec<Result<ExecutionRecord, StoreError>>, StoreError> {
        let count = commits.len();
        let result = self.0.commit_batch(commits).await;
        if result.is_ok() {
            marker(format_args!("commit {count}"));
        }
        result
    }

    async fn claim_due(
        &self,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let claimed = self.0.claim_due(owner, clock, lease, limit).await;
        if let Ok(records) = &claimed
            && !records.is_empty()
        {
            marker(format_args!("claim {}", records.len()));
        }
        claimed
    }

    fn claim(
        &self,
        id: &str,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
    ) -> impl Future<Output = Result<Option<ExecutionRecord>, StoreError>> + Send {
        self.0.claim(id, owner, clock, lease)
    }

    fn renew_lease(
        &self,
        id: &str,
        token: &LeaseToken,
        clock: &SharedClock,
        lease: Duration,
    ) -> impl Future<Output = Result<Lease, StoreError>> + Send {
        self.0.renew_lease(id, token, clock, lease)
    }

    fn release_lease(&self, id: &str, token: &LeaseToken) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0.release_lease(id, token)
    }

    fn send_keyed_event(
        &self,
        id: &str,
        name: &str,
        payload: &str,
        key: Option<&str>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Sent, StoreError>> + Send {
        self.0.send_keyed_event(id, name, payload, key, now)
    }

    fn inbox(&self, id: &str) -> impl Future<Output = Result<Vec<InboxEvent>, StoreError>> + Send {
        self.0.inbox(id)
    }

    fn history(&self, id: &str) -> impl Future<Output = Result<Vec<HistoryEvent>, StoreError>> + Send {
        self.0.history(id)
    }

    fn list(&self, filter: ListFilter) -> impl Future<Output = Result<Vec<ExecutionRecord>, StoreError>> + Send {
        self.0.list(filter)
    }
}
