//! One store type for every backend, chosen at run time from a URL.

use std::time::Duration;

use super::{
    Commit, Created, ExecutionId, ExecutionRecord, HistoryEvent, InboxEvent, Lease, LeaseToken, ListFilter,
    MemoryStore, NewExecution, Purge, Reopen, Sent, Store, StoreError, WorkflowInfo,
};
#[cfg(feature = "postgres")]
use super::{PostgresOptions, PostgresStore};
#[cfg(feature = "sqlite")]
use super::{SqliteOptions, SqliteStore, Synchronous};
use crate::time::{SharedClock, Timestamp};

/// Any of this crate's stores, so that an application picks its store from configuration
/// without being generic over [`Store`]: `Engine<AnyStore>` is one type whatever the URL says.
///
/// Build it with [`AnyStore::connect`] from a URL, or with `From` from a store you configured
/// yourself. Each method delegates to the store inside, which decides everything; the enum
/// adds a `match` per call and nothing else.
///
/// The variants of the backends that were not built are absent, and the enum is
/// `#[non_exhaustive]`, so a `match` on it needs a `_` arm: another crate in the build may
/// turn on a backend's feature. Match on it to reach what only one backend has, such as
/// `PostgresStore::listen` for a worker's `wake_on`.
///
/// ```
/// use durable_core::prelude::*;
/// use durable_core::Engine;
/// use durable_core::store::AnyStore;
///
/// #[durable]
/// async fn greet(name: String) -> Result<String, WorkflowError> {
///     let greeting = step!("compose", compose(&name).await)?;
///     Ok(greeting)
/// }
///
/// async fn compose(name: &str) -> Result<String, std::io::Error> {
///     Ok(format!("hello, {name}"))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// // In an application: std::env::var("DURABLE_STORE"), a configuration file, ...
/// let url = "memory:";
/// let engine = Engine::builder(AnyStore::connect(url).await?).register(greet).build()?;
/// engine.start(greet, "g-1", "Ada".to_owned()).await?;
/// engine.worker("w").run_until_idle().await?;
/// assert_eq!(engine.result(greet, "g-1").await?, Ok("hello, Ada".to_owned()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyStore {
    /// A [`MemoryStore`]: `memory:` (or `sqlite::memory:`).
    Memory(MemoryStore),
    /// A [`SqliteStore`]: `sqlite:PATH`.
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteStore),
    /// A [`PostgresStore`]: `postgres://...`.
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
}

/// Runs `$call` on the store inside `$self`, bound to `$store`.
macro_rules! each {
    ($self:expr, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Memory($store) => $call,
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite($store) => $call,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($store) => $call,
        }
    };
}

