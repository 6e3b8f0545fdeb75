//! Callbacks: a wait completed by an external system that holds an unguessable token.
//!
//! `wait!(name, callback = |token| submit(token).await)` mints a token (128 random bits, with
//! the execution's id so that the engine finds the execution without an index), stores it with
//! the execution, runs the submitter as a step (with the step's retry policy) to hand the token
//! to the external system, and waits until the system calls
//! [`Engine::complete_callback`](crate::Engine::complete_callback) with a result or a
//! [`CallbackFailure`]. Options: `timeout = d` (from the moment the callback was created) and
//! `heartbeat = d` (the system must call
//! [`Engine::heartbeat_callback`](crate::Engine::heartbeat_callback) at least that often).
//!
//! The token is never written where it could be read back to complete the callback without
//! having been handed it: the awaited event's name (and so the execution's `waiting_for`) is
//! a SHA-256 digest of the token, and `durable show` masks the token in the stored state.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::time::Timestamp;

/// The prefix of every token, with the format's version.
const PREFIX: &str = "dcb1";

/// A callback waiting for its token to come back, as stored with the execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackWait {
    /// The token handed to the submitter.
    pub token: String,
    /// When the callback was created.
    pub created: Timestamp,
    /// When the wait times out, if it has a timeout.
    pub deadline: Option<Timestamp>,
    /// How long the external system may stay silent, if it must send heartbeats.
    pub heartbeat: Option<Duration>,
    /// Why the submitter failed for good, if it did: the wait then ends with that error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_failed: Option<crate::StepError>,
}

impl CallbackWait {
    /// The token, for the submitter.
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// What went wrong in the external system, as it reports it with
/// [`Engine::complete_callback`](crate::Engine::complete_callback): a first-class failure, not
/// a payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackFailure {
    /// The kind of error (`"card_declined"`).
    pub error_type: String,
    /// A message for people.
    pub message: String,
    /// Anything else the system wants the workflow to know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl CallbackFailure {
    /// A failure of kind `error_type` saying `message`.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        CallbackFailure { error_type: error_type.into(), message: message.into(), data: None }
    }

    /// The failure with `data` attached.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }
}

impl fmt::Display for CallbackFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

/// Why a callback wait did not get a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CallbackError {
    /// The external system reported a failure.
    #[error("callback `{callback}` failed: {failure}")]
    Failed {
        /// The wait's name.
        callback: String,
        /// What the system reported.
        failure: CallbackFailure,
    },
    /// The timeout passed before the callback was completed.
    #[error("callback `{callback}` was not completed before its timeout")]
    TimedOut {
        /// The wait's name.
        callback: String,
    },
    /// No heartbeat came within the heartbeat window.
    #[error("callback `{callback}` timed out: no heartbeat for {}s", heartbeat.as_secs())]
    HeartbeatTimedOut {
        /// The wait's name.
        callback: String,
        /// The window.
        heartbeat: Duration,
    },
    /// The submitter failed for good: the token never reached the external system.
    #[error("callback `{callback}` could not be submitted: {error}")]
    SubmitFailed {
        /// The wait's name.
        callback: String,
        /// The submitter's error.
        error: crate::StepError,
    },
}

/// What a callback wait found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallbackPoll {
    /// The callback was completed: what the system sent (`{"Ok":..}` or `{"Err":..}`), as JSON.
    Received(String),
    /// The timeout passed first.
    TimedOut,
    /// No heartbeat came within the window.
    HeartbeatTimedOut,
    /// Nothing yet: keep waiting.
    Pending,
}

/// A new token for a callback of execution `id`: the id (hex) and 128 random bits.
pub(crate) fn mint(id: &str) -> String {
    let secret: u128 = rand::random();
    format!("{PREFIX}.{}.{secret:032x}", hex(id.as_bytes()))
}

/// The execution a token belongs to, or `None` for a string that is no token.
pub(crate) fn execution_of(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (prefix, id, secret) = (parts.next()?, parts.next()?, parts.next()?);
    if prefix != PREFIX || parts.next().is_some() || secret.len() != 32 || id.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..id.len()).step_by(2).map(|i| u8::from_str_radix(id.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

/// The name of the event that completes the callback with `token`: a digest, so that neither
/// the event's name nor the execution's `waiting_for` gives the token away.
pub(crate) fn completion_name(token: &str) -> String {
    format!("callback:{}", &hex(&Sha256::digest(token.as_bytes()))[..32])
}

/// The name of the events that are heartbeats of the callback with `token`.
pub(crate) fn heartbeat_name(token: &str) -> String {
    format!("heartbeat:{}", &hex(&Sha256::digest(token.as_bytes()))[..32])
}

/// A token shortened for display: enough to tell tokens apart, not enough to use one.
pub fn masked(token: &str) -> String {
    let end = token.len().min(PREFIX.len() + 9);
    format!("{}…", token.get(..end).unwrap_or(PREFIX))
}

/// Masks every callback token in `text` (a stored state, say).
pub(crate) fn mask_tokens(text: &str) -> String {
    let needle = format!("{PREFIX}.");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        out.push_str(&rest[..at]);
        let token_len = rest[at..]
            .find(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c.is_ascii_alphanumeric()))
            .unwrap_or(rest.len() - at);
        out.push_str(&masked(&rest[at..at + token_len]));
        rest = &rest[at + token_len..];
    }
    out.push_str(rest);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_their_execution_and_are_masked() {
        let token = mint("o-42/α");
        assert_eq!(execution_of(&token).as_deref(), Some("o-42/α"));
        assert_ne!(mint("o-42/α"), token, "128 random bits each time");
        for bad in ["", "dcb1", "dcb1.zz.00000000000000000000000000000000", "x.6f.00000000000000000000000000000000"] {
            assert_eq!(execution_of(bad), None, "{bad}");
        }
        assert_eq!(completion_name(&token).len(), "callback:".len() + 32);
        assert!(!completion_name(&token).contains(&token[token.len() - 32..]));
        let state = format!(r#"{{"t":"{token}","n":1}}"#);
        let shown = mask_tokens(&state);
        assert!(!shown.contains(&token[token.len() - 32..]), "{shown}");
        assert!(shown.starts_with(r#"{"t":"dcb1.6f2d3432…","n":1}"#), "{shown}");
    }
}
