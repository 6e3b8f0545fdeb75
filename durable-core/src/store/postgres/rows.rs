//! How rows become records and records become statement parameters.
//!
//! Decoding never panics: a value of the wrong type, a negative timestamp, an unknown status or
//! a half-written snapshot gives [`StoreError::Corrupt`] naming the execution and the column.
//! Writing many rows at once goes through column arrays (`UNNEST($1::text[], ...)`), so a batch
//! of commits costs a fixed number of statements whatever its size.

use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use super::describe;
use crate::store::columns::{self, Columns};
pub(super) use crate::store::columns::{int, millis};
use crate::store::{ExecutionRecord, HistoryEvent, InboxEvent, Status, StoreError, WorkflowInfo};

/// Reads the columns of one row, turning every surprise into [`StoreError::Corrupt`].
struct Reader<'r> {
    row: &'r Row,
    id: &'r str,
}

impl<'r> Reader<'r> {
    fn get<T: FromSql<'r>>(&self, index: usize, column: &str) -> Result<T, StoreError> {
        let row: &'r Row = self.row;
        row.try_get(index).map_err(|e| StoreError::corrupt(self.id, format!("column `{column}`: {}", describe(&e))))
    }
}

impl Columns for Reader<'_> {
    fn id(&self) -> &str {
        self.id
    }

    fn opt_text(&self, index: usize, column: &str) -> Result<Option<String>, StoreError> {
        self.get(index, column)
    }

    fn opt_i64(&self, index: usize, column: &str) -> Result<Option<i64>, StoreError> {
        self.get(index, column)
    }

    fn opt_bool(&self, index: usize, column: &str) -> Result<Option<bool>, StoreError> {
        self.get(index, column)
    }
}

/// The id in column 0 of a record row, or a corrupt error about an unknown execution.
fn record_id(row: &Row) -> Result<String, StoreError> {
    Reader { row, id: "?" }.text(0, "id")
}

/// Decodes a row of [`RECORD_COLUMNS`](super::schema::RECORD_COLUMNS).
pub(super) fn decode_record(row: &Row) -> Result<ExecutionRecord, StoreError> {
    let id = record_id(row)?;
    columns::decode_record(&Reader { row, id: &id })
}

/// A record locked for a batch of commits, with the last seq of its history.
#[derive(Debug)]
pub(super) struct Locked {
    pub(super) record: ExecutionRecord,
    pub(super) last_history_seq: u64,
    /// Whether a commit of the batch changed it (and so it must be written back).
    pub(super) changed: bool,
}

/// Decodes a row of [`RECORD_COLUMNS`](super::schema::RECORD_COLUMNS) and `last_history_seq`:
/// the id (if it can be read at all) and the locked record, or why it cannot be decoded.
pub(super) fn decode_locked(row: &Row) -> Option<(String, Result<Locked, StoreError>)> {
    let id = record_id(row).ok()?;
    let locked = decode_record(row).and_then(|record| {
        let last_history_seq = Reader { row, id: &id }.u64(columns::PARENT_EVENT_COLUMN + 1, "last_history_seq")?;
        Ok(Locked { record, last_history_seq, changed: false })
    });
    Some((id, locked))
}

/// Decodes a history row (`seq, at, kind, point, file, line, attempt, detail, state, error_kind,
/// worker`).
pub(super) fn decode_history(id: &str, row: &Row) -> Result<HistoryEvent, StoreError> {
    columns::decode_history(&Reader { row, id })
}

/// Decodes a workflow registration row (`name, fingerprint, facts`).
pub(super) fn decode_workflow(row: &Row) -> Result<WorkflowInfo, StoreError> {
    let r = Reader { row, id: "<workflow registration>" };
    Ok(WorkflowInfo {
        name: r.text(0, "workflows.name")?,
        fingerprint: r.text(1, "workflows.fingerprint")?,
        facts_json: r.text(2, "workflows.facts")?,
    })
}

/// Decodes an inbox row (`seq, name, payload, at`).
pub(super) fn decode_inbox(id: &str, row: &Row) -> Result<InboxEvent, StoreError> {
    let r = Reader { row, id };
    Ok(InboxEvent {
        seq: r.u64(0, "inbox.seq")?,
        name: r.text(1, "inbox.name")?,
        payload: r.text(2, "inbox.payload")?,
        at: r.time(3, "inbox.at")?,
    })
}

/// Decodes the stored status of execution `id` (column 0).
pub(super) fn decode_status(id: &str, row: &Row) -> Result<Status, StoreError> {
    Reader { row, id }.parsed(0, "status")
}

/// Decodes what `Queries::next_inbox_seq` returns: the seq the new event takes, and the
/// execution's status and awaited event.
pub(super) fn decode_inbox_slot(id: &str, row: &Row) -> Result<(u64, Status, Option<String>), StoreError> {
    let r = Reader { row, id };
    Ok((r.u64(0, "next_inbox_seq")?, r.parsed(1, "status")?, r.get(2, "waiting_for")?))
}