impl AnyStore {
    /// Opens the store that `url` names:
    ///
    /// - `memory:` — a new, empty [`MemoryStore`]: nothing survives the process (tests, demos).
    ///   `sqlite::memory:` is the same store: [`SqliteStore`] keeps a file, so a SQLite
    ///   database in memory would be a slower `MemoryStore`.
    /// - `sqlite:PATH`, `sqlite://PATH` (`sqlite:///abs/path` for an absolute path) — a
    ///   [`SqliteStore`] in file `PATH`, opened as the query's `mode` says, like SQLite's own
    ///   URIs: `mode=rw` (the default) opens an existing store and never creates one
    ///   ([`SqliteStore::open`]), `mode=rwc` creates the file if it is missing
    ///   ([`SqliteStore::open_or_create`]) and `mode=ro` opens it read-only
    ///   ([`SqliteStore::open_read_only`]). `synchronous=full` (the default) or
    ///   `synchronous=normal` sets [`SqliteOptions::synchronous`]. Needs the `sqlite` feature.
    /// - `postgres://...` or `postgresql://...` — a `PostgresStore` connected with
    ///   `PostgresStore::connect_with` to that database; a `schema=NAME` query parameter
    ///   sets `PostgresOptions::schema` (default `durable`), the other parameters are
    ///   PostgreSQL's own. Needs the `postgres` feature.
    ///
    /// To set other options, open the store yourself and convert it: `AnyStore::from(store)`.
    ///
    /// Fails with [`StoreError::Backend`] for a URL of another scheme, a backend this build
    /// lacks (the message names the feature to turn on) or an unknown query parameter, and
    /// as the backend's own constructor fails otherwise. Opening a SQLite file runs on Tokio's
    /// blocking pool, so this must be called inside a Tokio runtime.
    ///
    /// ```
    /// use durable_core::store::AnyStore;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("app.db");
    /// let missing = AnyStore::connect(&format!("sqlite:{}", path.display())).await;
    /// assert!(missing.is_err(), "mode=rw never creates a store");
    /// let store = AnyStore::connect(&format!("sqlite:{}?mode=rwc", path.display())).await?;
    /// assert_eq!(store.kind(), "sqlite");
    ///
    /// let error = AnyStore::connect("mysql://localhost/app").await.unwrap_err();
    /// assert!(error.to_string().contains("unknown store URL scheme `mysql`"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect(url: &str) -> Result<AnyStore, StoreError> {
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(StoreError::backend(format!(
                "a store URL starts with its scheme: {EXPECTED} (got `{}`)",
                shown(url)
            )));
        };
        match scheme {
            "memory" if rest.is_empty() || rest == "//" => Ok(AnyStore::Memory(MemoryStore::new())),
            "sqlite" if rest == ":memory:" => Ok(AnyStore::Memory(MemoryStore::new())),
            "memory" => Err(StoreError::backend("a memory store takes no path or options: write `memory:`")),
            "sqlite" => sqlite(rest).await,
            "postgres" | "postgresql" => postgres(url).await,
            other => Err(StoreError::backend(format!("unknown store URL scheme `{}`: {EXPECTED}", shown(other)))),
        }
    }

    /// Which store this is: `"memory"`, `"sqlite"` or `"postgres"`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyStore::Memory(_) => "memory",
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

const EXPECTED: &str = "expected `sqlite:PATH`, `memory:` or `postgres://...`";

/// At most the first 40 characters of `text`, so that an error never repeats a whole URL
/// (which may hold a password).
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(40).collect();
    if cut.len() < text.len() { format!("{cut}...") } else { cut }
}

/// `key=value` pairs of a URL's query.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query.split('&').filter(|pair| !pair.is_empty()).map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// How a `sqlite:` URL opens its file (its `mode` parameter).
#[cfg(feature = "sqlite")]
#[derive(Clone, Copy)]
enum Mode {
    Open,
    OpenOrCreate,
    ReadOnly,
}

#[cfg(feature = "sqlite")]
async fn sqlite(rest: &str) -> Result<AnyStore, StoreError> {
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(StoreError::backend("a sqlite store URL needs a file: `sqlite:PATH`"));
    }
    let mut options = SqliteOptions::default();
    let mut mode = Mode::Open;
    for (key, value) in query_pairs(query) {
        match (key, value) {
            ("mode", "rw") => mode = Mode::Open,
            ("mode", "rwc") => mode = Mode::OpenOrCreate,
            ("mode", "ro") => mode = Mode::ReadOnly,
            ("synchronous", "full") => options.synchronous = Synchronous::Full,
            ("synchronous", "normal") => options.synchronous = Synchronous::Normal,
            _ => {
                return Err(StoreError::backend(format!(
                    "unknown sqlite store URL parameter `{}`: expected `mode=rw|rwc|ro` or \
                     `synchronous=full|normal`",
                    shown(key)
                )));
            }
        }
    }
    let path = path.to_owned();
    let open = move || match mode {
        Mode::Open => SqliteStore::open_with(path, options),
        Mode::OpenOrCreate => SqliteStore::open_or_create_with(path, options),
        Mode::ReadOnly => SqliteStore::open_read_only(path),
    };
    match tokio::task::spawn_blocking(open).await {
        Ok(opened) => opened.map(AnyStore::Sqlite),
        Err(error) => Err(StoreError::backend(format!("sqlite: cannot open the store: {error}"))),
    }
}

