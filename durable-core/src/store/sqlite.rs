//! The embedded default store: one SQLite file, no server.

use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use self::file::WatchedFile;
use self::rows::{
    MIGRATIONS, RECORD_COLUMNS, SCHEMA_VERSION, append_history, decode_claimable, decode_history, decode_inbox,
    decode_record, existing_record, inbox_slot, insert_record, load_for_commit, load_record, millis, update_record,
};
use super::columns::int;
use super::{
    Commit, Created, ExecutionId, ExecutionRecord, HistoryEvent, InboxEvent, Lease, LeaseToken, ListFilter,
    NewExecution, Purge, Reopen, Sent, Store, StoreError, WorkflowInfo, apply_commit, apply_reopen, check_commit,
    check_purge, check_release, check_renew, check_reopen, claimable, new_record,
};
use crate::time::{SharedClock, Timestamp};

mod file;
mod rows;
mod workflows;

/// How hard SQLite works to keep a commit on power loss (`PRAGMA synchronous`).
///
/// The store always runs in WAL mode, where both levels keep the file consistent; they differ
/// only in what a power loss or an OS crash (not a process crash) may undo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit is synced to disk before it returns: nothing committed is ever lost. The
    /// default; use [`Store::commit_batch`] to share one sync between many executions.
    ///
    /// Lease changes alone ([`Store::claim_due`], [`Store::claim`], [`Store::renew_lease`],
    /// [`Store::release_lease`]) commit without waiting for a sync: they only keep the workers
    /// that share the file apart, and a power loss stops all of those workers at once. Such a change, if a power
    /// loss undoes it, leaves an execution claimable or leased until its lease expires, as the
    /// crash itself would; the next synced commit carries it to disk anyway.
    #[default]
    Full,
    /// Syncs at WAL checkpoints only: much faster, but the last commits before a power loss may
    /// be undone (and their steps run again).
    Normal,
}

/// How to open a [`SqliteStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Durability against power loss. Default: [`Synchronous::Full`].
    pub synchronous: Synchronous,
    /// How long a call waits for another process's write lock before failing with
    /// [`StoreError::Unavailable`]. Default: 5 seconds.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { synchronous: Synchronous::Full, busy_timeout: Duration::from_secs(5) }
    }
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Whether a write transaction must reach the disk before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Durability {
    /// As [`SqliteOptions::synchronous`] says: everything that records what an execution did.
    Synced,
    /// A lease change: its commit does not wait for a sync (see [`Synchronous::Full`]).
    Lease,
}

/// A [`Store`] in one SQLite file. Clones share one connection.
///
/// The connection lives on a dedicated thread that runs calls one after the other; async
/// methods send it a closure and await the answer. A thread of our own (rather than
/// `spawn_blocking` with a mutex) means the store works on any executor or runtime flavour,
/// never occupies the runtime's blocking pool, and needs no lock around the connection, which
/// SQLite serializes anyway (one writer at a time). Several processes may open the same file:
/// SQLite's locking and `BEGIN IMMEDIATE` transactions keep their writes apart.
///
/// The thread ends when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    path: Arc<PathBuf>,
    /// The file it opened: checked before each write commits.
    file: Arc<WatchedFile>,
    read_only: bool,
    /// The schema version of the file: older than [`SCHEMA_VERSION`] only when read-only.
    version: i64,
    synchronous: Synchronous,
    /// Set while the connection runs with `synchronous = NORMAL` after a lease change: the next
    /// synced write sets `FULL` again before it writes anything. Only the connection's thread
    /// reads and writes it.
    relaxed: Arc<AtomicBool>,
}

/// A [`StoreError`] for a failed SQLite call while trying to `what`.
fn sql(what: impl Display) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |error| {
        let message = format!("sqlite: cannot {what}: {error}");
        match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Unavailable(message.into()),
            _ => StoreError::Backend(message.into()),
        }
    }
}

/// Whether opening a [`SqliteStore`] may create its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Create {
    /// The file must exist: [`SqliteStore::open`].
    Never,
    /// The file must not exist: [`SqliteStore::create`].
    New,
    /// [`SqliteStore::open_or_create`].
    IfMissing,
}

