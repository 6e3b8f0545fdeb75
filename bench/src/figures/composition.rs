//! Figure 8: composition. A `map!` of 1,000 step branches, and a parent fanning out to 100
//! child workflows run by 1 and 2 worker processes; SQLite with full durability (defaults).
//!
//! - 8a: one execution of [`map_steps`] (1,000 branches, 64 at a time), from `engine.start` to
//!   its result, with one worker in the same process: the time, the engine's commits and
//!   transactions, and what the file holds afterwards.
//! - 8r: the same map stopped after `k` branch outcomes were committed (the branches past `k`
//!   never return; the worker's task is then dropped, as a crash would), its file copied; then,
//!   as a restarted process, open the store and run to the result. Only the branches without an
//!   outcome run again, so the time should follow what is unfinished. The note gives the size of
//!   the state stored at the map's checkpoint.
//! - 8b: one execution of [`fan_out`] (100 children of [`three_steps`], `start!` in a loop,
//!   then `wait!` for each) run by 1 or 2 processes of this binary (`--child-composition`) on one
//!   SQLite file: the time from the signal to start to the parent's result.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use durable_core::engine::EngineStats;
use durable_core::store::{SqliteOptions, SqliteStore, Status, Store, Synchronous};
use durable_core::{Engine, ManualClock, Timestamp};
use serde::{Deserialize, Serialize};

use super::floor::Floor;
use super::{Config, checkpoint, copy_store, ensure, millis, multi_thread, settle};
use crate::BenchError;
use crate::report::{Better, Row};
use crate::stats::Summary;
use crate::workflows::{BRANCHES_RUN, HANG_FROM, MAP_CONCURRENCY, fan_out, map_steps, three_steps};

/// The id of the map's execution.
const MAP: &str = "map";

/// The id of the parent of figure 8b.
const PARENT: &str = "parent";

/// The virtual time a stopped map is set up at; its restart runs an hour later, when the lease
/// of the stopped worker has ended.
const SET_UP_AT: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// What one run of the map measured.
#[derive(Clone, Copy, Debug)]
pub struct MapRun {
    /// From `engine.start` to the result.
    pub elapsed: Duration,
    /// The engine's counters.
    pub stats: EngineStats,
    /// Pages (frames) the run appended to the WAL, from the growth of the `-wal` file: right
    /// only while SQLite has not checkpointed it (1,000 pages by default), so for small maps.
    pub wal_frames: u64,
}

/// The size of the WAL file of the SQLite file at `path` (0 if there is none).
fn wal_size(path: &Path) -> u64 {
    std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len())
}

/// A WAL frame: a 24-byte header and a page of 4,096 bytes (SQLite's default page size).
const FRAME: u64 = 24 + 4_096;

/// Runs one [`map_steps`] of `n` branches in a new SQLite file at `path` (full durability),
/// from `engine.start` to its result.
pub async fn map_once(path: &Path, n: u64) -> Result<MapRun, BenchError> {
    let engine = Engine::builder(SqliteStore::create(path)?).register(map_steps).build()?;
    let worker = engine.worker("bench");
    let began = Instant::now();
    engine.start(map_steps, MAP, n).await?;
    let wal_before = wal_size(path);
    worker.run_until_idle().await?;
    let result = engine.result(map_steps, MAP).await?;
    let elapsed = began.elapsed();
    let wal_frames = wal_size(path).saturating_sub(wal_before) / FRAME;
    ensure(result == Ok(n * n.saturating_sub(1) / 2), || format!("the map returned {result:?}"))?;
    let stats = engine.stats();
    drop(worker);
    drop(engine);
    settle().await;
    Ok(MapRun { elapsed, stats, wal_frames })
}

/// What a SQLite file holds, read after a WAL checkpoint.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stored {
    /// Pages in use (not on the free list) times the page size.
    pub used: u64,
    /// The file's size.
    pub file: u64,
    /// History events.
    pub events: u64,
    /// Bytes of the history rows' text columns (kind, point, file, detail, state, worker).
    pub history_bytes: u64,
    /// Rows left in the inbox.
    pub inbox: u64,
    /// Idempotency keys of delivered events kept (`event_keys`).
    pub keys: u64,
}

