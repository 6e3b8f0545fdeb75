//! What the engine accepts: the limits on execution ids, names and payloads.
//!
//! Every [`Engine`](crate::Engine) method that takes an execution id, a workflow or event name,
//! an input or an event payload checks it here first, before it reads or writes anything, so
//! that every store gives the same answer ([`EngineError::Invalid`](crate::EngineError::Invalid))
//! and no store is asked to hold what another one would refuse.
//!
//! | what                                   | limit                                            |
//! |----------------------------------------|--------------------------------------------------|
//! | execution id                           | 1 to [`MAX_ID_BYTES`] bytes, no control character |
//! | workflow name, event name, event key   | 1 to [`MAX_NAME_BYTES`] bytes, no control character |
//! | input, event payload (as JSON)         | at most [`MAX_PAYLOAD_BYTES`] bytes              |
//!
//! Control characters are those of [`char::is_control`]: `U+0000` to `U+001F` (NUL, tab, line
//! feeds...), `U+007F` and `U+0080` to `U+009F`. They have no place in a name a person reads in
//! a log or a listing, and PostgreSQL cannot store NUL at all.
//!
//! An execution stored before these limits existed, with an id outside them, is still claimed
//! and run by workers and shown by the `durable` command line, but the engine's methods refuse
//! its id.
//!
//! ```
//! use durable_core::limits::{self, Field, MAX_ID_BYTES};
//!
//! assert!(limits::check_id("o-42").is_ok());
//! let error = limits::check_id(&"x".repeat(MAX_ID_BYTES + 1)).unwrap_err();
//! assert_eq!(error.field, Field::ExecutionId);
//! assert_eq!(
//!     error.to_string(),
//!     "the execution id `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…` is 256 bytes long, more than the 255 allowed"
//! );
//! assert!(limits::check_id("").is_err());
//! assert!(limits::check_id("a\0b").is_err());
//! ```

use std::fmt;

/// The longest execution id, in bytes (of UTF-8).
pub const MAX_ID_BYTES: usize = 255;

/// The longest workflow or event name, in bytes (of UTF-8).
pub const MAX_NAME_BYTES: usize = 255;

/// The largest workflow input or event payload, in bytes of JSON: 4 MiB.
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;

/// What an [`Invalid`] error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// An execution id.
    ExecutionId,
    /// A workflow's name.
    WorkflowName,
    /// An event's name.
    EventName,
    /// A workflow's input (as JSON).
    Input,
    /// An event's payload (as JSON).
    Payload,
    /// An event's idempotency key ([`Engine::send_event_once`](crate::Engine::send_event_once)).
    EventKey,
}

impl Field {
    fn as_str(self) -> &'static str {
        match self {
            Field::ExecutionId => "execution id",
            Field::WorkflowName => "workflow name",
            Field::EventName => "event name",
            Field::Input => "input",
            Field::Payload => "event payload",
            Field::EventKey => "event key",
        }
    }
}

/// What is wrong with the value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// It is empty.
    Empty,
    /// It is `len` bytes long, more than the `max` allowed.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// It holds control character `char` at byte `at`.
    ControlCharacter {
        /// The character.
        char: char,
        /// Its byte offset.
        at: usize,
    },
}

/// A value outside the engine's [limits](self). Says which value, what is wrong with it, and
/// shows at most its first 32 characters, escaped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    /// Which value.
    pub field: Field,
    /// What is wrong with it.
    pub problem: Problem,
    /// Its first characters, escaped for display (empty for a payload).
    pub preview: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field.as_str();
        match &self.problem {
            Problem::Empty => write!(f, "the {field} is empty: it must be 1 to {} bytes long", max(self.field)),
            Problem::TooLong { len, max } if self.preview.is_empty() => {
                write!(f, "the {field} is {len} bytes long, more than the {max} allowed")
            }
            Problem::TooLong { len, max } => {
                write!(f, "the {field} `{}` is {len} bytes long, more than the {max} allowed", self.preview)
            }
            Problem::ControlCharacter { char, at } => write!(
                f,
                "the {field} `{}` holds the control character {:?} at byte {at}: names and ids cannot hold \
                 control characters",
                self.preview, char
            ),
        }
    }
}