impl SqliteStore {
    /// Opens the existing store in file `path` with [`SqliteOptions::default`] (full
    /// durability), bringing an older schema up to date. Blocks while it opens the file.
    ///
    /// The file must exist: a missing file is an error, never a new empty store, so that a
    /// worker restarted after its database was lost or moved says so instead of starting
    /// afresh. Make the store once with [`SqliteStore::create`] (or use
    /// [`SqliteStore::open_or_create`] where an empty store is as good as a lost one: tests,
    /// demos, caches). An existing empty database (no tables at all, such as an empty file)
    /// is given the schema and becomes a store.
    ///
    /// Fails with [`StoreError::Backend`] if the file does not exist, cannot be written (it is
    /// read-only: use [`SqliteStore::open_read_only`] to read it), is not a SQLite database,
    /// holds tables of something else than a durable store, or its schema is newer than this
    /// build.
    ///
    /// While the store is open, it checks before each write that the file at `path` is still
    /// the file it opened: if it was removed or replaced, the write is rolled back and the
    /// store stops (every later call fails with [`StoreError::Backend`] saying so), rather
    /// than go on writing into a file nobody will read.
    ///
    /// ```
    /// use durable_core::SqliteStore;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("app.db");
    /// assert!(SqliteStore::open(&path).is_err(), "no such file");
    /// SqliteStore::create(&path)?;
    /// assert!(SqliteStore::create(&path).is_err(), "it exists");
    /// let store = SqliteStore::open(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens the existing store in file `path` with `options`; see [`SqliteStore::open`].
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        Self::connect(path.as_ref(), options, Create::Never)
    }

    /// Creates a new store in file `path`, which must not exist, with
    /// [`SqliteOptions::default`]; the store is open when it returns. Its directory must exist.
    /// Fails with [`StoreError::Backend`] if the file exists, and leaves no file behind when it
    /// fails otherwise. See [`SqliteStore::open`].
    pub fn create(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::create_with(path, SqliteOptions::default())
    }

    /// Creates a new store in file `path` with `options`; see [`SqliteStore::create`].
    pub fn create_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        Self::connect(path.as_ref(), options, Create::New)
    }

    /// Opens the store in file `path`, creating it if the file is missing, with
    /// [`SqliteOptions::default`]. For programs where a new empty store is as good as a lost
    /// one (tests, demos); a worker should [`open`](SqliteStore::open) a store made once with
    /// [`create`](SqliteStore::create). Fails as [`SqliteStore::open`] does otherwise.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_or_create_with(path, SqliteOptions::default())
    }

    /// Opens or creates the store in file `path` with `options`; see
    /// [`SqliteStore::open_or_create`].
    pub fn open_or_create_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        Self::connect(path.as_ref(), options, Create::IfMissing)
    }

    fn connect(path: &Path, options: SqliteOptions, create: Create) -> Result<Self, StoreError> {
        let shown = path.display();
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty())
            && !dir.is_dir()
        {
            let dir = dir.display();
            let message = format!("sqlite: cannot open {shown}: directory {dir} does not exist");
            return Err(StoreError::backend(message));
        }
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        if create != Create::Never && !path.exists() && Path::new(&wal).exists() {
            return Err(StoreError::backend(format!(
                "sqlite: cannot create {shown}: a write-ahead log {shown}-wal of another database is there, \
                 which SQLite would replay into the new one; remove it first"
            )));
        }
        match create {
            Create::Never if !path.exists() => {
                return Err(StoreError::backend(format!(
                    "sqlite: cannot open {shown}: there is no such file (SqliteStore::create makes a new store)"
                )));
            }
            Create::New => {
                std::fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(|error| {
                    let why = match error.kind() {
                        std::io::ErrorKind::AlreadyExists => "the file exists (SqliteStore::open opens it)".to_owned(),
                        _ => error.to_string(),
                    };
                    StoreError::backend(format!("sqlite: cannot create {shown}: {why}"))
                })?;
            }
            _ => {}
        }
        let opened = Self::open_file(path, &options, create == Create::IfMissing);
        if opened.is_err() && create == Create::New {
            // Leave nothing behind: the file is ours, and empty or half made.
            for suffix in ["", "-wal", "-shm"] {
                let mut name = path.as_os_str().to_owned();
                name.push(suffix);
                let _ = std::fs::remove_file(name);
            }
        }
        opened
    }

    fn open_file(path: &Path, options: &SqliteOptions, create: bool) -> Result<Self, StoreError> {
        let shown = path.display();
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let mut conn = Connection::open_with_flags(path, flags).map_err(sql(format_args!("open {shown}")))?;
        // SQLite falls back to reading a file it may not write: refuse that here, not at the
        // first write.
        if conn.is_readonly(rusqlite::MAIN_DB).map_err(sql(format_args!("open {shown}")))? {
            return Err(StoreError::backend(format!(
                "sqlite: cannot open {shown} for writing: the file is read-only (check its permissions, or read it \
                 with SqliteStore::open_read_only)"
            )));
        }
        conn.busy_timeout(options.busy_timeout).map_err(sql(format_args!("configure {shown}")))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(sql(format_args!("open {shown} (is it a SQLite database?)")))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::backend(format!("sqlite: {shown} cannot use WAL mode ({mode})")));
        }
        let synchronous = match options.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous).map_err(sql(format_args!("configure {shown}")))?;
        // Plan each cached statement once: without the query planner stability guarantee SQLite
        // re-prepares the claim query at every call (93 µs against 8 µs, BENCHMARKS.md figure 4).
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(sql(format_args!("configure {shown}")))?;
        migrate(&mut conn, path)?;
        Self::serve(conn, path, false, SCHEMA_VERSION, options.synchronous)
    }

    /// Opens the existing store in file `path` for reading only (for tools such as the command
    /// line): every write fails with [`StoreError::Backend`] and the stored data never changes.
    /// A file of an older schema version is read as it is (it is not migrated): what it lacks,
    /// such as workflow registrations before version 2, reads as absent.
    ///
    /// Reading a WAL database still needs its `-shm` and `-wal` side files, which SQLite creates
    /// next to the file if they are missing (so the directory must be writable, or a writer
    /// must have the store open).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let shown = path.display();
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sql(format_args!("open {shown} read-only")))?;
        conn.busy_timeout(SqliteOptions::default().busy_timeout).map_err(sql(format_args!("configure {shown}")))?;
        match schema_version(&conn, path)? {
            0 => Err(StoreError::backend(format!("sqlite: {shown} is not a durable store (it has no schema)"))),
            version => {
                if version < 4 {
                    // Before version 3 there were no lease epochs (read as 0), before version 4
                    // no parents (read as none): through a view in the connection's own
                    // temporary schema, which shadows the table.
                    let view = if version < 3 {
                        "CREATE TEMP VIEW executions AS \
                         SELECT *, 0 AS lease_epoch, NULL AS parent_id, NULL AS parent_event FROM main.executions"
                    } else {
                        "CREATE TEMP VIEW executions AS \
                         SELECT *, NULL AS parent_id, NULL AS parent_event FROM main.executions"
                    };
                    // Empty, as they were: nobody could key or pause before version 4.
                    let tables = "CREATE TEMP TABLE execution_keys (execution_id TEXT, name TEXT, value TEXT); \
                                  CREATE TEMP TABLE paused_workflows (name TEXT);";
                    conn.execute_batch(view)
                        .and_then(|()| conn.execute_batch(tables))
                        .map_err(sql(format_args!("read {shown} (schema version {version})")))?;
                }
                Self::serve(conn, path, true, version, Synchronous::Normal)
            }
        }
    }

    /// The file this store is in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn serve(
        mut conn: Connection,
        path: &Path,
        read_only: bool,
        version: i64,
        synchronous: Synchronous,
    ) -> Result<Self, StoreError> {
        let file = Arc::new(WatchedFile::new(path)?);
        // Every statement the store runs stays prepared (there are about thirty).
        conn.set_prepared_statement_cache_capacity(64);
        let (jobs, queue) = mpsc::channel::<Job>();
        let name = format!("durable-sqlite {}", path.display());
        let watched = Arc::clone(&file);
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            for job in queue {
                // A panicking call loses its answer (the caller gets an error), not the store.
                let _ = catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
            }
            if watched.stopped().is_err() {
                // Closing would checkpoint and then delete `<path>-wal` by name, which may now be
                // the log of the file that took the path: leave the connection open instead.
                std::mem::forget(conn);
            }
        });
        if let Err(error) = spawned {
            // The queue was dropped with the closure: every call reports the thread as gone.
            tracing::error!(%error, "cannot start the sqlite thread");
        }
        let relaxed = Arc::new(AtomicBool::new(false));
        let path = Arc::new(path.to_owned());
        Ok(SqliteStore { jobs, path, file, read_only, version, synchronous, relaxed })
    }

    /// Runs `f` on the connection's thread and returns its answer.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.file.stopped()?;
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        let gone = || {
            let path = self.path.display();
            StoreError::backend(format!(
                "sqlite: a call on {path} got no answer (it panicked, or the connection's thread is gone)"
            ))
        };
        self.jobs.send(job).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction (which takes the write lock at once, so two
    /// processes never deadlock upgrading a read) and commits if it returns `Ok`.
    async fn write<T, F>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.write_with(Durability::Synced, what, f).await
    }

    /// [`SqliteStore::write`] with the durability of a lease change.
    async fn write_lease<T, F>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.write_with(Durability::Lease, what, f).await
    }

    async fn write_with<T, F>(&self, durability: Durability, what: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.read_only {
            let path = self.path.display();
            return Err(StoreError::backend(format!("sqlite: cannot {what}: {path} is open read-only")));
        }
        let full = self.synchronous == Synchronous::Full;
        let relaxed = Arc::clone(&self.relaxed);
        let file = Arc::clone(&self.file);
        self.call(move |conn| {
            // Outside the transaction: SQLite reads the level when the transaction commits.
            match durability {
                Durability::Lease if full && !relaxed.load(Ordering::Relaxed) => {
                    conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql(what))?;
                    relaxed.store(true, Ordering::Relaxed);
                }
                Durability::Synced if relaxed.load(Ordering::Relaxed) => {
                    conn.pragma_update(None, "synchronous", "FULL").map_err(sql(what))?;
                    relaxed.store(false, Ordering::Relaxed);
                }
                _ => {}
            }
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql(what))?;
            let value = f(&tx)?;
            // Dropping the transaction rolls it back.
            file.check()?;
            tx.commit().map_err(sql(what))?;
            Ok(value)
        })
        .await
    }

    /// Runs `f` in a read transaction, so that it sees one consistent state.
    async fn read<T, F>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.call(move |conn| {
            let tx = conn.transaction().map_err(sql(what))?;
            f(&tx)
        })
        .await
    }
}

