//! A PostgreSQL server for the tests: found once, a fresh schema per test, dropped afterwards.
//!
//! The server is `DURABLE_PG_URL`, or `postgres://postgres@127.0.0.1:5432/test`. Without the
//! variable, an unreachable server skips the tests with a message on the terminal (written past
//! the test harness's capture, so it shows even for passing tests); with it, an unreachable
//! server fails them: whoever set the variable expects the tests to run.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::OnceCell;
use tokio_postgres::{Client, NoTls};

use crate::store::{PostgresOptions, PostgresStore};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server's url, or why there is none.
static SERVER: OnceCell<Result<String, String>> = OnceCell::const_new();

/// The url of the test server, or `None` (after saying why) if the tests must be skipped.
pub(super) async fn server() -> Option<String> {
    let verdict = SERVER.get_or_init(probe).await;
    match verdict {
        Ok(url) => Some(url.clone()),
        Err(why) => {
            static SAID: AtomicBool = AtomicBool::new(false);
            if !SAID.swap(true, Ordering::SeqCst) {
                let _ = writeln!(std::io::stderr(), "skipping PostgreSQL tests: {why}");
            }
            eprintln!("skipping PostgreSQL tests: {why}");
            None
        }
    }
}

async fn probe() -> Result<String, String> {
    let (url, required) = match std::env::var("DURABLE_PG_URL") {
        Ok(url) => (url, true),
        Err(_) => (DEFAULT_URL.to_owned(), false),
    };
    let connected = tokio::time::timeout(Duration::from_secs(5), tokio_postgres::connect(&url, NoTls)).await;
    let why = match connected {
        Ok(Ok((client, connection))) => {
            tokio::spawn(connection);
            drop_abandoned_schemas(&client).await;
            return Ok(url);
        }
        Ok(Err(error)) => format!("cannot connect to {url}: {}", super::super::describe(&error)),
        Err(_) => format!("cannot connect to {url}: no answer within 5 seconds"),
    };
    if required {
        panic!("DURABLE_PG_URL is set, but {why}");
    }
    Err(format!("{why} (set DURABLE_PG_URL to choose a server)"))
}

/// Drops the schemas left behind by test processes of this machine that died before their
/// guards ran (their names carry the pid, and `/proc/<pid>` is gone).
async fn drop_abandoned_schemas(client: &Client) {
    let query = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'durable\\_test\\_%'";
    let Ok(rows) = client.query(query, &[]).await else { return };
    for row in rows {
        let schema: String = row.get(0);
        let pid = schema.strip_prefix("durable_test_").and_then(|rest| rest.split('_').next());
        let dead = pid.is_some_and(|pid| !std::path::Path::new("/proc").join(pid).exists());
        if dead && std::path::Path::new("/proc/self").exists() {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
        }
    }
}

/// A schema name no other test (of this run or another) uses.
pub(super) fn unique_schema() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() % 1_000_000_000_000;
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("durable_test_{}_{nanos}_{n}", std::process::id())
}

/// Options for a test store in `schema`; its connections are named after the schema, so that a
/// test can find (and cut) exactly its own.
pub(super) fn options(schema: &str) -> PostgresOptions {
    PostgresOptions {
        schema: schema.to_owned(),
        pool_size: 4,
        application_name: schema.to_owned(),
        ..PostgresOptions::default()
    }
}

/// Drops its schema (and everything in it) when dropped.
pub(super) struct SchemaGuard {
    url: String,
    schema: String,
}

impl SchemaGuard {
    pub(super) fn new(url: &str, schema: &str) -> Self {
        SchemaGuard { url: url.to_owned(), schema: schema.to_owned() }
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread with a
        // runtime of its own, and wait for it so the schema is gone when the test ends.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let admin = admin(&url).await;
                admin.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await
            })?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        });
        match dropped.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("cannot drop test schema {}: {error}", self.schema),
            Err(_) => eprintln!("cannot drop test schema {}: the thread panicked", self.schema),
        }
    }
}

/// A store in a fresh schema and the guard that drops it, or `None` if there is no server.
pub(super) async fn fresh() -> Option<(PostgresStore, SchemaGuard)> {
    let url = server().await?;
    let schema = unique_schema();
    let guard = SchemaGuard::new(&url, &schema);
    let store = PostgresStore::connect_with(&url, options(&schema)).await.expect("connect to the test server");
    Some((store, guard))
}

/// A plain connection for the test itself (named `durable_test_admin`), to inspect or damage
/// what a store wrote.
pub(super) async fn admin(url: &str) -> Client {
    let mut config: tokio_postgres::Config = url.parse().expect("a valid url");
    config.application_name("durable_test_admin");
    let (client, connection) = config.connect(NoTls).await.expect("admin connection");
    tokio::spawn(connection);
    client
}