#[cfg(not(feature = "sqlite"))]
async fn sqlite(_: &str) -> Result<AnyStore, StoreError> {
    Err(StoreError::backend(
        "a sqlite store URL needs durable-core built with the `sqlite` feature (it is off in this build)",
    ))
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<AnyStore, StoreError> {
    let mut options = PostgresOptions::default();
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    for (key, value) in query_pairs(query) {
        match key {
            "schema" => options.schema = value.to_owned(),
            _ => kept.push(if value.is_empty() { key.to_owned() } else { format!("{key}={value}") }),
        }
    }
    let url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    PostgresStore::connect_with(&url, options).await.map(AnyStore::Postgres)
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_: &str) -> Result<AnyStore, StoreError> {
    Err(StoreError::backend(
        "a postgres store URL needs durable-core built with the `postgres` feature (it is off in this build)",
    ))
}

impl From<MemoryStore> for AnyStore {
    fn from(store: MemoryStore) -> Self {
        AnyStore::Memory(store)
    }
}

#[cfg(feature = "sqlite")]
impl From<SqliteStore> for AnyStore {
    fn from(store: SqliteStore) -> Self {
        AnyStore::Sqlite(store)
    }
}

#[cfg(feature = "postgres")]
impl From<PostgresStore> for AnyStore {
    fn from(store: PostgresStore) -> Self {
        AnyStore::Postgres(store)
    }
}

impl Store for AnyStore {
    async fn create(&self, new: NewExecution) -> Result<Created, StoreError> {
        each!(self, store => store.create(new).await)
    }

    async fn create_batch(&self, news: Vec<NewExecution>) -> Result<Vec<Created>, StoreError> {
        each!(self, store => store.create_batch(news).await)
    }

    async fn load(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        each!(self, store => store.load(id).await)
    }

    async fn commit(&self, commit: Commit) -> Result<ExecutionRecord, StoreError> {
        each!(self, store => store.commit(commit).await)
    }

    async fn commit_batch(&self, commits: Vec<Commit>) -> Result<Vec<Result<ExecutionRecord, StoreError>>, StoreError> {
        each!(self, store => store.commit_batch(commits).await)
    }

    async fn claim_due(
        &self,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        each!(self, store => store.claim_due(owner, clock, lease, limit).await)
    }

    async fn claim_due_for(
        &self,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
        limit: usize,
        layouts: &[(String, String)],
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        each!(self, store => store.claim_due_for(owner, clock, lease, limit, layouts).await)
    }

    async fn claim(
        &self,
        id: &str,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        each!(self, store => store.claim(id, owner, clock, lease).await)
    }

    async fn renew_lease(
        &self,
        id: &str,
        token: &LeaseToken,
        clock: &SharedClock,
        lease: Duration,
    ) -> Result<Lease, StoreError> {
        each!(self, store => store.renew_lease(id, token, clock, lease).await)
    }

    async fn release_lease(&self, id: &str, token: &LeaseToken) -> Result<(), StoreError> {
        each!(self, store => store.release_lease(id, token).await)
    }

    async fn send_event(&self, id: &str, name: &str, payload: &str, now: Timestamp) -> Result<u64, StoreError> {
        each!(self, store => store.send_event(id, name, payload, now).await)
    }

    async fn send_keyed_event(
        &self,
        id: &str,
        name: &str,
        payload: &str,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<Sent, StoreError> {
        each!(self, store => store.send_keyed_event(id, name, payload, key, now).await)
    }

    async fn inbox(&self, id: &str) -> Result<Vec<InboxEvent>, StoreError> {
        each!(self, store => store.inbox(id).await)
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        each!(self, store => store.history(id).await)
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<ExecutionRecord>, StoreError> {
        each!(self, store => store.list(filter).await)
    }

    async fn reopen(&self, reopen: Reopen) -> Result<ExecutionRecord, StoreError> {
        each!(self, store => store.reopen(reopen).await)
    }

    async fn purge(&self, purge: Purge) -> Result<Vec<ExecutionId>, StoreError> {
        each!(self, store => store.purge(purge).await)
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<(), StoreError> {
        each!(self, store => store.set_paused(name, paused).await)
    }

    async fn paused(&self) -> Result<Vec<String>, StoreError> {
        each!(self, store => store.paused().await)
    }

    async fn register_workflow(&self, info: WorkflowInfo) -> Result<(), StoreError> {
        each!(self, store => store.register_workflow(info).await)
    }

    async fn workflow(&self, name: &str, fingerprint: Option<&str>) -> Result<Option<WorkflowInfo>, StoreError> {
        each!(self, store => store.workflow(name, fingerprint).await)
    }
}

#[cfg(test)]
mod tests;