/// The schema version of the open database.
fn schema_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sql(format_args!("read the schema version of {}", path.display())))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::backend(format!(
            "sqlite: {} has schema version {version}, newer than this build supports \
             ({SCHEMA_VERSION}): open it with a newer version of durable",
            path.display()
        )));
    }
    Ok(version)
}

/// Creates the schema if the file has none, brings an older one up to date (in one
/// transaction); refuses a newer one.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let what = format_args!("create or migrate the schema in {}", path.display()).to_string();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql(&what))?;
    // Read inside the write transaction: two processes creating the file race here.
    let current = schema_version(&tx, path)?;
    if current == 0 {
        let tables: i64 =
            tx.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0)).map_err(sql(&what))?;
        if tables > 0 {
            return Err(StoreError::backend(format!(
                "sqlite: {} is not a durable store: it holds other tables, and no durable schema",
                path.display()
            )));
        }
    }
    if current < SCHEMA_VERSION {
        for migration in MIGRATIONS.iter().skip(usize::try_from(current).unwrap_or(0)) {
            tx.execute_batch(migration).map_err(sql(&what))?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(sql(&what))?;
    }
    tx.commit().map_err(sql(&what))
}

/// Applies each commit in `commits` inside the caller's transaction.
///
/// A commit's checks all run before it writes anything, so a commit that fails them leaves no
/// trace and needs no savepoint; a failure while writing is a backend error, which aborts the
/// whole transaction.
fn commit_all(conn: &Connection, commits: &[Commit]) -> Result<Vec<Result<ExecutionRecord, StoreError>>, StoreError> {
    commits
        .iter()
        .map(|commit| match commit_one(conn, commit) {
            Err(error @ (StoreError::Backend(_) | StoreError::Unavailable(_))) => Err(error),
            result => Ok(result),
        })
        .collect()
}

