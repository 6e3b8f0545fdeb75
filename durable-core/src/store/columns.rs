//! Reading stored columns, shared by the SQL backends: every surprise in a row (a wrong type, a
//! negative timestamp, a value out of range, an unknown name) becomes [`StoreError::Corrupt`]
//! naming the execution and the column, never a panic.

use std::fmt::Display;
use std::str::FromStr;

use super::{EventKind, ExecutionRecord, HistoryEvent, Lease, Snapshot, StepRecord, StoreError};
use crate::time::Timestamp;

/// A timestamp as stored: `u64` milliseconds clamped to `i64::MAX` (the year 292 million),
/// which only "never" timestamps such as `Timestamp::from_millis(u64::MAX)` reach.
pub(crate) fn millis(at: Timestamp) -> i64 {
    int(at.as_millis())
}

/// A count or sequence number as stored (a signed 64-bit integer), clamped to `i64::MAX`.
pub(crate) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The columns of one row of an execution. A backend says how to read text and integers; the
/// typed readers are the same for every backend.
pub(crate) trait Columns {
    /// The execution the row belongs to, for error messages.
    fn id(&self) -> &str;

    /// A text column, `None` for NULL.
    fn opt_text(&self, index: usize, column: &str) -> Result<Option<String>, StoreError>;

    /// An integer column, `None` for NULL.
    fn opt_i64(&self, index: usize, column: &str) -> Result<Option<i64>, StoreError>;

    /// A text column that must not be NULL.
    fn text(&self, index: usize, column: &str) -> Result<String, StoreError> {
        self.opt_text(index, column)?.ok_or_else(|| StoreError::corrupt(self.id(), format!("`{column}` is missing")))
    }

    /// A boolean column, `None` for NULL. Stored as the integer 0 or 1 unless a backend has
    /// booleans of its own.
    fn opt_bool(&self, index: usize, column: &str) -> Result<Option<bool>, StoreError> {
        match self.opt_i64(index, column)? {
            None => Ok(None),
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            Some(n) => Err(StoreError::corrupt(self.id(), format!("`{column}` is not a boolean ({n})"))),
        }
    }

    /// A non-negative integer column, `None` for NULL.
    fn opt_u64(&self, index: usize, column: &str) -> Result<Option<u64>, StoreError> {
        match self.opt_i64(index, column)? {
            None => Ok(None),
            Some(n) => u64::try_from(n)
                .map(Some)
                .map_err(|_| StoreError::corrupt(self.id(), format!("`{column}` is negative ({n})"))),
        }
    }

    /// A non-negative integer column that must not be NULL.
    fn u64(&self, index: usize, column: &str) -> Result<u64, StoreError> {
        self.opt_u64(index, column)?.ok_or_else(|| StoreError::corrupt(self.id(), format!("`{column}` is missing")))
    }

    /// A `u32` column, `None` for NULL.
    fn opt_u32(&self, index: usize, column: &str) -> Result<Option<u32>, StoreError> {
        match self.opt_u64(index, column)? {
            None => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| StoreError::corrupt(self.id(), format!("`{column}` is out of range ({n})"))),
        }
    }

    /// A timestamp column, `None` for NULL.
    fn opt_time(&self, index: usize, column: &str) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.opt_u64(index, column)?.map(Timestamp::from_millis))
    }

    /// A timestamp column that must not be NULL.
    fn time(&self, index: usize, column: &str) -> Result<Timestamp, StoreError> {
        self.u64(index, column).map(Timestamp::from_millis)
    }

    /// A text column parsed with `FromStr` (a status, an event kind).
    fn parsed<T: FromStr<Err: Display>>(&self, index: usize, column: &str) -> Result<T, StoreError> {
        let text = self.text(index, column)?;
        text.parse().map_err(|e| StoreError::corrupt(self.id(), format!("`{column}`: {e}")))
    }
}

