//! The SQLite schema, and how records become rows and rows become records.
//!
//! Decoding never panics: a value of the wrong type, a negative timestamp, an unknown status or
//! a half-written snapshot gives [`StoreError::Corrupt`] naming the execution and the column.

use std::sync::OnceLock;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};

use super::sql;
pub(super) use crate::store::columns::millis;
use crate::store::columns::{self, Columns, int};
use crate::store::{ExecutionRecord, HistoryEvent, InboxEvent, Status, StoreError};

/// The migrations, in order: migration `i` (from 0) brings the schema to version `i + 1`.
/// Never edit a released migration: add a new one.
pub(super) const MIGRATIONS: &[&str] = &[SCHEMA, super::workflows::V2, V3, V4];

/// The schema version this build writes (`PRAGMA user_version`).
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Version 1 of the schema. Timestamps are milliseconds since the Unix epoch.
pub(super) const SCHEMA: &str = "
CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    snapshot_point TEXT,
    snapshot_fingerprint TEXT,
    snapshot_state TEXT,
    output TEXT,
    wake_at INTEGER,
    step_point TEXT,
    step_attempt INTEGER,
    step_started INTEGER,
    step_retry_at INTEGER,
    waiting_for TEXT,
    version INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    next_inbox_seq INTEGER NOT NULL DEFAULT 1
) STRICT;
-- Claiming scans only unfinished executions, which stay few while finished ones pile up.
CREATE INDEX executions_due ON executions (status, wake_at)
    WHERE status IN ('running', 'suspended');
CREATE INDEX executions_created ON executions (created_at, id);
CREATE INDEX executions_workflow ON executions (workflow, created_at, id);
CREATE TABLE history (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    point TEXT,
    file TEXT,
    line INTEGER,
    attempt INTEGER,
    detail TEXT,
    state TEXT,
    PRIMARY KEY (execution_id, seq)
) STRICT, WITHOUT ROWID;
CREATE TABLE inbox (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (execution_id, seq)
) STRICT;
CREATE INDEX inbox_name ON inbox (execution_id, name);
";

/// Version 3 of the schema: the epoch of each execution's last claim, which fences out a run
/// that lost its lease; and the idempotency keys of sent events, kept after the event is
/// consumed so that a repeated send is recognized for the execution's whole life.
pub(super) const V3: &str = "
ALTER TABLE executions ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE history ADD COLUMN error_kind TEXT;
ALTER TABLE history ADD COLUMN worker TEXT;
CREATE TABLE event_keys (
    execution_id TEXT NOT NULL,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (execution_id, key)
) STRICT, WITHOUT ROWID;
";

/// Version 4 of the schema: the parent of a child workflow, which its end is reported to and
/// which lists its children; the business keys executions are found by; the workflows paused.
pub(super) const V4: &str = "
ALTER TABLE executions ADD COLUMN parent_id TEXT;
ALTER TABLE executions ADD COLUMN parent_event TEXT;
CREATE INDEX executions_parent ON executions (parent_id, created_at, id) WHERE parent_id IS NOT NULL;
CREATE TABLE execution_keys (
    execution_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (execution_id, name)
) STRICT, WITHOUT ROWID;
CREATE INDEX execution_keys_lookup ON execution_keys (name, value, execution_id);
CREATE TABLE paused_workflows (name TEXT PRIMARY KEY) STRICT, WITHOUT ROWID;
";

pub(super) use crate::store::columns::{EPOCH_COLUMN, RECORD_COLUMNS};

/// Reads the columns of one row, turning every surprise into [`StoreError::Corrupt`].
struct Reader<'r, 'a> {
    row: &'r Row<'a>,
    id: &'r str,
}

impl Reader<'_, '_> {
    fn value(&self, index: usize, column: &str) -> Result<ValueRef<'_>, StoreError> {
        self.row.get_ref(index).map_err(|e| StoreError::corrupt(self.id, format!("column `{column}`: {e}")))
    }
}

impl Columns for Reader<'_, '_> {
    fn id(&self) -> &str {
        self.id
    }

    fn opt_text(&self, index: usize, column: &str) -> Result<Option<String>, StoreError> {
        match self.value(index, column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Ok(Some(text.to_owned())),
                Err(_) => Err(StoreError::corrupt(self.id, format!("`{column}` is not UTF-8"))),
            },
            _ => Err(StoreError::corrupt(self.id, format!("`{column}` is not text"))),
        }
    }

    fn opt_i64(&self, index: usize, column: &str) -> Result<Option<i64>, StoreError> {
        match self.value(index, column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(n) => Ok(Some(n)),
            _ => Err(StoreError::corrupt(self.id, format!("`{column}` is not an integer"))),
        }
    }
}