fn commit_one(conn: &Connection, commit: &Commit) -> Result<ExecutionRecord, StoreError> {
    let (current, last_seq) = load_for_commit(conn, &commit.id)?;
    check_commit(&current, commit)?;
    let next = apply_commit(&current, commit);
    update_record(conn, &current, &next)?;
    append_history(conn, &commit.id, last_seq, &commit.events)?;
    if !commit.consume.is_empty() {
        let mut delete = conn
            .prepare_cached("DELETE FROM inbox WHERE execution_id = ?1 AND seq = ?2")
            .map_err(sql("consume inbox events"))?;
        for seq in &commit.consume {
            let seq = i64::try_from(*seq).unwrap_or(i64::MAX);
            delete.execute(params![commit.id, seq]).map_err(sql("consume inbox events"))?;
        }
    }
    for new in &commit.spawn {
        spawn_one(conn, new)?;
    }
    for notice in &commit.notify {
        match send_one(conn, &notice.to, &notice.name, &notice.payload, notice.key.as_deref(), commit.now) {
            // An unknown or finished execution waits for nothing: the notice is dropped.
            Ok(_) | Err(StoreError::NotFound(_) | StoreError::Terminal(_)) => {}
            Err(error @ (StoreError::Backend(_) | StoreError::Unavailable(_))) => return Err(error),
            Err(error) => tracing::error!(%error, to = %notice.to, "a notice could not be delivered"),
        }
    }
    Ok(next)
}