/// The columns both SQL backends select for an execution record, in this order.
pub(crate) const RECORD_COLUMNS: &str = "id, workflow, status, input, snapshot_point, \
    snapshot_fingerprint, snapshot_state, output, wake_at, step_point, step_attempt, \
    step_started, step_retry_at, waiting_for, version, lease_owner, lease_until, created_at, \
    updated_at, lease_epoch, parent_id, parent_event";

/// The index of `lease_epoch` in [`RECORD_COLUMNS`]: the epoch of the execution's last claim,
/// kept when its lease is released so that the next claim takes the next epoch.
pub(crate) const EPOCH_COLUMN: usize = 19;

/// The index of `parent_id` in [`RECORD_COLUMNS`].
pub(crate) const PARENT_COLUMN: usize = 20;

/// The index of `parent_event` in [`RECORD_COLUMNS`], the last of them.
pub(crate) const PARENT_EVENT_COLUMN: usize = 21;

/// Decodes a row of [`RECORD_COLUMNS`] whose id (column 0) `r` already names.
pub(crate) fn decode_record(r: &impl Columns) -> Result<ExecutionRecord, StoreError> {
    let id = r.id().to_owned();
    let snapshot = match (
        r.opt_text(4, "snapshot_point")?,
        r.opt_text(5, "snapshot_fingerprint")?,
        r.opt_text(6, "snapshot_state")?,
    ) {
        (None, None, None) => None,
        (Some(point), Some(fingerprint), Some(state)) => Some(Snapshot { point, fingerprint, state }),
        _ => return Err(StoreError::corrupt(&id, "the snapshot is partly missing")),
    };
    let step = match (r.opt_text(9, "step_point")?, r.opt_u32(10, "step_attempt")?, r.opt_bool(11, "step_started")?) {
        (None, None, None) => None,
        (Some(point), Some(attempt), Some(started)) => {
            Some(StepRecord { point, attempt, started, retry_at: r.opt_time(12, "step_retry_at")? })
        }
        _ => return Err(StoreError::corrupt(&id, "the step record is partly missing")),
    };
    let lease = match (r.opt_text(15, "lease_owner")?, r.opt_time(16, "lease_until")?) {
        (None, None) => None,
        (Some(owner), Some(until)) => Some(Lease { owner, epoch: r.u64(EPOCH_COLUMN, "lease_epoch")?, until }),
        _ => return Err(StoreError::corrupt(&id, "the lease is partly missing")),
    };
    Ok(ExecutionRecord {
        workflow: r.text(1, "workflow")?,
        status: r.parsed(2, "status")?,
        input: r.text(3, "input")?,
        snapshot,
        output: r.opt_text(7, "output")?,
        wake_at: r.opt_time(8, "wake_at")?,
        step,
        waiting_for: r.opt_text(13, "waiting_for")?,
        version: r.u64(14, "version")?,
        lease,
        created_at: r.time(17, "created_at")?,
        updated_at: r.time(18, "updated_at")?,
        parent: r.opt_text(PARENT_COLUMN, "parent_id")?,
        parent_event: r.opt_text(PARENT_EVENT_COLUMN, "parent_event")?,
        id,
    })
}

/// Decodes a history row (`seq, at, kind, point, file, line, attempt, detail, state,
/// error_kind, worker`) of the
/// execution `r` names.
pub(crate) fn decode_history(r: &impl Columns) -> Result<HistoryEvent, StoreError> {
    Ok(HistoryEvent {
        seq: r.u64(0, "history.seq")?,
        at: r.time(1, "history.at")?,
        kind: r.parsed::<EventKind>(2, "history.kind")?,
        point: r.opt_text(3, "history.point")?,
        file: r.opt_text(4, "history.file")?,
        line: r.opt_u32(5, "history.line")?,
        attempt: r.opt_u32(6, "history.attempt")?,
        detail: r.opt_text(7, "history.detail")?,
        state: r.opt_text(8, "history.state")?,
        error_kind: r.opt_text(9, "history.error_kind")?,
        worker: r.opt_text(10, "history.worker")?,
    })
}
