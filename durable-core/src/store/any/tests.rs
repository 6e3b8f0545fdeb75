//! `AnyStore` runs the conformance suite once per backend, each opened from its URL, and
//! refuses the URLs it cannot serve with a message that says why.

use super::AnyStore;

/// A memory store from `memory:`.
async fn memory() -> Option<(AnyStore, ())> {
    let store = AnyStore::connect("memory:").await.expect("memory:");
    assert!(matches!(store, AnyStore::Memory(_)));
    Some((store, ()))
}

mod memory {
    crate::store::conformance::conformance_tests!(async super::memory);
}

/// A SQLite store in a new file from `sqlite:PATH?mode=rwc`.
#[cfg(feature = "sqlite")]
async fn sqlite() -> Option<(AnyStore, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("durable.db").display());
    let store = AnyStore::connect(&url).await.expect("sqlite:PATH?mode=rwc");
    assert!(matches!(store, AnyStore::Sqlite(_)));
    Some((store, dir))
}

#[cfg(feature = "sqlite")]
mod sqlite {
    crate::store::conformance::conformance_tests!(async super::sqlite);
}

/// A PostgreSQL store in a fresh schema, named by the URL's `schema` parameter; `None` (the
/// test is skipped, visibly) without a server.
#[cfg(feature = "postgres")]
async fn postgres() -> Option<(AnyStore, crate::testing::postgres::SchemaGuard)> {
    use crate::testing::postgres::{SchemaGuard, server, unique_schema};
    let url = server().await?;
    let schema = unique_schema("any");
    let guard = SchemaGuard::new(&url, &schema);
    let separator = if url.contains('?') { '&' } else { '?' };
    let store = AnyStore::connect(&format!("{url}{separator}schema={schema}")).await.expect("postgres://...");
    match &store {
        AnyStore::Postgres(postgres) => assert_eq!(postgres.schema(), schema),
        other => panic!("a postgres URL gave a {} store", other.kind()),
    }
    Some((store, guard))
}

#[cfg(feature = "postgres")]
mod postgres {
    crate::store::conformance::conformance_tests!(async super::postgres);
}

async fn refused(url: &str) -> String {
    match AnyStore::connect(url).await {
        Ok(store) => panic!("`{url}` gave a {} store", store.kind()),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn memory_urls() {
    for url in ["memory:", "memory://", "sqlite::memory:"] {
        assert_eq!(AnyStore::connect(url).await.expect(url).kind(), "memory", "{url}");
    }
    assert!(refused("memory:/tmp/x").await.contains("write `memory:`"));
}

#[tokio::test]
async fn unknown_schemes_are_refused() {
    assert!(refused("mysql://user:secret@db/app").await.contains("unknown store URL scheme `mysql`"));
    let message = refused("/var/lib/app.db").await;
    assert!(message.contains("starts with its scheme"), "{message}");
    assert!(message.contains("`sqlite:PATH`"), "{message}");
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_modes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let url = |query: &str| format!("sqlite:{}{query}", path.display());
    assert!(refused(&url("")).await.contains("no such file"), "mode=rw never creates");
    assert!(refused(&url("?mode=ro")).await.contains("sqlite"), "nor does mode=ro");
    assert!(!path.exists());
    let created = AnyStore::connect(&url("?mode=rwc&synchronous=normal")).await.unwrap();
    let AnyStore::Sqlite(sqlite) = &created else { panic!("{}", created.kind()) };
    assert_eq!(sqlite.path(), path);
    drop(created);
    assert_eq!(AnyStore::connect(&url("")).await.unwrap().kind(), "sqlite");
    assert_eq!(AnyStore::connect(&format!("sqlite://{}", path.display())).await.unwrap().kind(), "sqlite");

    let read_only = AnyStore::connect(&url("?mode=ro")).await.unwrap();
    let new = crate::store::NewExecution::new("e-1", "wf", "null", crate::Timestamp::from_millis(1));
    use crate::store::Store;
    assert!(read_only.create(new).await.is_err(), "a read-only store refuses writes");

    assert!(refused(&url("?mode=memory")).await.contains("unknown sqlite store URL parameter `mode`"));
    assert!(refused(&url("?cache=shared")).await.contains("`cache`"));
    assert!(refused("sqlite:").await.contains("needs a file"));
}

#[cfg(not(feature = "postgres"))]
#[tokio::test]
async fn postgres_needs_its_feature() {
    let message = refused("postgres://postgres@127.0.0.1:5432/test").await;
    assert!(message.contains("`postgres` feature"), "{message}");
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_schema_parameter_is_checked() {
    // The schema is checked before any connection is made, so no server is needed.
    let message = refused("postgresql://postgres@127.0.0.1:5432/test?schema=Not-A-Name").await;
    assert!(message.contains("invalid schema name `Not-A-Name`"), "{message}");
}