/// Due executions (see [`Store::claim_due`]), longest-due first: `?1` is now, `?2` the limit.
const CLAIM: &str = "
WITH due AS (
    SELECT e.*, CASE WHEN e.status = 'running' THEN e.updated_at ELSE MIN(
        CASE WHEN e.wake_at <= ?1 THEN e.wake_at ELSE 9223372036854775807 END,
        COALESCE((SELECT MIN(i.at) FROM inbox i
                  WHERE i.execution_id = e.id AND i.name = e.waiting_for),
                 9223372036854775807)) END AS due_since
    FROM executions e
    WHERE e.status IN ('running', 'suspended')
      AND (e.lease_until IS NULL OR e.lease_until <= ?1)
      AND (e.status = 'running' OR e.wake_at <= ?1 OR EXISTS (
          SELECT 1 FROM inbox i WHERE i.execution_id = e.id AND i.name = e.waiting_for))
      AND NOT EXISTS (SELECT 1 FROM paused_workflows p WHERE p.name = e.workflow) {layouts}
)
SELECT {columns} FROM due ORDER BY due_since, id LIMIT ?2";

/// Leases the due executions to `owner` and returns them. A row that cannot be decoded is
/// skipped and reported, so one corrupt execution does not stop all the others.
fn claim(
    conn: &Connection,
    owner: &str,
    now: Timestamp,
    lease: Duration,
    limit: usize,
    layouts: Option<&str>,
) -> Result<Vec<ExecutionRecord>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // `?3`: the builds the worker has, a JSON array of `[workflow, layout]`.
    let only = "AND EXISTS (SELECT 1 FROM json_each(?3) l WHERE json_extract(l.value, '$[0]') = e.workflow \
                AND (e.snapshot_fingerprint IS NULL OR json_extract(l.value, '$[1]') = e.snapshot_fingerprint))";
    let query =
        CLAIM.replace("{columns}", RECORD_COLUMNS).replace("{layouts}", if layouts.is_some() { only } else { "" });
    let mut select = conn.prepare_cached(&query).map_err(sql("find due executions"))?;
    fn decode(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<(ExecutionRecord, u64), StoreError>> {
        Ok(decode_claimable(row))
    }
    let rows = match layouts {
        None => select.query_map(params![millis(now), limit], decode),
        Some(layouts) => select.query_map(params![millis(now), limit, layouts], decode),
    }
    .map_err(sql("find due executions"))?;
    let until = now.saturating_add(lease);
    let mut claimed = Vec::new();
    for row in rows {
        match row.map_err(sql("find due executions"))? {
            Ok((mut record, epoch)) => {
                record.lease = Some(lease_to(conn, &record.id, owner, epoch + 1, until)?);
                claimed.push(record);
            }
            Err(error) => tracing::error!(%error, "skipping an execution that cannot be claimed"),
        }
    }
    Ok(claimed)
}

/// Writes the lease of claim `epoch` on execution `id` and returns it.
fn lease_to(conn: &Connection, id: &str, owner: &str, epoch: u64, until: Timestamp) -> Result<Lease, StoreError> {
    conn.prepare_cached("UPDATE executions SET lease_owner = ?2, lease_until = ?3, lease_epoch = ?4 WHERE id = ?1")
        .and_then(|mut update| update.execute(params![id, owner, millis(until), int(epoch)]))
        .map_err(sql("lease an execution"))?;
    Ok(Lease { owner: owner.to_owned(), epoch, until })
}

/// Creates `new` inside the caller's transaction; see [`Store::create`].
fn create_one(conn: &Connection, new: &NewExecution) -> Result<Created, StoreError> {
    if let Some(existing) = load_record(conn, &new.id)? {
        return Ok(Created::Existing(existing));
    }
    let (record, started) = new_record(new);
    insert_record(conn, &record)?;
    append_history(conn, &record.id, 0, &[started])?;
    insert_keys(conn, new)?;
    Ok(Created::New(record))
}

/// Records the business keys of the new execution `new`.
fn insert_keys(conn: &Connection, new: &NewExecution) -> Result<(), StoreError> {
    if new.keys.is_empty() {
        return Ok(());
    }
    let what = "record an execution's keys";
    let mut insert = conn
        .prepare_cached("INSERT OR IGNORE INTO execution_keys (execution_id, name, value) VALUES (?1, ?2, ?3)")
        .map_err(sql(what))?;
    for (name, value) in &new.keys {
        insert.execute(params![new.id, name, value]).map_err(sql(what))?;
    }
    Ok(())
}

