//! Many workers, one PostgreSQL database: the store that scales past one machine.
//!
//! The database is the coordinator. Every worker process connects to it with its own
//! [`PostgresStore`] (a pool of connections); [`Store::claim_due`] hands each due execution to
//! one worker at a time with `SELECT ... FOR UPDATE SKIP LOCKED` under a lease, so any number of
//! workers share the work, and a worker that dies loses its leases when they expire.
//!
//! New work is announced with `NOTIFY` on the channel `<schema>_work` (`durable_work` for the
//! default schema) when a create, a commit, an event or a released lease makes an execution due;
//! [`PostgresStore::listen`] turns those notifications into wake-ups so that idle workers need
//! not poll often.

use std::error::Error as _;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, NoTls, Row};

use self::listen::subscribe;
use self::rows::{Locked, decode_inbox, decode_inbox_slot, decode_locked, decode_record, decode_status, int, millis};
use self::schema::{Queries, SCHEMA_VERSION, check_schema_name, migrate, recorded_version};
use super::{
    Commit, Created, ExecutionId, ExecutionRecord, HistoryEvent, InboxEvent, Lease, LeaseToken, ListFilter,
    NewExecution, Notice, Purge, Reopen, Sent, Status, Store, StoreError, WorkflowInfo, check_purge, check_release,
    claimable, new_record,
};
use crate::time::{SharedClock, Timestamp};

mod batch;
mod listen;
mod rows;
mod schema;

pub use self::listen::WorkListener;

/// How to connect a [`PostgresStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The schema that holds the store's tables, created if missing (except by
    /// [`PostgresStore::connect_read_only`], which never creates anything): lowercase letters, digits
    /// and underscores. Stores with different schemas in one database never see each other.
    /// Default: `durable`.
    pub schema: String,
    /// The most connections the store's pool opens. Default: 8.
    pub pool_size: usize,
    /// How long opening one connection may take. Default: 10 seconds.
    pub connect_timeout: Duration,
    /// How long a call waits for a free connection of the pool before failing with
    /// [`StoreError::Unavailable`]. Default: 30 seconds.
    pub wait_timeout: Duration,
    /// The `application_name` the store's connections show in `pg_stat_activity`.
    /// Default: `durable`.
    pub application_name: String,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: "durable".to_owned(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(30),
            application_name: "durable".to_owned(),
        }
    }
}

/// A [`Store`] in a PostgreSQL database, shared by any number of workers. Clones share one
/// connection pool.
///
/// Connections come from a [deadpool](deadpool_postgres) pool; each method takes one for the
/// length of a transaction. A connection that the server closed (a restart, a failover,
/// `pg_terminate_backend`) is noticed at the first statement of the next call, which is only a
/// read or a `BEGIN` and so safe to repeat: the store drops that connection and retries on a
/// fresh one, so callers see no error. A connection lost in the middle of a write fails the call
/// with [`StoreError::Unavailable`]; nothing was changed, except when the connection died during
/// the `COMMIT` itself, when the outcome is unknown (as with any client-server database), and
/// retrying a commit then fails with [`StoreError::Conflict`] if the first attempt applied.
///
/// TLS is not supported yet: use a local or otherwise trusted network.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    queries: Queries,
    schema: String,
    channel: String,
    config: Config,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.inner.pool.status();
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.schema)
            .field("pool_size", &status.size)
            .field("idle", &status.available)
            .finish_non_exhaustive()
    }
}

/// The message of a PostgreSQL client error, with the server's own message if there is one.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.source() {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}

/// Whether `error` says the connection is gone (closed, reset, or terminated by the server).
fn is_dead(error: &tokio_postgres::Error) -> bool {
    let io = std::iter::successors(error.source(), |e| (*e).source()).any(|e| e.is::<std::io::Error>());
    let shutdown = error.code().is_some_and(|code| code.code().starts_with("57P"));
    error.is_closed() || io || shutdown
}

/// Whether `error` may go away if the call is retried later: a lost or refused connection, a
/// server that is starting or shutting down or out of connections, a deadlock, a lock timeout.
fn is_transient(error: &tokio_postgres::Error) -> bool {
    let code = error.code().map(|code| code.code()).unwrap_or("");
    let class = code.get(..2).unwrap_or("");
    is_dead(error) || matches!(class, "08" | "53" | "57") || matches!(code, "40001" | "40P01" | "55P03" | "57014")
}