/// Decodes a row of [`RECORD_COLUMNS`].
pub(super) fn decode_record(row: &Row<'_>) -> Result<ExecutionRecord, StoreError> {
    let id = Reader { row, id: "?" }.text(0, "id")?;
    columns::decode_record(&Reader { row, id: &id })
}

/// Decodes a row of [`RECORD_COLUMNS`] with the epoch of the execution's last claim.
pub(super) fn decode_claimable(row: &Row<'_>) -> Result<(ExecutionRecord, u64), StoreError> {
    let record = decode_record(row)?;
    let epoch = Reader { row, id: &record.id }.u64(EPOCH_COLUMN, "lease_epoch")?;
    Ok((record, epoch))
}

/// The record `id`, or `None`.
pub(super) fn load_record(conn: &Connection, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
    let query = format!("SELECT {RECORD_COLUMNS} FROM executions WHERE id = ?1");
    let mut statement = conn.prepare_cached(&query).map_err(sql("load an execution"))?;
    let row = statement.query_row([id], |row| Ok(decode_record(row))).optional().map_err(sql("load an execution"))?;
    row.transpose()
}

/// The record `id`, or [`StoreError::NotFound`].
pub(super) fn existing_record(conn: &Connection, id: &str) -> Result<ExecutionRecord, StoreError> {
    load_record(conn, id)?.ok_or_else(|| StoreError::NotFound(id.to_owned()))
}

/// Inserts the new execution `r`.
pub(super) fn insert_record(conn: &Connection, r: &ExecutionRecord) -> Result<(), StoreError> {
    let mut statement = conn
        .prepare_cached(&format!(
            "INSERT INTO executions ({RECORD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
             ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)"
        ))
        .map_err(sql("create an execution"))?;
    let (snapshot, step, lease) = (r.snapshot.as_ref(), r.step.as_ref(), r.lease.as_ref());
    statement
        .execute(params![
            r.id,
            r.workflow,
            r.status.as_str(),
            r.input,
            snapshot.map(|s| &s.point),
            snapshot.map(|s| &s.fingerprint),
            snapshot.map(|s| &s.state),
            r.output,
            r.wake_at.map(millis),
            step.map(|s| &s.point),
            step.map(|s| s.attempt),
            step.map(|s| s.started),
            step.and_then(|s| s.retry_at).map(millis),
            r.waiting_for,
            int(r.version),
            lease.map(|l| &l.owner),
            lease.map(|l| millis(l.until)),
            millis(r.created_at),
            millis(r.updated_at),
            lease.map_or(0, |l| int(l.epoch)),
            r.parent,
            r.parent_event,
        ])
        .map_err(sql("create an execution"))?;
    Ok(())
}

/// The record `id` and the seq of its last history event (0 for none), or
/// [`StoreError::NotFound`]: what a commit checks and builds the new record from.
pub(super) fn load_for_commit(conn: &Connection, id: &str) -> Result<(ExecutionRecord, u64), StoreError> {
    let query = format!(
        "SELECT {RECORD_COLUMNS}, (SELECT COALESCE(MAX(seq), 0) FROM history WHERE execution_id = ?1) \
         FROM executions WHERE id = ?1"
    );
    let mut statement = conn.prepare_cached(&query).map_err(sql("read an execution"))?;
    let decoded = statement
        .query_row([id], |row| {
            // The last column, after those of the record.
            let last_seq = || Reader { row, id }.u64(row.as_ref().column_count() - 1, "history.seq");
            Ok(decode_record(row).and_then(|record| Ok((record, last_seq()?))))
        })
        .optional()
        .map_err(sql("read an execution"))?;
    decoded.ok_or_else(|| StoreError::NotFound(id.to_owned()))?
}