/// Whether workflow `name` is paused.
fn is_paused(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM paused_workflows WHERE name = ?1")
        .and_then(|mut select| select.exists([name]))
        .map_err(sql("read the paused workflows"))
}

/// Creates `new` inside the caller's transaction unless an execution of its id exists (which
/// is not read, so that a row that cannot be decoded does not fail the commit spawning it).
fn spawn_one(conn: &Connection, new: &NewExecution) -> Result<(), StoreError> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM executions WHERE id = ?1")
        .and_then(|mut select| select.exists([&new.id]))
        .map_err(sql("start a child execution"))?;
    if !exists {
        let (record, started) = new_record(new);
        insert_record(conn, &record)?;
        append_history(conn, &record.id, 0, &[started])?;
        insert_keys(conn, new)?;
    }
    Ok(())
}

/// Appends an event to `id`'s inbox inside the caller's transaction; see
/// [`Store::send_keyed_event`].
fn send_one(
    conn: &Connection,
    id: &str,
    name: &str,
    payload: &str,
    key: Option<&str>,
    now: Timestamp,
) -> Result<Sent, StoreError> {
    let (status, seq) = inbox_slot(conn, id)?;
    if status.is_terminal() {
        return Err(StoreError::Terminal(id.to_owned()));
    }
    if let Some(key) = key
        && let Some(first) = sent_with_key(conn, id, key)?
    {
        return Ok(Sent::Duplicate(first));
    }
    let stored = i64::try_from(seq).unwrap_or(i64::MAX);
    conn.prepare_cached("INSERT INTO inbox (execution_id, seq, name, payload, at) VALUES (?1, ?2, ?3, ?4, ?5)")
        .and_then(|mut insert| insert.execute(params![id, stored, name, payload, millis(now)]))
        .and_then(|_| {
            conn.prepare_cached("UPDATE executions SET next_inbox_seq = ?2 WHERE id = ?1")?
                .execute(params![id, stored + 1])
        })
        .and_then(|_| match key {
            Some(key) => conn
                .prepare_cached("INSERT INTO event_keys (execution_id, key, seq) VALUES (?1, ?2, ?3)")?
                .execute(params![id, key, stored]),
            None => Ok(0),
        })
        .map_err(sql("send an event"))?;
    Ok(Sent::New(seq))
}

/// The seq of the event sent to execution `id` with idempotency key `key`, if one was.
fn sent_with_key(conn: &Connection, id: &str, key: &str) -> Result<Option<u64>, StoreError> {
    let what = "look up an event's idempotency key";
    let mut select =
        conn.prepare_cached("SELECT seq FROM event_keys WHERE execution_id = ?1 AND key = ?2").map_err(sql(what))?;
    let seq: Option<i64> = select.query_row(params![id, key], |row| row.get(0)).optional().map_err(sql(what))?;
    Ok(seq.map(|seq| u64::try_from(seq).unwrap_or(0)))
}

/// The record `id` with the epoch of its last claim, or [`StoreError::NotFound`].
fn claimable_record(conn: &Connection, id: &str) -> Result<(ExecutionRecord, u64), StoreError> {
    let query = format!("SELECT {RECORD_COLUMNS} FROM executions WHERE id = ?1");
    let mut statement = conn.prepare_cached(&query).map_err(sql("load an execution"))?;
    let row =
        statement.query_row([id], |row| Ok(decode_claimable(row))).optional().map_err(sql("load an execution"))?;
    row.ok_or_else(|| StoreError::NotFound(id.to_owned()))?
}

impl Store for SqliteStore {
    async fn create(&self, new: NewExecution) -> Result<Created, StoreError> {
        self.write("create an execution", move |conn| create_one(conn, &new)).await
    }

    async fn create_batch(&self, news: Vec<NewExecution>) -> Result<Vec<Created>, StoreError> {
        if news.is_empty() {
            return Ok(Vec::new());
        }
        self.write("create executions", move |conn| news.iter().map(|new| create_one(conn, new)).collect()).await
    }

    async fn load(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let id = id.to_owned();
        self.read("load an execution", move |conn| load_record(conn, &id)).await
    }