fn max(field: Field) -> usize {
    match field {
        Field::ExecutionId => MAX_ID_BYTES,
        Field::WorkflowName | Field::EventName | Field::EventKey => MAX_NAME_BYTES,
        Field::Input | Field::Payload => MAX_PAYLOAD_BYTES,
    }
}

/// Checks an execution id: 1 to [`MAX_ID_BYTES`] bytes, no control character.
pub fn check_id(id: &str) -> Result<(), Invalid> {
    check_name(Field::ExecutionId, id)
}

/// Checks an event name: 1 to [`MAX_NAME_BYTES`] bytes, no control character.
pub fn check_event_name(name: &str) -> Result<(), Invalid> {
    check_name(Field::EventName, name)
}

/// Checks an event's idempotency key: 1 to [`MAX_NAME_BYTES`] bytes, no control character.
pub fn check_event_key(key: &str) -> Result<(), Invalid> {
    check_name(Field::EventKey, key)
}

/// Checks a workflow name: 1 to [`MAX_NAME_BYTES`] bytes, no control character.
pub fn check_workflow_name(name: &str) -> Result<(), Invalid> {
    check_name(Field::WorkflowName, name)
}

/// Checks a workflow input (JSON): at most [`MAX_PAYLOAD_BYTES`] bytes.
pub fn check_input(json: &str) -> Result<(), Invalid> {
    check_size(Field::Input, json)
}

/// Checks an event payload (JSON): at most [`MAX_PAYLOAD_BYTES`] bytes.
pub fn check_payload(json: &str) -> Result<(), Invalid> {
    check_size(Field::Payload, json)
}

fn check_name(field: Field, value: &str) -> Result<(), Invalid> {
    let invalid = |problem| Err(Invalid { field, problem, preview: preview(value) });
    if value.is_empty() {
        return invalid(Problem::Empty);
    }
    let max = max(field);
    if value.len() > max {
        return invalid(Problem::TooLong { len: value.len(), max });
    }
    match value.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, char)) => invalid(Problem::ControlCharacter { char, at }),
        None => Ok(()),
    }
}

fn check_size(field: Field, json: &str) -> Result<(), Invalid> {
    if json.len() > MAX_PAYLOAD_BYTES {
        let problem = Problem::TooLong { len: json.len(), max: MAX_PAYLOAD_BYTES };
        return Err(Invalid { field, problem, preview: String::new() });
    }
    Ok(())
}

/// At most the first 32 characters of `value`, control characters escaped, `…` if cut.
fn preview(value: &str) -> String {
    crate::render::clean(value, 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_bounded_and_printable() {
        assert!(check_id(&"é".repeat(127)).is_ok(), "254 bytes");
        assert!(check_id(&"é".repeat(128)).is_err(), "256 bytes");
        assert!(check_event_name("payment received").is_ok());
        let nul = check_event_name("pay\0ment").unwrap_err();
        assert_eq!(nul.problem, Problem::ControlCharacter { char: '\0', at: 3 });
        assert_eq!(
            nul.to_string(),
            "the event name `pay\\0ment` holds the control character '\\0' at byte 3: names and ids cannot hold \
             control characters"
        );
        assert_eq!(
            check_workflow_name("").unwrap_err().to_string(),
            "the workflow name is empty: it must be 1 to 255 bytes long"
        );
        assert!(check_id("line\nfeed").is_err());
        assert!(check_id("\u{85}").is_err(), "C1 controls too");
    }

    #[test]
    fn payloads_are_bounded_without_being_echoed() {
        let big = "1".repeat(MAX_PAYLOAD_BYTES + 1);
        assert!(check_payload(&big[1..]).is_ok());
        let error = check_input(&big).unwrap_err();
        assert_eq!(error.to_string(), "the input is 4194305 bytes long, more than the 4194304 allowed");
    }
}