/// Checkpoints the SQLite file at `path` and reads what it holds.
pub fn stored(path: &Path) -> Result<Stored, BenchError> {
    checkpoint(path)?;
    let conn = rusqlite::Connection::open(path)?;
    let pragma = |name: &str| conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get::<_, i64>(0));
    let used = (pragma("page_count")? - pragma("freelist_count")?) * pragma("page_size")?;
    let (events, history_bytes) = conn.query_row(
        "SELECT count(*), coalesce(sum(length(kind) + coalesce(length(point), 0) + coalesce(length(file), 0) \
         + coalesce(length(detail), 0) + coalesce(length(state), 0) + coalesce(length(worker), 0)), 0) FROM history",
        [],
        |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
    )?;
    let inbox = conn.query_row("SELECT count(*) FROM inbox", [], |row| row.get::<_, i64>(0))?;
    let keys = conn.query_row("SELECT count(*) FROM event_keys", [], |row| row.get::<_, i64>(0))?;
    Ok(Stored {
        used: used as u64,
        file: std::fs::metadata(path)?.len(),
        events: events as u64,
        history_bytes: history_bytes as u64,
        inbox: inbox as u64,
        keys: keys as u64,
    })
}

/// Makes an empty store at `path` with the workflows of figure 8 registered: the baseline
/// that [`Stored::used`] grows from.
pub async fn empty(path: &Path) -> Result<(), BenchError> {
    let engine = Engine::builder(SqliteStore::create(path)?).register(map_steps).build()?;
    drop(engine);
    settle().await;
    Ok(())
}

/// What a stopped map held when it stopped.
#[derive(Clone, Copy, Debug)]
pub struct Stopped {
    /// Bytes of the state stored at the map's checkpoint (the snapshot's JSON).
    pub state: usize,
    /// Branch outcomes waiting in the execution's inbox.
    pub outcomes: usize,
}

