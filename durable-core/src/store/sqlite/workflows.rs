//! Workflow registrations: the static facts of each workflow build (schema version 2).

use rusqlite::{Connection, OptionalExtension, params};

use super::sql;
use crate::store::{StoreError, WorkflowInfo};

/// Version 2 of the schema: one row per workflow build, `registered` orders registrations.
pub(super) const V2: &str = "
CREATE TABLE workflows (
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    facts TEXT NOT NULL,
    registered INTEGER NOT NULL,
    PRIMARY KEY (name, fingerprint)
) STRICT;
CREATE INDEX workflows_latest ON workflows (name, registered);
";

/// Inserts or replaces the registration of `info`'s build and makes it the latest.
pub(super) fn register(conn: &Connection, info: &WorkflowInfo) -> Result<(), StoreError> {
    let what = "register a workflow";
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO workflows (name, fingerprint, facts, registered) \
             VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(registered), 0) + 1 FROM workflows)) \
             ON CONFLICT (name, fingerprint) DO UPDATE SET facts = excluded.facts, registered = excluded.registered",
        )
        .map_err(sql(what))?;
    upsert.execute(params![info.name, info.fingerprint, info.facts_json]).map_err(sql(what))?;
    Ok(())
}

/// The registration of `name` with `fingerprint`, or its latest one.
pub(super) fn find(
    conn: &Connection,
    name: &str,
    fingerprint: Option<&str>,
) -> Result<Option<WorkflowInfo>, StoreError> {
    let what = "read a workflow's facts";
    let mut select = conn
        .prepare_cached(
            "SELECT name, fingerprint, facts FROM workflows WHERE name = ?1 AND (?2 IS NULL OR fingerprint = ?2) \
             ORDER BY registered DESC LIMIT 1",
        )
        .map_err(sql(what))?;
    let row = select
        .query_row(params![name, fingerprint], |row| {
            Ok(WorkflowInfo { name: row.get(0)?, fingerprint: row.get(1)?, facts_json: row.get(2)? })
        })
        .optional();
    row.map_err(sql(what))
}
