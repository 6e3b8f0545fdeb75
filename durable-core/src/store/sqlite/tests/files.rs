//! The store's file: opened only if it exists, created only if it does not, refused if it is
//! read-only, and watched while open so that a removed or replaced file stops the store.

use std::path::Path;

use super::{assert_backend, create, raw, t};
use crate::store::sqlite::SqliteStore;
use crate::store::{ListFilter, NewExecution, Store};

async fn ids(store: &SqliteStore) -> Vec<String> {
    store.list(ListFilter::default()).await.unwrap().into_iter().map(|record| record.id).collect()
}

#[tokio::test]
async fn open_never_creates_and_create_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    assert_backend(&SqliteStore::open(&path).unwrap_err(), &["cannot open", "no such file", "SqliteStore::create"]);
    assert!(!path.exists(), "open created nothing");

    let store = SqliteStore::create(&path).unwrap();
    create(&store, "e-1").await;
    assert_backend(&SqliteStore::create(&path).unwrap_err(), &["cannot create", "the file exists"]);
    assert_eq!(ids(&store).await, ["e-1"], "a failed create leaves the store alone");
    drop(store);
    assert_eq!(ids(&SqliteStore::open(&path).unwrap()).await, ["e-1"]);
    assert_eq!(ids(&SqliteStore::open_or_create(&path).unwrap()).await, ["e-1"]);

    let other = dir.path().join("other.db");
    assert!(ids(&SqliteStore::open_or_create(&other).unwrap()).await.is_empty());
    assert!(other.exists());

    // A database of something else is not made into a store, by any way of opening it.
    let foreign = dir.path().join("foreign.db");
    raw(&foreign, "CREATE TABLE unrelated (x INTEGER);");
    assert_backend(&SqliteStore::open(&foreign).unwrap_err(), &["not a durable store", "other tables"]);
    assert_backend(&SqliteStore::open_or_create(&foreign).unwrap_err(), &["not a durable store"]);
    let tables: i64 = rusqlite::Connection::open(&foreign)
        .unwrap()
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .unwrap();
    assert_eq!(tables, 1, "nothing was added to it");

    // A write-ahead log left by another database would be replayed into a new one.
    let stale = dir.path().join("stale.db");
    std::fs::write(dir.path().join("stale.db-wal"), b"frames of another database").unwrap();
    assert_backend(&SqliteStore::create(&stale).unwrap_err(), &["write-ahead log", "remove it first"]);
    assert_backend(&SqliteStore::open_or_create(&stale).unwrap_err(), &["write-ahead log"]);
    assert!(!stale.exists());

    // A create that fails leaves no file behind.
    let missing_dir = dir.path().join("missing").join("durable.db");
    assert_backend(&SqliteStore::create(&missing_dir).unwrap_err(), &["does not exist"]);
    assert!(!missing_dir.exists());
}

#[cfg(unix)]
/// Makes `path` unwritable, even for root (which ignores permission bits) if `chattr` can;
/// `false` if this system cannot.
fn make_read_only(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).unwrap();
    if std::fs::OpenOptions::new().write(true).open(path).is_err() {
        return true;
    }
    let immutable = std::process::Command::new("chattr").arg("+i").arg(path).status();
    immutable.is_ok_and(|status| status.success()) && std::fs::OpenOptions::new().write(true).open(path).is_err()
}

#[cfg(unix)]
/// Undoes [`make_read_only`] when dropped, so that the temporary directory can go.
struct Writable<'a>(&'a Path);

#[cfg(unix)]
impl Drop for Writable<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-i").arg(self.0).status();
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_read_only_file_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let store = SqliteStore::create(&path).unwrap();
    create(&store, "e-1").await;
    drop(store);
    let _writable = Writable(&path);
    if !make_read_only(&path) {
        eprintln!("skipping: this process can write to any file and `chattr +i` is not available");
        return;
    }
    let error = SqliteStore::open(&path).unwrap_err();
    assert_backend(&error, &["cannot open", "for writing", "read-only", "open_read_only"]);
    assert_backend(&SqliteStore::open_or_create(&path).unwrap_err(), &["read-only"]);
    assert_eq!(ids(&SqliteStore::open_read_only(&path).unwrap()).await, ["e-1"], "it can be read");
}

#[tokio::test]
async fn a_removed_file_stops_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let store = SqliteStore::create(&path).unwrap();
    create(&store, "e-1").await;
    std::fs::remove_file(&path).unwrap();

    let new = NewExecution::new("e-2", "order", "null", t(2));
    let removed = ["sqlite", "durable.db was removed while the store had it open", "has stopped"];
    assert_backend(&store.create(new).await.unwrap_err(), &removed);
    // Every later call fails the same way, reads too: the store has stopped.
    assert_backend(&store.load("e-1").await.unwrap_err(), &removed);
    assert_backend(
        &store
            .claim_due("w", &crate::time::ManualClock::shared(t(3)), std::time::Duration::from_secs(9), 9)
            .await
            .unwrap_err(),
        &removed,
    );
    // A restarted process is told, rather than handed an empty store.
    assert_backend(&SqliteStore::open(&path).unwrap_err(), &["no such file"]);
}

#[tokio::test]
async fn a_replaced_file_stops_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let store = SqliteStore::create(&path).unwrap();
    create(&store, "e-1").await;
    let other = dir.path().join("other.db");
    let backup = SqliteStore::create(&other).unwrap();
    create(&backup, "e-9").await;
    let checkpoint = "PRAGMA wal_checkpoint(TRUNCATE)";
    let checkpointed = backup.call(move |conn| Ok(conn.execute_batch(checkpoint).is_ok())).await.unwrap();
    assert!(checkpointed, "the backup is all in its file");
    // A backup restored as one should: the database and its side files go, the backup comes.
    for suffix in ["", "-wal", "-shm"] {
        std::fs::remove_file(format!("{}{suffix}", path.display())).unwrap();
    }
    std::fs::rename(&other, &path).unwrap();

    let new = NewExecution::new("e-2", "order", "null", t(2));
    let replaced = ["durable.db was replaced by another file while the store had it open"];
    assert_backend(&store.create(new).await.unwrap_err(), &replaced);
    assert_backend(&store.list(ListFilter::default()).await.unwrap_err(), &replaced);
    drop(store);
    assert_eq!(ids(&SqliteStore::open(&path).unwrap()).await, ["e-9"], "nothing was written to either file");
}