    async fn commit_batch(&self, commits: Vec<Commit>) -> Result<Vec<Result<ExecutionRecord, StoreError>>, StoreError> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        self.write("commit", move |conn| commit_all(conn, &commits)).await
    }

    async fn claim_due(
        &self,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (owner, clock) = (owner.to_owned(), Arc::clone(clock));
        // The clock is read inside the transaction, once the write lock is held.
        self.write_lease("claim due executions", move |conn| claim(conn, &owner, clock.now(), lease, limit, None)).await
    }

    async fn claim_due_for(
        &self,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
        limit: usize,
        layouts: &[(String, String)],
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (owner, clock) = (owner.to_owned(), Arc::clone(clock));
        // Strings only: encoding cannot fail.
        let layouts = serde_json::to_string(layouts).unwrap_or_else(|_| "[]".to_owned());
        self.write_lease("claim due executions", move |conn| {
            claim(conn, &owner, clock.now(), lease, limit, Some(&layouts))
        })
        .await
    }

    async fn claim(
        &self,
        id: &str,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let (id, owner, clock) = (id.to_owned(), owner.to_owned(), Arc::clone(clock));
        self.write_lease("claim an execution", move |conn| {
            let (mut record, epoch) = claimable_record(conn, &id)?;
            let now = clock.now();
            if !claimable(&record, now) || is_paused(conn, &record.workflow)? {
                return Ok(None);
            }
            record.lease = Some(lease_to(conn, &id, &owner, epoch + 1, now.saturating_add(lease))?);
            Ok(Some(record))
        })
        .await
    }

    async fn renew_lease(
        &self,
        id: &str,
        token: &LeaseToken,
        clock: &SharedClock,
        lease: Duration,
    ) -> Result<Lease, StoreError> {
        let (id, token, clock) = (id.to_owned(), token.clone(), Arc::clone(clock));
        self.write_lease("renew a lease", move |conn| {
            check_renew(&existing_record(conn, &id)?, &token)?;
            lease_to(conn, &id, &token.owner, token.epoch, clock.now().saturating_add(lease))
        })
        .await
    }

    async fn release_lease(&self, id: &str, token: &LeaseToken) -> Result<(), StoreError> {
        let (id, token) = (id.to_owned(), token.clone());
        self.write_lease("release a lease", move |conn| {
            check_release(&existing_record(conn, &id)?, &token)?;
            conn.execute("UPDATE executions SET lease_owner = NULL, lease_until = NULL WHERE id = ?1", [&id])
                .map_err(sql("release a lease"))?;
            Ok(())
        })
        .await
    }

    async fn send_keyed_event(
        &self,
        id: &str,
        name: &str,
        payload: &str,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<Sent, StoreError> {
        let (id, name, payload, key) = (id.to_owned(), name.to_owned(), payload.to_owned(), key.map(str::to_owned));
        self.write("send an event", move |conn| send_one(conn, &id, &name, &payload, key.as_deref(), now)).await
    }

    async fn inbox(&self, id: &str) -> Result<Vec<InboxEvent>, StoreError> {
        let id = id.to_owned();
        self.read("read the inbox", move |conn| {
            existing_record(conn, &id)?;
            let query = "SELECT seq, name, payload, at FROM inbox WHERE execution_id = ?1 \
                         ORDER BY seq";
            select_all(conn, query, &id, "read the inbox", decode_inbox)
        })
        .await
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        let id = id.to_owned();
        self.read("read the history", move |conn| {
            existing_record(conn, &id)?;
            let query = "SELECT seq, at, kind, point, file, line, attempt, detail, state, error_kind, worker \
                         FROM history WHERE execution_id = ?1 ORDER BY seq";
            select_all(conn, query, &id, "read the history", decode_history)
        })
        .await
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.read("list executions", move |conn| {
            let query = format!(
                "SELECT {RECORD_COLUMNS} FROM executions WHERE (?1 IS NULL OR workflow = ?1) \
                 AND (?2 IS NULL OR status = ?2) AND (?4 IS NULL OR parent_id = ?4) \
                 AND (?5 IS NULL OR id IN (SELECT execution_id FROM execution_keys WHERE name = ?5 AND value = ?6)) \
                 ORDER BY created_at, id LIMIT ?3"
            );
            let limit = filter.limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
            let status = filter.status.map(|status| status.as_str());
            let mut select = conn.prepare_cached(&query).map_err(sql("list executions"))?;
            let (key, value) = filter.key.clone().unzip();
            let rows = select
                .query_map(params![filter.workflow, status, limit, filter.parent, key, value], |row| {
                    Ok(decode_record(row))
                })
                .map_err(sql("list executions"))?;
            rows.map(|row| row.map_err(sql("list executions"))?).collect()
        })
        .await
    }

    async fn reopen(&self, reopen: Reopen) -> Result<ExecutionRecord, StoreError> {
        self.write("reopen an execution", move |conn| {
            let (current, last_seq) = load_for_commit(conn, &reopen.id)?;
            check_reopen(&current, &reopen)?;
            let next = apply_reopen(&current, &reopen);
            update_record(conn, &current, &next)?;
            append_history(conn, &reopen.id, last_seq, std::slice::from_ref(&reopen.event))?;
            Ok(next)
        })
        .await
    }

    async fn purge(&self, purge: Purge) -> Result<Vec<ExecutionId>, StoreError> {
        check_purge(&purge)?;
        if purge.limit == 0 {
            return Ok(Vec::new());
        }
        self.write("purge executions", move |conn| purge_batch(conn, &purge)).await
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write("pause a workflow", move |conn| {
            let query = if paused {
                "INSERT OR IGNORE INTO paused_workflows (name) VALUES (?1)"
            } else {
                "DELETE FROM paused_workflows WHERE name = ?1"
            };
            conn.execute(query, [&name]).map(drop).map_err(sql("pause a workflow"))
        })
        .await
    }

    async fn paused(&self) -> Result<Vec<String>, StoreError> {
        self.read("read the paused workflows", |conn| {
            let what = "read the paused workflows";
            let mut select =
                conn.prepare_cached("SELECT name FROM paused_workflows ORDER BY name").map_err(sql(what))?;
            let names = select.query_map([], |row| row.get::<_, String>(0)).map_err(sql(what))?;
            names.collect::<Result<Vec<String>, _>>().map_err(sql(what))
        })
        .await
    }

    async fn register_workflow(&self, info: WorkflowInfo) -> Result<(), StoreError> {
        // Every engine start registers its workflows: when this build is already the latest
        // registration, a read is enough and no synced write is made.
        if self.workflow(&info.name, None).await?.as_ref() == Some(&info) {
            return Ok(());
        }
        self.write("register a workflow", move |conn| workflows::register(conn, &info)).await
    }

    async fn workflow(&self, name: &str, fingerprint: Option<&str>) -> Result<Option<WorkflowInfo>, StoreError> {
        if self.version < 2 {
            return Ok(None);
        }
        let (name, fingerprint) = (name.to_owned(), fingerprint.map(str::to_owned));
        self.read("read a workflow's facts", move |conn| workflows::find(conn, &name, fingerprint.as_deref())).await
    }
}

