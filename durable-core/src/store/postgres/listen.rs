//! Wake-ups on new work: `LISTEN` on a dedicated connection, kept up by a background task.

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{AsyncMessage, Client, Config, Connection, NoTls, Socket};

use super::{describe, pg};
use crate::store::StoreError;

/// The longest wait between two attempts to get the listening connection back.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A connection that listens on a channel.
pub(super) struct Subscription {
    /// Kept so that the connection stays open.
    _client: Client,
    connection: Connection<Socket, NoTlsStream>,
}

/// Opens a connection and `LISTEN`s on `channel` (a valid identifier: see `check_schema_name`).
pub(super) async fn subscribe(config: &Config, channel: &str) -> Result<Subscription, StoreError> {
    let what = "listen for new work";
    let (client, mut connection) = config.connect(NoTls).await.map_err(pg(what))?;
    {
        // The connection only makes progress while it is polled: drive it while LISTEN runs.
        let statement = format!("LISTEN \"{channel}\"");
        let listen = client.batch_execute(&statement);
        tokio::pin!(listen);
        loop {
            tokio::select! {
                result = &mut listen => break result.map_err(pg(what))?,
                message = poll_fn(|cx| connection.poll_message(cx)) => match message {
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(pg(what)(error)),
                    None => return Err(StoreError::Unavailable("postgres: the listening connection closed".into())),
                },
            }
        }
    }
    Ok(Subscription { _client: client, connection })
}

/// Wakes a worker when new work may be due; from [`PostgresStore::listen`](super::PostgresStore::listen).
///
/// Wake-ups coalesce: however many notifications arrived since the last
/// [`notified`](WorkListener::notified) returned, the next call returns at once, and only once.
/// A wake-up is a hint, never a promise: the worker still claims with
/// [`Store::claim_due`](crate::store::Store::claim_due) (which may find nothing, as another
/// worker may have been faster), and still polls now and then, for timers, which are not
/// announced, and for notifications lost with a connection.
///
/// The connection is kept up by a background task, which TCP keepalives tell within about a
/// minute that a silent connection is gone; it reconnects with a growing delay (up to five
/// seconds) and, once back, wakes the worker, since notifications sent meanwhile were missed.
/// The task stops when the listener is dropped.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use durable_core::{SharedClock, SystemClock};
/// use durable_core::store::{PostgresStore, Store};
///
/// # async fn worker() -> Result<(), durable_core::StoreError> {
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test").await?;
/// let listener = store.listen().await?;
/// let clock: SharedClock = Arc::new(SystemClock);
/// loop {
///     let due = store.claim_due("worker-1", &clock, Duration::from_secs(30), 16).await?;
///     if due.is_empty() {
///         // Sleep until new work is announced, or poll again after a while (for timers).
///         let _ = tokio::time::timeout(Duration::from_secs(5), listener.notified()).await;
///     }
///     for record in due {
///         // ... run the execution, committing with `lease: record.lease.map(|l| l.token())` ...
///         # let _ = record;
///     }
/// }
/// # }
/// ```
pub struct WorkListener {
    notify: Arc<Notify>,
    task: JoinHandle<()>,
}

impl WorkListener {
    pub(super) fn spawn(subscription: Subscription, config: Config, channel: String) -> Self {
        let notify = Arc::new(Notify::new());
        let task = tokio::spawn(keep_listening(subscription, config, channel, Arc::clone(&notify)));
        WorkListener { notify, task }
    }

    /// Waits until new work may be due: an execution was created, an awaited event sent, an
    /// execution committed or released runnable (by any process), or the listening connection
    /// came back after a loss. Returns at once if that happened since the previous call
    /// returned. Meant for one waiting task at a time.
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl crate::engine::WakeSource for WorkListener {
    fn wait(&self) -> crate::host::BoxFuture<'_, ()> {
        Box::pin(self.notified())
    }
}

impl Drop for WorkListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for WorkListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkListener").field("running", &!self.task.is_finished()).finish_non_exhaustive()
    }
}

/// Turns notifications into wake-ups, reconnecting whenever the connection is lost.
async fn keep_listening(mut subscription: Subscription, config: Config, channel: String, notify: Arc<Notify>) {
    loop {
        let reason = pump(&mut subscription, &notify).await;
        tracing::warn!(%reason, channel, "postgres: lost the connection listening for new work; reconnecting");
        subscription = reconnect(&config, &channel).await;
        tracing::info!(channel, "postgres: listening for new work again");
        notify.notify_one();
    }
}

/// Wakes on every notification until the connection ends; returns why it ended.
async fn pump(subscription: &mut Subscription, notify: &Notify) -> String {
    loop {
        match poll_fn(|cx| subscription.connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(_))) => notify.notify_one(),
            Some(Ok(_)) => {}
            Some(Err(error)) => return describe(&error),
            None => return "the server closed it".to_owned(),
        }
    }
}

/// Subscribes again, retrying with a growing delay until it works.
async fn reconnect(config: &Config, channel: &str) -> Subscription {
    let mut delay = Duration::from_millis(50);
    loop {
        tokio::time::sleep(delay).await;
        match subscribe(config, channel).await {
            Ok(subscription) => return subscription,
            Err(error) => {
                tracing::warn!(%error, channel, "postgres: cannot listen for new work yet; retrying");
                delay = (delay * 2).min(MAX_BACKOFF);
            }
        }
    }
}
