//! Reading stored columns, shared by the SQL backends: every surprise in a row (a wrong type, a
//! negative timestamp, a value out of range, an unknown name) becomes [`StoreError::Corrupt`]
//! naming the execution and the column, never a panic.

use std::fmt::Display;
use std::str::FromStr;

use super::StoreError;
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