/// Column arrays of executions to write back, for [`Queries::update_many`](super::schema::Queries).
#[derive(Default)]
pub(super) struct RecordRows<'a> {
    id: Vec<&'a str>,
    status: Vec<&'static str>,
    snapshot_point: Vec<Option<&'a str>>,
    snapshot_fingerprint: Vec<Option<&'a str>>,
    snapshot_state: Vec<Option<&'a str>>,
    output: Vec<Option<&'a str>>,
    wake_at: Vec<Option<i64>>,
    step_point: Vec<Option<&'a str>>,
    step_attempt: Vec<Option<i64>>,
    step_started: Vec<Option<bool>>,
    step_retry_at: Vec<Option<i64>>,
    waiting_for: Vec<Option<&'a str>>,
    version: Vec<i64>,
    lease_owner: Vec<Option<&'a str>>,
    lease_until: Vec<Option<i64>>,
    updated_at: Vec<i64>,
    last_history_seq: Vec<i64>,
}

impl<'a> RecordRows<'a> {
    pub(super) fn push(&mut self, locked: &'a Locked) {
        let r = &locked.record;
        let (snapshot, step, lease) = (r.snapshot.as_ref(), r.step.as_ref(), r.lease.as_ref());
        self.id.push(&r.id);
        self.status.push(r.status.as_str());
        self.snapshot_point.push(snapshot.map(|s| s.point.as_str()));
        self.snapshot_fingerprint.push(snapshot.map(|s| s.fingerprint.as_str()));
        self.snapshot_state.push(snapshot.map(|s| s.state.as_str()));
        self.output.push(r.output.as_deref());
        self.wake_at.push(r.wake_at.map(millis));
        self.step_point.push(step.map(|s| s.point.as_str()));
        self.step_attempt.push(step.map(|s| i64::from(s.attempt)));
        self.step_started.push(step.map(|s| s.started));
        self.step_retry_at.push(step.and_then(|s| s.retry_at).map(millis));
        self.waiting_for.push(r.waiting_for.as_deref());
        self.version.push(int(r.version));
        self.lease_owner.push(lease.map(|l| l.owner.as_str()));
        self.lease_until.push(lease.map(|l| millis(l.until)));
        self.updated_at.push(millis(r.updated_at));
        self.last_history_seq.push(int(locked.last_history_seq));
    }

    pub(super) fn len(&self) -> usize {
        self.id.len()
    }

    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 17] {
        [
            &self.id,
            &self.status,
            &self.snapshot_point,
            &self.snapshot_fingerprint,
            &self.snapshot_state,
            &self.output,
            &self.wake_at,
            &self.step_point,
            &self.step_attempt,
            &self.step_started,
            &self.step_retry_at,
            &self.waiting_for,
            &self.version,
            &self.lease_owner,
            &self.lease_until,
            &self.updated_at,
            &self.last_history_seq,
        ]
    }
}

/// Column arrays of history events to append, for `Queries::append_history`.
#[derive(Default)]
pub(super) struct HistoryRows<'a> {
    id: Vec<&'a str>,
    seq: Vec<i64>,
    at: Vec<i64>,
    kind: Vec<&'static str>,
    point: Vec<Option<&'a str>>,
    file: Vec<Option<&'a str>>,
    line: Vec<Option<i64>>,
    attempt: Vec<Option<i64>>,
    detail: Vec<Option<&'a str>>,
    state: Vec<Option<&'a str>>,
    error_kind: Vec<Option<&'a str>>,
    worker: Vec<Option<&'a str>>,
}

impl<'a> HistoryRows<'a> {
    /// Adds `event` as entry `seq` of execution `id`'s history (the event's own `seq` is ignored).
    pub(super) fn push(&mut self, id: &'a str, seq: u64, event: &'a HistoryEvent) {
        self.id.push(id);
        self.seq.push(int(seq));
        self.at.push(millis(event.at));
        self.kind.push(event.kind.as_str());
        self.point.push(event.point.as_deref());
        self.file.push(event.file.as_deref());
        self.line.push(event.line.map(i64::from));
        self.attempt.push(event.attempt.map(i64::from));
        self.detail.push(event.detail.as_deref());
        self.state.push(event.state.as_deref());
        self.error_kind.push(event.error_kind.as_deref());
        self.worker.push(event.worker.as_deref());
    }

    pub(super) fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 12] {
        [
            &self.id,
            &self.seq,
            &self.at,
            &self.kind,
            &self.point,
            &self.file,
            &self.line,
            &self.attempt,
            &self.detail,
            &self.state,
            &self.error_kind,
            &self.worker,
        ]
    }
}
