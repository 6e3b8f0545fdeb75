//! The unit tests' use of the shared PostgreSQL test server (`crate::testing::postgres`): a
//! store in a fresh schema per test.

use crate::store::{PostgresOptions, PostgresStore};
pub(super) use crate::testing::postgres::{SchemaGuard, admin, server};

/// A schema name no other test uses.
pub(super) fn unique_schema() -> String {
    crate::testing::postgres::unique_schema("unit")
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

/// A store in a fresh schema and the guard that drops it, or `None` if there is no server.
pub(super) async fn fresh() -> Option<(PostgresStore, SchemaGuard)> {
    let url = server().await?;
    let schema = unique_schema();
    let guard = SchemaGuard::new(&url, &schema);
    let store = PostgresStore::connect_with(&url, options(&schema)).await.expect("connect to the test server");
    Some((store, guard))
}