/// Writes `next`, the record a checked commit made of `current`.
///
/// Only what a commit may change is written, and the status and wake-up time only when they
/// change: they are the claim index's columns, and leaving them out of the `SET` spares SQLite
/// rewriting an index page (a step's checkpoint changes neither).
pub(super) fn update_record(
    conn: &Connection,
    current: &ExecutionRecord,
    next: &ExecutionRecord,
) -> Result<(), StoreError> {
    let what = "write an execution";
    let status = current.status != next.status;
    let wake_at = current.wake_at != next.wake_at;
    let lease = current.lease != next.lease;
    let mut statement = conn.prepare_cached(update_query(status, wake_at, lease)).map_err(sql(what))?;
    let (snapshot, step, lease_held) = (next.snapshot.as_ref(), next.step.as_ref(), next.lease.as_ref());
    let (point, fingerprint, state) =
        (snapshot.map(|s| &s.point), snapshot.map(|s| &s.fingerprint), snapshot.map(|s| &s.state));
    let (step_point, attempt, started) = (step.map(|s| &s.point), step.map(|s| s.attempt), step.map(|s| s.started));
    let (retry_at, version, updated_at) =
        (step.and_then(|s| s.retry_at).map(millis), int(next.version), millis(next.updated_at));
    let (status_value, wake_at_value) = (next.status.as_str(), next.wake_at.map(millis));
    let (owner, until) = (lease_held.map(|l| &l.owner), lease_held.map(|l| millis(l.until)));
    let mut values: Vec<&dyn ToSql> = vec![
        &next.id,
        &point,
        &fingerprint,
        &state,
        &next.output,
        &step_point,
        &attempt,
        &started,
        &retry_at,
        &next.waiting_for,
        &version,
        &updated_at,
    ];
    if status {
        values.push(&status_value);
    }
    if wake_at {
        values.push(&wake_at_value);
    }
    if lease {
        values.extend([&owner as &dyn ToSql, &until]);
    }
    statement.execute(&values[..]).map_err(sql(what))?;
    Ok(())
}

/// The `UPDATE` of [`update_record`] for one shape of change, built once per shape.
fn update_query(status: bool, wake_at: bool, lease: bool) -> &'static str {
    static QUERIES: OnceLock<Vec<String>> = OnceLock::new();
    let queries = QUERIES.get_or_init(|| {
        (0..8)
            .map(|shape| {
                let mut set = String::from(
                    "snapshot_point = ?2, snapshot_fingerprint = ?3, snapshot_state = ?4, output = ?5, \
                     step_point = ?6, step_attempt = ?7, step_started = ?8, step_retry_at = ?9, \
                     waiting_for = ?10, version = ?11, updated_at = ?12",
                );
                let mut n = 12;
                let mut param = |column: &str| {
                    n += 1;
                    set.push_str(&format!(", {column} = ?{n}"));
                };
                if shape & 1 != 0 {
                    param("status");
                }
                if shape & 2 != 0 {
                    param("wake_at");
                }
                if shape & 4 != 0 {
                    param("lease_owner");
                    param("lease_until");
                }
                format!("UPDATE executions SET {set} WHERE id = ?1")
            })
            .collect()
    });
    &queries[usize::from(status) | usize::from(wake_at) << 1 | usize::from(lease) << 2]
}

/// Appends `events` to `id`'s history as seqs `last_seq + 1, ...`; the `seq`s passed in are
/// ignored.
pub(super) fn append_history(
    conn: &Connection,
    id: &str,
    last_seq: u64,
    events: &[HistoryEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO history (execution_id, seq, at, kind, point, file, line, attempt, \
             detail, state, error_kind, worker) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .map_err(sql("append to the history"))?;
    for (seq, e) in (int(last_seq) + 1..).zip(events) {
        let values = params![
            id,
            seq,
            millis(e.at),
            e.kind.as_str(),
            e.point,
            e.file,
            e.line,
            e.attempt,
            e.detail,
            e.state,
            e.error_kind,
            e.worker
        ];
        insert.execute(values).map_err(sql("append to the history"))?;
    }
    Ok(())
}

/// Decodes a history row (`seq, at, kind, point, file, line, attempt, detail, state, error_kind,
/// worker`).
pub(super) fn decode_history(id: &str, row: &Row<'_>) -> Result<HistoryEvent, StoreError> {
    columns::decode_history(&Reader { row, id })
}

/// Decodes an inbox row (`seq, name, payload, at`).
pub(super) fn decode_inbox(id: &str, row: &Row<'_>) -> Result<InboxEvent, StoreError> {
    let r = Reader { row, id };
    Ok(InboxEvent {
        seq: r.u64(0, "inbox.seq")?,
        name: r.text(1, "inbox.name")?,
        payload: r.text(2, "inbox.payload")?,
        at: r.time(3, "inbox.at")?,
    })
}

/// The status of `id` and its next inbox seq, or [`StoreError::NotFound`].
pub(super) fn inbox_slot(conn: &Connection, id: &str) -> Result<(Status, u64), StoreError> {
    let mut statement = conn
        .prepare_cached("SELECT status, next_inbox_seq FROM executions WHERE id = ?1")
        .map_err(sql("read an execution"))?;
    let decoded = statement
        .query_row([id], |row| {
            let r = Reader { row, id };
            Ok(r.parsed::<Status>(0, "status").and_then(|s| Ok((s, r.u64(1, "next_inbox_seq")?))))
        })
        .optional()
        .map_err(sql("read an execution"))?;
    decoded.ok_or_else(|| StoreError::NotFound(id.to_owned()))?
}
