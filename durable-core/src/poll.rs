//! Waiting for a condition: `wait!(name, until = |state| check, state = init, schedule = policy)`
//! polls `check` until it reports done, carrying a state from one poll to the next and waiting
//! durably in between, as `schedule` (a [`Retry`](crate::Retry) policy: how many polls, how
//! far apart) says.
//!
//! It is one point: its state between polls is the poll's own state, and each poll that finds
//! the condition not met writes one `WaitStarted` event with the delay chosen, instead of the
//! two points (a step and a timer) per poll of the loop written by hand.

use serde::{Deserialize, Serialize};

use crate::step::StepError;
use crate::time::Timestamp;

/// What one poll found: the condition holds (with the value the wait evaluates to), or not yet
/// (with the state the next poll starts from).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Check<S, T> {
    /// Done: the wait evaluates to `Ok(value)`.
    Done(T),
    /// Not yet: poll again later, from this state.
    NotYet(S),
}

/// Why a wait for a condition ended without its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PollError {
    /// The schedule's polls were all made and the condition never held.
    #[error("`{point}` was still not done after {attempts} polls")]
    Exhausted {
        /// The wait's name.
        point: String,
        /// How many polls were made.
        attempts: u32,
    },
    /// A poll failed (its body returned `Err`).
    #[error("`{point}` failed at poll {attempt}: {error}")]
    Failed {
        /// The wait's name.
        point: String,
        /// The poll that failed (from 1).
        attempt: u32,
        /// Its error.
        error: StepError,
    },
}

/// A wait for a condition between two polls, as stored with the execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollState<S> {
    /// The state the next poll starts from.
    pub state: S,
    /// How many polls were made.
    pub polls: u32,
    /// When the next poll is due (none before the first).
    pub next_at: Option<Timestamp>,
}