/// Creates the SQLite file `path` holding a [`map_steps`] of `n` branches stopped once `done`
/// branch outcomes were committed: the branches from `done` on never return, and the worker's
/// task is dropped then, leaving the execution claimed as a crashed process would. Set up with
/// `synchronous = NORMAL` (the setup needs no durability) on a virtual clock.
pub async fn stopped_map(path: &Path, n: u64, done: u64) -> Result<Stopped, BenchError> {
    let options = SqliteOptions { synchronous: Synchronous::Normal, ..SqliteOptions::default() };
    let clock = ManualClock::new(SET_UP_AT);
    let engine = Engine::builder(SqliteStore::open_or_create_with(path, options)?)
        .clock(Arc::new(clock))
        .register(map_steps)
        .build()?;
    HANG_FROM.store(done, Ordering::Relaxed);
    engine.start(map_steps, MAP, n).await?;
    let worker = engine.worker("stopped");
    let running = tokio::spawn(async move { worker.run_until_idle().await });
    let patience = Instant::now();
    let stopped = loop {
        let outcomes = engine.store().inbox(MAP).await?.len();
        if outcomes as u64 >= done {
            let record = engine.store().load(MAP).await?.ok_or("the map is gone")?;
            let snapshot = record.snapshot.ok_or("the map has no checkpoint")?;
            ensure(snapshot.point == "each", || format!("the map stopped at {:?}", snapshot.point))?;
            break Stopped { state: snapshot.state.len(), outcomes };
        }
        if running.is_finished() || patience.elapsed() > Duration::from_secs(120) {
            HANG_FROM.store(u64::MAX, Ordering::Relaxed);
            return Err(format!("the map did not reach {done} outcomes ({outcomes})").into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    running.abort();
    let _ = running.await;
    drop(engine);
    settle().await;
    HANG_FROM.store(u64::MAX, Ordering::Relaxed);
    ensure(stopped.outcomes as u64 == done, || format!("{} outcomes, not {done}", stopped.outcomes))?;
    Ok(stopped)
}

/// Resumes the stopped map of the SQLite file `path` (made by [`stopped_map`] with `n`
/// branches) as a restarted process: from before the store is opened to the result. Returns
/// the time and the number of branch bodies that ran.
pub async fn resume_map(path: &Path, n: u64) -> Result<(Duration, u64), BenchError> {
    let clock = ManualClock::new(SET_UP_AT.saturating_add(Duration::from_secs(3_600)));
    let ran_before = BRANCHES_RUN.load(Ordering::Relaxed);
    let began = Instant::now();
    let engine = Engine::builder(SqliteStore::open(path)?).clock(Arc::new(clock)).register(map_steps).build()?;
    engine.worker("restarted").run_until_idle().await?;
    let result = engine.result(map_steps, MAP).await?;
    let elapsed = began.elapsed();
    let ran = BRANCHES_RUN.load(Ordering::Relaxed) - ran_before;
    ensure(result == Ok(n * n.saturating_sub(1) / 2), || format!("the resumed map returned {result:?}"))?;
    drop(engine);
    settle().await;
    Ok((elapsed, ran))
}

/// How long the parent of figure 8b spent in its two loops, from its history's timestamps.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    /// From its first event to the checkpoint of its last `start!`.
    pub starting: Duration,
    /// From its first `wait!` event to its last event.
    pub joining: Duration,
    /// Bytes of the state its last `start!` checkpoint stored (every handle).
    pub state_started: usize,
    /// Bytes of the state its first and last `wait!` checkpoints stored.
    pub state_joins: (usize, usize),
}

/// Reads [`Phases`] from the parent's history.
fn phases(history: &[durable_core::store::HistoryEvent]) -> Phases {
    let first = history.first().map(|e| e.at);
    let last = history.last().map(|e| e.at);
    let at = |point: &str, last: bool| {
        let mut matching = history.iter().filter(|e| e.point.as_deref() == Some(point)).map(|e| e.at);
        if last { matching.next_back() } else { matching.next() }
    };
    let span = |from: Option<Timestamp>, to: Option<Timestamp>| match (from, to) {
        (Some(from), Some(to)) => to.saturating_since(from),
        _ => Duration::ZERO,
    };
    let states: Vec<(&str, usize)> =
        history.iter().filter_map(|e| Some((e.point.as_deref()?, e.state.as_ref()?.len()))).collect();
    let state = |point: &str, last: bool| {
        let mut sizes = states.iter().filter(|(p, _)| *p == point).map(|(_, len)| *len);
        if last { sizes.next_back() } else { sizes.next() }.unwrap_or(0)
    };
    Phases {
        starting: span(first, at("start", true)),
        joining: span(at("join", false), last),
        state_started: state("start", true),
        state_joins: (state("join", false), state("join", true)),
    }
}

/// What one worker process of figure 8b reports.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ChildReport {
    /// Store transactions its group committer wrote.
    pub batches: u64,
    /// Commits in them.
    pub commits: u64,
}

/// The workflows of figure 8b's processes.
fn fan_out_engine(store: SqliteStore) -> Result<Engine<SqliteStore>, BenchError> {
    Ok(Engine::builder(store).register(fan_out).register(three_steps).build()?)
}

/// The worker process of figure 8b: opens the SQLite file at `path`, says `ready`, runs a
/// worker from the line `go` on its standard input until the next line, and reports.
pub fn child(path: &Path, name: &str) -> Result<ChildReport, BenchError> {
    let rt = multi_thread()?;
    rt.block_on(async {
        let engine = fan_out_engine(SqliteStore::open(path)?)?;
        let worker = engine.worker(name);
        println!("ready");
        std::io::stdout().flush()?;
        let read_line = || {
            tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map(|_| line)
            })
        };
        read_line().await??;
        let stop = read_line();
        worker
            .run(async {
                let _ = stop.await;
            })
            .await;
        let stats = engine.stats();
        Ok(ChildReport { batches: stats.batches, commits: stats.commits })
    })
}