/// A [`StoreError`] for a failed PostgreSQL call while trying to `what`.
fn pg(what: impl fmt::Display) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |error| {
        let message = format!("postgres: cannot {what}: {}", describe(&error));
        match is_transient(&error) {
            true => StoreError::Unavailable(message.into()),
            false => StoreError::Backend(message.into()),
        }
    }
}

/// A [`StoreError`] for a connection the pool could not hand out while trying to `what`.
fn pool_error(what: impl fmt::Display) -> impl FnOnce(PoolError) -> StoreError {
    move |error| match error {
        PoolError::Backend(error) => pg(format_args!("connect to the database to {what}"))(error),
        PoolError::Timeout(_) => {
            StoreError::Unavailable(format!("postgres: cannot {what}: no free connection in time ({error})").into())
        }
        error => StoreError::backend(format!("postgres: cannot {what}: {error}")),
    }
}

/// Drops a pooled connection instead of returning it to the pool, which closes it.
fn discard(client: Object) {
    drop(Object::take(client));
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database` or
    /// `host=... user=... dbname=...`) with [`PostgresOptions::default`], creating or migrating
    /// the `durable` schema. Must be called inside a Tokio runtime.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects to the database at `url` with `options`; see [`PostgresStore::connect`].
    ///
    /// Fails with [`StoreError::Unavailable`] if the server cannot be reached, and with
    /// [`StoreError::Backend`] for an invalid url or schema name, a refused login, missing
    /// privileges to create the schema, or a schema newer than this build.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let (pool, config) = Self::pool(url, &options, false)?;
        let mut client = pool.get().await.map_err(pool_error("open the store"))?;
        migrate(&mut client, &options.schema).await?;
        Ok(Self::with_pool(pool, config, options))
    }

    /// Connects to the existing store in `options.schema` of the database at `url` for reading
    /// only (for tools such as the command line): it never creates or migrates anything, and
    /// every transaction on its connections is read-only (`default_transaction_read_only`), so
    /// every write fails with [`StoreError::Backend`] and the database never changes.
    ///
    /// Fails with [`StoreError::Backend`] if the schema does not exist or holds no durable
    /// store, or if its version is not the one this build reads (older: connect a worker of
    /// this version with [`PostgresStore::connect`] to migrate it; newer: use a newer build),
    /// and as [`PostgresStore::connect_with`] otherwise. Must be called inside a Tokio runtime.
    pub async fn connect_read_only(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let (pool, config) = Self::pool(url, &options, true)?;
        let client = pool.get().await.map_err(pool_error("open the store"))?;
        let schema = &options.schema;
        match recorded_version(&client, schema).await? {
            Some(version) if version == SCHEMA_VERSION => {}
            None => {
                return Err(StoreError::backend(format!(
                    "postgres: there is no durable store in schema `{schema}` (the schema or its tables do not \
                     exist); nothing was created"
                )));
            }
            Some(version) => {
                return Err(StoreError::backend(format!(
                    "postgres: the store in schema `{schema}` has version {version}, older than this build reads \
                     ({SCHEMA_VERSION}): connect a worker of this version to migrate it"
                )));
            }
        }
        drop(client);
        Ok(Self::with_pool(pool, config, options))
    }

    /// The connection pool for `options`; with `read_only`, every transaction is read-only.
    fn pool(url: &str, options: &PostgresOptions, read_only: bool) -> Result<(Pool, Config), StoreError> {
        check_schema_name(&options.schema)?;
        let mut config: Config =
            url.parse().map_err(|e| StoreError::backend(format!("postgres: invalid database url: {e}")))?;
        if read_only {
            config.options("-c default_transaction_read_only=on");
        }
        config
            .connect_timeout(options.connect_timeout)
            .application_name(&options.application_name)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
        let manager = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = Manager::from_config(config.clone(), NoTls, manager);
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::backend(format!("postgres: cannot create the connection pool: {e}")))?;
        Ok((pool, config))
    }

    fn with_pool(pool: Pool, config: Config, options: PostgresOptions) -> Self {
        let inner = Inner {
            pool,
            queries: Queries::new(&options.schema),
            channel: format!("{}_work", options.schema),
            schema: options.schema,
            config,
        };
        PostgresStore { inner: Arc::new(inner) }
    }

    /// The schema that holds this store's tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// Listens for new work on a dedicated connection (outside the pool).
    ///
    /// The returned [`WorkListener`] wakes its owner after any create, commit, event or released
    /// lease, by any process on this schema, that made an execution due; the owner then calls
    /// [`Store::claim_due`]. It reconnects by itself if its connection is lost (and wakes its
    /// owner once it is back, since notifications sent meanwhile were missed). Fails with
    /// [`StoreError::Unavailable`] if the server cannot be reached now.
    pub async fn listen(&self) -> Result<WorkListener, StoreError> {
        let subscription = subscribe(&self.inner.config, &self.inner.channel).await?;
        Ok(WorkListener::spawn(subscription, self.inner.config.clone(), self.inner.channel.clone()))
    }

    /// How many times a call retries on a fresh connection when it finds a pooled one dead:
    /// every pooled connection may have been cut at once.
    fn retries(&self) -> usize {
        self.inner.pool.status().max_size + 1
    }

    /// Runs one statement that is safe to repeat (a read, or a write that sets values rather than
    /// adds to them), retried on a fresh connection if the pooled one is dead.
    async fn retrying(&self, what: &str, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let mut attempts = 0;
        loop {
            let client = self.inner.pool.get().await.map_err(pool_error(what))?;
            let result = match client.prepare_cached(sql).await {
                Ok(statement) => client.query(&statement, params).await,
                Err(error) => Err(error),
            };
            match result {
                Err(error) if is_dead(&error) => {
                    discard(client);
                    attempts += 1;
                    if attempts >= self.retries() {
                        return Err(pg(what)(error));
                    }
                    tracing::debug!(error = %describe(&error), "postgres: retrying on a fresh connection");
                }
                result => return result.map_err(pg(what)),
            }
        }
    }

    /// Starts a transaction on a pooled connection, retried on a fresh connection if the pooled
    /// one is dead (nothing was sent but `BEGIN`, so that is safe).
    async fn begin(&self, what: &str) -> Result<Tx, StoreError> {
        let mut attempts = 0;
        loop {
            let client = self.inner.pool.get().await.map_err(pool_error(what))?;
            // Wrapped first: if the caller stops awaiting while `BEGIN` is in flight, the
            // connection is closed rather than returned to the pool inside a transaction.
            let tx = Tx { client: Some(client) };
            match tx.client()?.batch_execute("BEGIN").await {
                Ok(()) => return Ok(tx),
                Err(error) => {
                    drop(tx);
                    attempts += 1;
                    if !is_dead(&error) || attempts >= self.retries() {
                        return Err(pg(what)(error));
                    }
                    tracing::debug!(error = %describe(&error), "postgres: retrying on a fresh connection");
                }
            }
        }
    }
}

/// A transaction on a pooled connection.
///
/// End it with [`Tx::finish`]. Dropped without it (an error on the way, or a caller that stopped
/// awaiting), its connection is closed rather than returned to the pool mid-transaction, and the
/// server rolls the transaction back.
struct Tx {
    client: Option<Object>,
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            discard(client);
        }
    }
}

impl Tx {
    fn client(&self) -> Result<&Object, StoreError> {
        self.client.as_ref().ok_or_else(|| StoreError::backend("postgres: the transaction has ended"))
    }

    /// Runs `sql` (prepared once per connection) and returns its rows.
    async fn query(&self, what: &str, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let client = self.client()?;
        let statement = client.prepare_cached(sql).await.map_err(pg(what))?;
        client.query(&statement, params).await.map_err(pg(what))
    }

    /// Runs `sql` (prepared once per connection) and returns how many rows it changed.
    async fn execute(&self, what: &str, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self.client()?;
        let statement = client.prepare_cached(sql).await.map_err(pg(what))?;
        client.execute(&statement, params).await.map_err(pg(what))
    }

    /// Commits if `result` is `Ok`, rolls back otherwise, and returns `result`.
    async fn finish<T>(mut self, what: &str, result: Result<T, StoreError>) -> Result<T, StoreError> {
        let client = self.client.take().ok_or_else(|| StoreError::backend("postgres: the transaction has ended"))?;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        match client.batch_execute(end).await {
            Ok(()) => result,
            Err(error) => {
                discard(client);
                result.and(Err(pg(format_args!("{what} (commit)"))(error)))
            }
        }
    }
}

impl PostgresStore {
    /// Sends a notification of new work about execution `id` when the transaction commits.
    async fn notify(&self, tx: &Tx, id: &str) -> Result<(), StoreError> {
        tx.query("announce new work", &self.inner.queries.notify, &[&self.inner.channel, &id]).await.map(drop)
    }

    /// Inserts execution `new` and its first history event unless its id exists; returns
    /// whether it was inserted.
    async fn insert(&self, tx: &Tx, new: &NewExecution, started: &HistoryEvent) -> Result<bool, StoreError> {
        let what = "create an execution";
        let q = &self.inner.queries;
        let params: [&(dyn ToSql + Sync); 6] =
            [&new.id, &new.workflow, &new.input, &millis(new.now), &new.parent, &new.parent_event];
        if tx.execute(what, &q.insert, &params).await? == 0 {
            return Ok(false);
        }
        let mut history = rows::HistoryRows::default();
        history.push(&new.id, 1, started);
        tx.execute(what, &q.append_history, &history.params()).await?;
        if !new.keys.is_empty() {
            let (names, values): (Vec<&str>, Vec<&str>) =
                new.keys.iter().map(|(name, value)| (name.as_str(), value.as_str())).unzip();
            tx.execute(what, &q.insert_keys, &[&new.id, &names, &values]).await?;
        }
        self.notify(tx, &new.id).await?;
        Ok(true)
    }

    /// Creates `new` in `tx`; see [`Store::create`].
    async fn create_in(&self, tx: &Tx, new: &NewExecution) -> Result<Created, StoreError> {
        let (record, started) = new_record(new);
        match self.insert(tx, new, &started).await? {
            true => Ok(Created::New(record)),
            false => self.lock(tx, "create an execution", &new.id).await.map(Created::Existing),
        }
    }

    /// Locks execution `id` and returns its record, or [`StoreError::NotFound`].
    async fn lock(&self, tx: &Tx, what: &str, id: &str) -> Result<ExecutionRecord, StoreError> {
        let rows = tx.query(what, &self.inner.queries.lock, &[&id]).await?;
        rows.first().map(decode_record).unwrap_or_else(|| Err(StoreError::NotFound(id.to_owned())))
    }

    /// Why `send_event` could not take an inbox seq for execution `id`.
    async fn refuse_event(&self, tx: &Tx, id: &str) -> StoreError {
        let rows = match tx.query("send an event", &self.inner.queries.status, &[&id]).await {
            Ok(rows) => rows,
            Err(error) => return error,
        };
        match rows.first().map(|row| decode_status(id, row)) {
            None => StoreError::NotFound(id.to_owned()),
            Some(Ok(_)) => StoreError::Terminal(id.to_owned()),
            Some(Err(error)) => error,
        }
    }

    /// Sends `notice` in `tx`, dropping it if its execution is unknown or has finished.
    async fn deliver(&self, tx: &Tx, notice: &Notice, now: Timestamp) -> Result<(), StoreError> {
        match self.send_event_in(tx, &notice.to, &notice.name, &notice.payload, notice.key.as_deref(), now).await {
            Ok(_) | Err(StoreError::NotFound(_) | StoreError::Terminal(_)) => Ok(()),
            Err(error @ (StoreError::Backend(_) | StoreError::Unavailable(_))) => Err(error),
            Err(error) => {
                tracing::error!(%error, to = %notice.to, "a notice could not be delivered");
                Ok(())
            }
        }
    }

    async fn send_event_in(
        &self,
        tx: &Tx,
        id: &str,
        name: &str,
        payload: &str,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<Sent, StoreError> {
        let what = "send an event";
        let q = &self.inner.queries;
        if let Some(key) = key {
            // The execution's row lock first: two sends with one key are serialized, and the
            // second sees the first's key.
            let record = self.lock(tx, what, id).await?;
            if record.status.is_terminal() {
                return Err(StoreError::Terminal(id.to_owned()));
            }
            let found = tx.query(what, &q.event_key, &[&id, &key]).await?;
            if let Some(row) = found.first() {
                let first: i64 = row.try_get(0).map_err(pg(what))?;
                return Ok(Sent::Duplicate(u64::try_from(first).unwrap_or(0)));
            }
        }
        let rows = tx.query(what, &q.next_inbox_seq, &[&id]).await?;
        let Some(row) = rows.first() else {
            return Err(self.refuse_event(tx, id).await);
        };
        let (seq, status, waiting_for) = decode_inbox_slot(id, row)?;
        if let Some(key) = key {
            tx.execute(what, &q.insert_event_key, &[&id, &key, &int(seq)]).await?;
        }
        tx.execute(what, &q.insert_inbox, &[&id, &int(seq), &name, &payload, &millis(now)]).await?;
        if status == Status::Suspended && waiting_for.as_deref() == Some(name) {
            self.notify(tx, id).await?;
        }
        Ok(Sent::New(seq))
    }
}

impl Store for PostgresStore {
    async fn create(&self, new: NewExecution) -> Result<Created, StoreError> {
        let what = "create an execution";
        let tx = self.begin(what).await?;
        let result = self.create_in(&tx, &new).await;
        tx.finish(what, result).await
    }

    async fn create_batch(&self, news: Vec<NewExecution>) -> Result<Vec<Created>, StoreError> {
        if news.is_empty() {
            return Ok(Vec::new());
        }
        let what = "create executions";
        let tx = self.begin(what).await?;
        let result = async {
            let mut created = Vec::with_capacity(news.len());
            for new in &news {
                created.push(self.create_in(&tx, new).await?);
            }
            Ok(created)
        }
        .await;
        tx.finish(what, result).await
    }

    async fn load(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let rows = self.retrying("load an execution", &self.inner.queries.load, &[&id]).await?;
        rows.first().map(decode_record).transpose()
    }

    async fn commit_batch(&self, commits: Vec<Commit>) -> Result<Vec<Result<ExecutionRecord, StoreError>>, StoreError> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.begin("commit").await?;
        let result = self.commit_all(&tx, &commits).await;
        tx.finish("commit", result).await
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
        let what = "claim due executions";
        let tx = self.begin(what).await?;
        let result = self.claim_due_in(&tx, owner, clock, lease, limit, None).await;
        tx.finish(what, result).await
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
        let what = "claim due executions";
        let tx = self.begin(what).await?;
        let result = self.claim_due_in(&tx, owner, clock, lease, limit, Some(layouts)).await;
        tx.finish(what, result).await
    }

    async fn claim(
        &self,
        id: &str,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let what = "claim an execution";
        let tx = self.begin(what).await?;
        let result = async {
            let record = self.lock(&tx, what, id).await?;
            // Read once the row is locked: the lease runs from when it is granted.
            let now = clock.now();
            if !claimable(&record, now) {
                return Ok(None);
            }
            if !tx.query(what, &self.inner.queries.is_paused, &[&record.workflow]).await?.is_empty() {
                return Ok(None);
            }
            let mut claimed = self.lease_locked(&tx, vec![record], owner, now.saturating_add(lease)).await?;
            Ok(claimed.pop())
        }
        .await;
        tx.finish(what, result).await
    }

    async fn renew_lease(
        &self,
        id: &str,
        token: &LeaseToken,
        clock: &SharedClock,
        lease: Duration,
    ) -> Result<Lease, StoreError> {
        let what = "renew a lease";
        let until = clock.now().saturating_add(lease);
        let params: [&(dyn ToSql + Sync); 4] = [&id, &token.owner, &int(token.epoch), &millis(until)];
        if !self.retrying(what, &self.inner.queries.renew, &params).await?.is_empty() {
            return Ok(Lease { owner: token.owner.clone(), epoch: token.epoch, until });
        }
        // Nothing changed: find out why (a missing execution, or another claim).
        let rows = self.retrying(what, &self.inner.queries.lease_owner, &[&id]).await?;
        match rows.first() {
            None => Err(StoreError::NotFound(id.to_owned())),
            Some(_) => Err(StoreError::LeaseLost { id: id.to_owned(), owner: token.owner.clone() }),
        }
    }

    async fn release_lease(&self, id: &str, token: &LeaseToken) -> Result<(), StoreError> {
        let what = "release a lease";
        let tx = self.begin(what).await?;
        let result = async {
            let params: [&(dyn ToSql + Sync); 3] = [&id, &token.owner, &int(token.epoch)];
            let rows = tx.query(what, &self.inner.queries.release, &params).await?;
            let Some(row) = rows.first() else {
                let current = self.lock(&tx, what, id).await?;
                return check_release(&current, token);
            };
            if decode_status(id, row)? == Status::Running {
                self.notify(&tx, id).await?;
            }
            Ok(())
        }
        .await;
        tx.finish(what, result).await
    }

    async fn send_keyed_event(
        &self,
        id: &str,
        name: &str,
        payload: &str,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<Sent, StoreError> {
        let tx = self.begin("send an event").await?;
        let result = self.send_event_in(&tx, id, name, payload, key, now).await;
        tx.finish("send an event", result).await
    }

    async fn inbox(&self, id: &str) -> Result<Vec<InboxEvent>, StoreError> {
        let rows = self.retrying("read the inbox", &self.inner.queries.inbox, &[&id]).await?;
        joined(id, &rows, decode_inbox)
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        let rows = self.retrying("read the history", &self.inner.queries.history, &[&id]).await?;
        joined(id, &rows, rows::decode_history)
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<ExecutionRecord>, StoreError> {
        let status = filter.status.map(Status::as_str);
        let limit = filter.limit.map(|n| int(n as u64));
        let (key, value) = filter.key.clone().unzip();
        let params: [&(dyn ToSql + Sync); 6] = [&filter.workflow, &status, &limit, &filter.parent, &key, &value];
        let rows = self.retrying("list executions", &self.inner.queries.list, &params).await?;
        rows.iter().map(decode_record).collect()
    }

    async fn reopen(&self, reopen: Reopen) -> Result<ExecutionRecord, StoreError> {
        let what = "reopen an execution";
        let tx = self.begin(what).await?;
        let result = self.reopen_in(&tx, &reopen).await;
        tx.finish(what, result).await
    }

    async fn purge(&self, purge: Purge) -> Result<Vec<ExecutionId>, StoreError> {
        check_purge(&purge)?;
        if purge.limit == 0 {
            return Ok(Vec::new());
        }
        let what = "purge executions";
        let tx = self.begin(what).await?;
        let result = self.purge_in(&tx, &purge).await;
        tx.finish(what, result).await
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<(), StoreError> {
        let query = if paused { &self.inner.queries.pause } else { &self.inner.queries.resume };
        self.retrying("pause a workflow", query, &[&name]).await.map(drop)
    }

    async fn paused(&self) -> Result<Vec<String>, StoreError> {
        let rows = self.retrying("read the paused workflows", &self.inner.queries.paused, &[]).await?;
        rows.iter().map(|row| row.try_get::<_, String>(0).map_err(pg("read the paused workflows"))).collect()
    }

    async fn register_workflow(&self, info: WorkflowInfo) -> Result<(), StoreError> {
        let params: [&(dyn ToSql + Sync); 3] = [&info.name, &info.fingerprint, &info.facts_json];
        self.retrying("register a workflow", &self.inner.queries.register_workflow, &params).await.map(drop)
    }

    async fn workflow(&self, name: &str, fingerprint: Option<&str>) -> Result<Option<WorkflowInfo>, StoreError> {
        let rows =
            self.retrying("read a workflow's facts", &self.inner.queries.workflow, &[&name, &fingerprint]).await?;
        rows.first().map(rows::decode_workflow).transpose()
    }
}

/// Decodes the rows of a `executions LEFT JOIN <table>` query on execution `id`: none means
/// there is no such execution, and a row whose first column is null is an execution with no
/// entries.
fn joined<T>(id: &str, rows: &[Row], decode: fn(&str, &Row) -> Result<T, StoreError>) -> Result<Vec<T>, StoreError> {
    if rows.is_empty() {
        return Err(StoreError::NotFound(id.to_owned()));
    }
    rows.iter().filter(|row| !matches!(row.try_get::<_, Option<i64>>(0), Ok(None))).map(|row| decode(id, row)).collect()
}

impl PostgresStore {
    /// Claims up to `limit` due executions in `tx`; see [`Store::claim_due`].
    ///
    /// The `SELECT ... FOR UPDATE SKIP LOCKED` locks the rows it returns and passes over rows
    /// another claimer holds locked, so concurrent claimers never wait for each other and never
    /// get the same row; a row another claimer leased and committed meanwhile is re-checked
    /// against the lease condition and left out. A row that cannot be decoded is skipped and
    /// reported (and not leased), so one corrupt execution does not stop all the others.
    async fn claim_due_in(
        &self,
        tx: &Tx,
        owner: &str,
        clock: &SharedClock,
        lease: Duration,
        limit: usize,
        layouts: Option<&[(String, String)]>,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let what = "claim due executions";
        let q = &self.inner.queries;
        let (now, limit) = (millis(clock.now()), int(limit as u64));
        let rows = match layouts {
            None => tx.query(what, &q.claim_due, &[&now, &limit]).await?,
            Some(layouts) => {
                let (names, prints): (Vec<&str>, Vec<&str>) =
                    layouts.iter().map(|(name, layout)| (name.as_str(), layout.as_str())).unzip();
                tx.query(what, &q.claim_due_for, &[&now, &limit, &names, &prints]).await?
            }
        };
        let mut due = Vec::with_capacity(rows.len());
        for row in &rows {
            match decode_record(row) {
                Ok(record) => due.push(record),
                Err(error) => tracing::error!(%error, "skipping an execution that cannot be claimed"),
            }
        }
        // Read once the rows are locked: a claim that waited for a lock still gets a whole lease.
        let until = clock.now().saturating_add(lease);
        self.lease_locked(tx, due, owner, until).await
    }

    /// Leases the locked executions `records` to `owner` until `until`, each under its next
    /// epoch, and returns them with their lease.
    async fn lease_locked(
        &self,
        tx: &Tx,
        mut records: Vec<ExecutionRecord>,
        owner: &str,
        until: Timestamp,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        if records.is_empty() {
            return Ok(records);
        }
        let what = "lease executions";
        let ids: Vec<&str> = records.iter().map(|record| record.id.as_str()).collect();
        let rows = tx.query(what, &self.inner.queries.lease_many, &[&ids, &owner, &millis(until)]).await?;
        let mut epochs = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let (id, epoch): (String, i64) = (row.try_get(0).map_err(pg(what))?, row.try_get(1).map_err(pg(what))?);
            epochs.insert(id, u64::try_from(epoch).unwrap_or(0));
        }
        for record in &mut records {
            let epoch = epochs.get(&record.id).copied().unwrap_or(0);
            record.lease = Some(Lease { owner: owner.to_owned(), epoch, until });
        }
        Ok(records)
    }

    /// Deletes one batch of finished executions in `tx`; see [`Store::purge`].
    async fn purge_in(&self, tx: &Tx, purge: &Purge) -> Result<Vec<ExecutionId>, StoreError> {
        let what = "purge executions";
        let q = &self.inner.queries;
        let status = purge.status.map(Status::as_str);
        let limit = int(purge.limit as u64);
        let params: [&(dyn ToSql + Sync); 4] = [&status, &millis(purge.finished_before), &purge.workflow, &limit];
        let rows = tx.query(what, &q.purge_select, &params).await?;
        let ids =
            rows.iter().map(|row| row.try_get::<_, String>(0)).collect::<Result<Vec<_>, _>>().map_err(pg(what))?;
        if ids.is_empty() {
            return Ok(ids);
        }
        // The rows that name an execution first: they refer to it.
        for query in [&q.purge_history, &q.purge_inbox, &q.purge_keys, &q.purge_business_keys, &q.purge_executions] {
            tx.execute(what, query, &[&ids]).await?;
        }
        Ok(ids)
    }

    /// Locks the executions of `commits` (in id order, so that concurrent batches cannot
    /// deadlock) and decodes them; an execution missing from the result does not exist.
    async fn lock_many(
        &self,
        tx: &Tx,
        commits: &[Commit],
    ) -> Result<Vec<(String, Result<Locked, StoreError>)>, StoreError> {
        let mut ids: Vec<&str> = commits.iter().map(|commit| commit.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let rows = tx.query("commit", &self.inner.queries.lock_many, &[&ids]).await?;
        Ok(rows.iter().filter_map(decode_locked).collect())
    }
}

#[cfg(test)]
mod tests;