/// Deletes one batch of finished executions (see [`Store::purge`]) and everything that
/// belongs to them, inside the caller's transaction.
fn purge_batch(conn: &Connection, purge: &Purge) -> Result<Vec<ExecutionId>, StoreError> {
    let what = "purge executions";
    let mut select = conn
        .prepare_cached(
            "SELECT id FROM executions WHERE status IN ('succeeded', 'failed', 'cancelled') \
             AND (?1 IS NULL OR status = ?1) AND updated_at < ?2 AND (?3 IS NULL OR workflow = ?3) \
             ORDER BY updated_at, id LIMIT ?4",
        )
        .map_err(sql(what))?;
    let status = purge.status.map(|status| status.as_str());
    let limit = i64::try_from(purge.limit).unwrap_or(i64::MAX);
    let ids = select
        .query_map(params![status, millis(purge.finished_before), purge.workflow, limit], |row| row.get::<_, String>(0))
        .map_err(sql(what))?
        .collect::<Result<Vec<String>, _>>()
        .map_err(sql(what))?;
    for table in ["history", "inbox", "event_keys", "execution_keys"] {
        let mut delete =
            conn.prepare_cached(&format!("DELETE FROM {table} WHERE execution_id = ?1")).map_err(sql(what))?;
        for id in &ids {
            delete.execute([id]).map_err(sql(what))?;
        }
    }
    let mut delete = conn.prepare_cached("DELETE FROM executions WHERE id = ?1").map_err(sql(what))?;
    for id in &ids {
        delete.execute([id]).map_err(sql(what))?;
    }
    Ok(ids)
}

/// Every row of `query` (whose only parameter is the execution id), decoded with `decode`.
fn select_all<T>(
    conn: &Connection,
    query: &str,
    id: &str,
    what: &'static str,
    decode: fn(&str, &rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut select = conn.prepare_cached(query).map_err(sql(what))?;
    let rows = select.query_map([id], |row| Ok(decode(id, row))).map_err(sql(what))?;
    rows.map(|row| row.map_err(sql(what))?).collect()
}

#[cfg(test)]
mod tests;