/// One run of figure 8b: a new SQLite file at `path` holding a [`fan_out`] of `children`,
/// run by `workers` processes of `exe`. Returns the time from the signal to the parent's result
/// (read by this process every millisecond) and the workers' reports.
pub fn fan_out_once(
    exe: &Path,
    path: &Path,
    workers: usize,
    children: u64,
) -> Result<(Duration, Vec<ChildReport>, Phases), BenchError> {
    let rt = multi_thread()?;
    let engine = rt.block_on(async {
        let engine = Engine::builder(SqliteStore::create(path)?)
            .register(fan_out)
            .register(three_steps)
            .poll_interval(Duration::from_millis(1))
            .build()?;
        engine.start(fan_out, PARENT, children).await?;
        Ok::<_, BenchError>(engine)
    })?;
    let mut spawned = Vec::new();
    for w in 0..workers {
        let child = Command::new(exe)
            .arg("--child-composition")
            .arg(path)
            .arg(format!("worker-{w}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        spawned.push(child);
    }
    let result = (|| -> Result<(Duration, Vec<ChildReport>), BenchError> {
        let mut outputs = Vec::new();
        for child in &mut spawned {
            let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
            let mut line = String::new();
            stdout.read_line(&mut line)?;
            ensure(line.trim() == "ready", || format!("a worker process said {line:?}"))?;
            outputs.push(stdout);
        }
        let began = Instant::now();
        for child in &mut spawned {
            child.stdin.as_mut().ok_or("no stdin")?.write_all(b"go\n")?;
        }
        let result = rt.block_on(engine.result(fan_out, PARENT))?;
        let elapsed = began.elapsed();
        let expected = children * children.saturating_sub(1) / 2 + 2 * children;
        ensure(result == Ok(expected), || format!("the parent returned {result:?}, not {expected}"))?;
        for child in &mut spawned {
            child.stdin.as_mut().ok_or("no stdin")?.write_all(b"stop\n")?;
        }
        let mut reports = Vec::new();
        for (child, mut stdout) in spawned.iter_mut().zip(outputs) {
            let mut line = String::new();
            stdout.read_line(&mut line)?;
            let status = child.wait()?;
            ensure(status.success(), || format!("a worker process failed: {status}"))?;
            reports.push(serde_json::from_str::<ChildReport>(line.trim())?);
        }
        Ok((elapsed, reports))
    })();
    if result.is_err() {
        for child in &mut spawned {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    let (succeeded, history) = rt.block_on(async {
        let filter = durable_core::store::ListFilter { status: Some(Status::Succeeded), ..Default::default() };
        (engine.store().list(filter).await.map(|list| list.len() as u64), engine.store().history(PARENT).await)
    });
    drop(engine);
    rt.block_on(settle());
    let (elapsed, reports) = result?;
    let succeeded = succeeded?;
    ensure(succeeded == children + 1, || format!("{succeeded} executions succeeded, not {}", children + 1))?;
    Ok((elapsed, reports, phases(&history?)))
}

/// Measures figure 8.
pub fn run(config: &Config) -> Result<Vec<Row>, BenchError> {
    let scratch = config.scratch("composition")?;
    let rt = multi_thread()?;
    let n: u64 = 1_000;
    let children: u64 = 100;
    let runs = config.runs(11, 2);
    let store = "SQLite WAL, synchronous=FULL";
    let mut rows = Vec::new();

    // Set up (not timed): the baseline of an empty store, the floor, the stopped maps.
    let base = scratch.file("empty.db");
    rt.block_on(empty(&base))?;
    let base = stored(&base)?;
    let mut floor = Floor::open(&scratch.file("floor.db"), Synchronous::Full)?;
    floor.warm_up()?;
    let stops = [n / 2, n * 9 / 10];
    let mut stopped = Vec::new();
    for done in stops {
        let template = scratch.file(&format!("stopped-{done}.db"));
        stopped.push(rt.block_on(stopped_map(&template, n, done))?);
        checkpoint(&template)?;
    }

    // 8a and 8r, interleaved run by run so that the load of a shared machine weighs on both.
    let (mut times, mut commits, mut batches, mut grown, mut last) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), None);
    let (mut floors, mut resumed) = (Vec::new(), vec![Vec::new(); stops.len()]);
    for run in 0..runs {
        let path = scratch.file(&format!("8a-{run}.db"));
        let done = rt.block_on(map_once(&path, n))?;
        times.push(millis(done.elapsed));
        commits.push(done.stats.commits as f64);
        batches.push(done.stats.batches as f64);
        let held = stored(&path)?;
        grown.push(held.used.saturating_sub(base.used) as f64);
        last = Some(held);
        std::fs::remove_file(&path)?;
        for (times, done) in resumed.iter_mut().zip(stops) {
            let template = scratch.file(&format!("stopped-{done}.db"));
            let path = scratch.file(&format!("8r-{done}-{run}.db"));
            copy_store(&template, &path)?;
            let (elapsed, bodies) = rt.block_on(resume_map(&path, n))?;
            ensure(bodies == n - done, || format!("{bodies} branch bodies ran again, not {}", n - done))?;
            times.push(millis(elapsed));
            std::fs::remove_file(&path)?;
        }
        let tx = floor.transactions(100)?;
        floors.push(super::micros(tx.iter().sum::<Duration>()) / tx.len() as f64);
    }
    drop(floor);
    let held = last.unwrap_or_default();
    // The pages a branch's commit writes, on a map small enough for the WAL not to be
    // checkpointed meanwhile.
    let small = scratch.file("8w.db");
    let pages = rt.block_on(map_once(&small, 50))?;
    let pages_per_commit = pages.wal_frames as f64 / pages.stats.commits.max(1) as f64;
    let (time, grown) = (Summary::of(&times), Summary::of(&grown));
    rows.push(
        Row::new(
            "8a",
            &format!("one map! of {n} step branches ({MAP_CONCURRENCY} at a time), from engine.start to the result"),
            "ms",
            store,
            Better::Lower,
            time.clone(),
        )
        .note(format!(
            "{:.0} commits in {:.0} store transactions per run (median); afterwards the file holds {} history \
             events ({} bytes of text), {} inbox rows, {} event keys; a map of 50 branches appended {:.1} WAL pages \
             per commit",
            Summary::of(&commits).median,
            Summary::of(&batches).median,
            held.events,
            held.history_bytes,
            held.inbox,
            held.keys,
            pages_per_commit,
        )),
    );
    let per_branch: Vec<f64> = times.iter().map(|ms| ms * 1e3 / n as f64).collect();
    rows.push(
        Row::new(
            "8p",
            &format!("the same runs, per branch (time / {n})"),
            "µs/branch",
            store,
            Better::Lower,
            Summary::of(&per_branch),
        )
        .floor("one-row transaction", Summary::of(&floors)),
    );
    rows.push(
        Row::new(
            "8s",
            &format!("bytes stored by one map! of {n} step branches"),
            "bytes",
            store,
            Better::Lower,
            grown.clone(),
        )
        .note(format!(
            "growth of the pages in use ((page_count - freelist_count) x page_size) over an empty store, after a \
                 WAL checkpoint: {:.0} bytes per branch; the file is {} bytes",
            grown.median / n as f64,
            held.file
        )),
    );
    for ((times, done), stopped) in resumed.into_iter().zip(stops).zip(stopped) {
        rows.push(
            Row::new(
                &format!("8r-{done}"),
                &format!(
                    "after a restart, the map stopped with {done} of {n} outcomes committed: open the store, run to the \
                     result"
                ),
                "ms",
                store,
                Better::Lower,
                Summary::of(&times),
            )
            .note(format!(
                "{} branch bodies ran again (counted), {:.0} µs per unfinished branch (median); the state stored at \
                 the map's checkpoint is {} bytes of JSON (the items), the {} outcomes wait in the inbox",
                n - done,
                Summary::of(&times).median * 1e3 / (n - done) as f64,
                stopped.state,
                stopped.outcomes
            )),
        );
    }

    // 8b: 100 children, 1 and 2 worker processes, interleaved run by run.
    let cases = [1usize, 2];
    let mut measured: Vec<FanOut> = cases.iter().map(|&workers| FanOut::new(workers)).collect();
    for run in 0..runs {
        for fan in &mut measured {
            let path = scratch.file(&format!("8b-{}-{run}.db", fan.workers));
            let (elapsed, reports, spent) = fan_out_once(&config.exe, &path, fan.workers, children)?;
            fan.add(elapsed, &reports, spent);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
    for fan in measured {
        let workers = fan.workers;
        let runs = fan.times.len() as u64;
        rows.push(
            Row::new(
                &format!("8b-{workers}"),
                &format!(
                    "a parent starting {children} child workflows of 3 steps (start! in a loop, then wait! each), \
                     {workers} worker process(es): from the signal to the parent's result"
                ),
                "ms",
                store,
                Better::Lower,
                Summary::of(&fan.times),
            )
            .note(format!(
                "{:.0} commits in {:.0} store transactions per run (all processes, mean), by process {:?}; the \
                 parent's history (ms timestamps, median): {:.0} ms from its start to its last start! checkpoint, \
                 {:.0} ms from its first wait! to its end; its state is {} bytes at its last start! checkpoint, {} \
                 at its first wait! checkpoint, {} at its last; workers poll every 250 ms (the default); the result \
                 is read every 1 ms",
                fan.commits as f64 / runs as f64,
                fan.batches as f64 / runs as f64,
                fan.shares.iter().map(|c| c / runs).collect::<Vec<_>>(),
                Summary::of(&fan.starting).median,
                Summary::of(&fan.joining).median,
                fan.states.state_started,
                fan.states.state_joins.0,
                fan.states.state_joins.1,
            )),
        );
    }
    Ok(rows)
}

/// The runs of one case of figure 8b.
struct FanOut {
    workers: usize,
    times: Vec<f64>,
    commits: u64,
    batches: u64,
    shares: Vec<u64>,
    starting: Vec<f64>,
    joining: Vec<f64>,
    states: Phases,
}

impl FanOut {
    fn new(workers: usize) -> Self {
        FanOut {
            workers,
            times: Vec::new(),
            commits: 0,
            batches: 0,
            shares: vec![0; workers],
            starting: Vec::new(),
            joining: Vec::new(),
            states: Phases::default(),
        }
    }

    fn add(&mut self, elapsed: Duration, reports: &[ChildReport], spent: Phases) {
        self.times.push(millis(elapsed));
        self.starting.push(millis(spent.starting));
        self.joining.push(millis(spent.joining));
        self.states = spent;
        self.commits += reports.iter().map(|r| r.commits).sum::<u64>();
        self.batches += reports.iter().map(|r| r.batches).sum::<u64>();
        for (share, report) in self.shares.iter_mut().zip(reports) {
            *share += report.commits;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_map_runs_stops_and_resumes() {
        let dir = std::env::temp_dir().join(format!("durable-bench-composition-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = multi_thread().unwrap();
        let done = rt.block_on(map_once(&dir.join("map.db"), 10)).unwrap();
        // The items' checkpoint, at least one commit of outcomes (branches that end together
        // share one), the result: at most one commit per branch besides.
        assert!((3..=13).contains(&done.stats.commits), "{:?}", done.stats);
        let held = stored(&dir.join("map.db")).unwrap();
        assert_eq!(held.inbox, 0);
        assert!(held.events >= 10);
        let stopped = rt.block_on(stopped_map(&dir.join("stopped.db"), 10, 4)).unwrap();
        assert_eq!(stopped.outcomes, 4);
        assert!(stopped.state > 0);
        let (_, ran) = rt.block_on(resume_map(&dir.join("stopped.db"), 10)).unwrap();
        assert_eq!(ran, 6, "only the branches without an outcome run again");
        drop(rt);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
