//! A PostgreSQL server for tests (feature `testing` with `postgres`): found once per process, a
//! schema of its own per test, dropped afterwards.
//!
//! The server is `DURABLE_PG_URL`, or `postgres://postgres@127.0.0.1:5432/test`. Without the
//! variable, an unreachable server skips the tests with a message on standard error; with it,
//! an unreachable server fails them: whoever set the variable expects the tests to run. Schemas
//! are named `durable_test_<pid>_<nanos>_<n>_<tag>`, so that the next run can drop those of a
//! test process that was killed before its guards ran.
//!
//! ```no_run
//! use durable_core::store::{PostgresOptions, PostgresStore};
//! use durable_core::testing::postgres::{SchemaGuard, server, unique_schema};
//!
//! # async fn test() {
//! let Some(url) = server().await else { return }; // no server: skipped, and said so
//! let schema = unique_schema("orders");
//! let _guard = SchemaGuard::new(&url, &schema); // drops the schema when the test ends
//! let options = PostgresOptions { schema: schema.clone(), ..PostgresOptions::default() };
//! let store = PostgresStore::connect_with(&url, options).await.expect("the test server");
//! # }
//! ```

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::OnceCell;
use tokio_postgres::{Client, NoTls};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server's url, or why there is none.
static SERVER: OnceCell<Result<String, String>> = OnceCell::const_new();

/// The url of the test server, or `None` (after saying why on standard error) if the test must
/// be skipped.
///
/// # Panics
///
/// If `DURABLE_PG_URL` is set and the server cannot be reached.
pub async fn server() -> Option<String> {
    match SERVER.get_or_init(probe).await {
        Ok(url) => Some(url.clone()),
        Err(why) => {
            // Past the test harness's capture, so that it shows even for a passing test.
            let _ = writeln!(std::io::stderr(), "skipping PostgreSQL test: {why}");
            eprintln!("skipping PostgreSQL test: {why}");
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
        Ok(Err(error)) => match std::error::Error::source(&error) {
            Some(source) => format!("cannot connect to {url}: {error}: {source}"),
            None => format!("cannot connect to {url}: {error}"),
        },
        Err(_) => format!("cannot connect to {url}: no answer within 5 seconds"),
    };
    if required {
        panic!("DURABLE_PG_URL is set, but {why}");
    }
    Err(format!("{why} (set DURABLE_PG_URL to choose a server)"))
}

/// Drops the test schemas of this machine's test processes that died before their guards ran
/// (their names carry the pid, and `/proc/<pid>` is gone).
async fn drop_abandoned_schemas(client: &Client) {
    let query = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'durable\\_test\\_%'";
    let Ok(rows) = client.query(query, &[]).await else { return };
    for row in rows {
        let schema: String = row.get(0);
        let pid = schema.strip_prefix("durable_test_").and_then(|rest| rest.split('_').next());
        let dead = pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists());
        if dead && Path::new("/proc/self").exists() {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
        }
    }
}

/// A schema name no other test (of this process or another) uses, ending in `tag`.
pub fn unique_schema(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() % 1_000_000_000_000;
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("durable_test_{}_{nanos}_{n}_{tag}", std::process::id())
}

/// Drops its schema (and everything in it) when dropped, also when the test fails.
#[derive(Debug)]
pub struct SchemaGuard {
    url: String,
    schema: String,
}

impl SchemaGuard {
    /// Guards `schema` on the server at `url`.
    pub fn new(url: &str, schema: &str) -> Self {
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

/// A plain connection for the test itself (named `durable_test_admin`), to inspect or damage
/// what a store wrote.
///
/// # Panics
///
/// If the server at `url` cannot be reached.
pub async fn admin(url: &str) -> Client {
    let mut config: tokio_postgres::Config = url.parse().expect("a valid url");
    config.application_name("durable_test_admin");
    let (client, connection) = config.connect(NoTls).await.expect("admin connection");
    tokio::spawn(connection);
    client
}
