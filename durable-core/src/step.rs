//! What a `step!` may be told: how often to retry, how long to wait in between, and whether an
//! attempt may run twice.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a step failed, as the workflow sees it after the last attempt.
///
/// A step body returns `Result<T, E>` where `E` converts into `StepError`: every
/// [`std::error::Error`] does (as a retryable error), and [`StepError::terminal`] marks an error
/// that no retry can fix. `StepError` is stored with the execution, so it keeps the message, not
/// the original error value.
///
/// `StepError` deliberately does not implement [`std::error::Error`]: that keeps the blanket
/// conversion from every error type possible (the same trade-off `anyhow::Error` makes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    message: String,
    terminal: bool,
    step: Option<String>,
    attempts: u32,
    /// What kind of error it was; absent in errors stored before kinds were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
}

impl StepError {
    /// An error that a later attempt may not hit again (a timeout, a refused connection).
    pub fn retryable(message: impl fmt::Display) -> Self {
        StepError { message: message.to_string(), terminal: false, step: None, attempts: 0, kind: None }
    }

    /// An error that retrying cannot fix (a declined card, an invalid order): the step fails at
    /// once, whatever its retry policy says.
    pub fn terminal(message: impl fmt::Display) -> Self {
        StepError { message: message.to_string(), terminal: true, step: None, attempts: 0, kind: None }
    }

    /// This error, of kind `kind`: a name the workflow, the history and the command line can
    /// tell errors apart by (`"card_declined"`, `"carrier_timeout"`).
    ///
    /// An error converted from a [`std::error::Error`] has its type's name as its kind
    /// (`std::io::error::Error`); one made with [`StepError::retryable`] or
    /// [`StepError::terminal`] has none until given one.
    ///
    /// ```
    /// use durable_core::StepError;
    ///
    /// let declined = StepError::terminal("card declined").with_kind("card_declined");
    /// assert_eq!(declined.kind(), Some("card_declined"));
    /// let io: StepError = std::io::Error::other("reset").into();
    /// assert_eq!(io.kind(), Some("std::io::error::Error"));
    /// ```
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// The error's kind, if it has one; see [`StepError::with_kind`].
    pub fn kind(&self) -> Option<&str> {
        self.kind.as_deref()
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the error was marked terminal.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// The step that failed, once the runtime has given up on it.
    pub fn step(&self) -> Option<&str> {
        self.step.as_deref()
    }

    /// How many attempts were made, once the runtime has given up on the step.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Records which step failed and after how many attempts.
    pub fn with_step(mut self, step: &str, attempts: u32) -> Self {
        self.step = Some(step.to_owned());
        self.attempts = attempts;
        self
    }
}

impl<E: std::error::Error> From<E> for StepError {
    fn from(error: E) -> Self {
        StepError::retryable(error).with_kind(std::any::type_name::<E>())
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Some(step) if self.attempts == 1 => write!(f, "step `{step}` failed: {}", self.message),
            Some(step) => {
                write!(f, "step `{step}` failed after {} attempts: {}", self.attempts, self.message)
            }
            None => f.write_str(&self.message),
        }
    }
}

/// How a failed step is retried.
///
/// The delay between attempts is a durable timer: a retrying execution is persisted and leaves
/// memory until the next attempt is due.
///
/// ```
/// use durable_core::Retry;
/// use std::time::Duration;
///
/// // 5 attempts in all: 1 s, 2 s, 4 s, 8 s apart, each delay varied by up to 10 %.
/// let policy = Retry::exponential(5).initial_delay(Duration::from_secs(1)).jitter(0.1);
/// assert_eq!(policy.max_attempts(), 5);
/// assert_eq!(policy.delay_after(1, 0.5), Some(Duration::from_secs(1)));
/// assert_eq!(policy.delay_after(5, 0.5), None);
/// ```
#[derive(Clone, Debug)]
pub struct Retry {
    max_attempts: u32,
    backoff: Backoff,
    jitter: Jitter,
    /// A step given no policy: the engine's default for the workflow applies.
    inherited: bool,
}

/// How a delay is varied at random.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Jitter {
    /// By up to this fraction of the delay, either way.
    Proportional(f64),
    /// Anywhere from zero to the whole delay ("full jitter").
    Full,
}

#[derive(Clone, Debug)]
enum Backoff {
    Fixed(Duration),
    Exponential { initial: Duration, factor: f64, max: Duration },
    Custom(fn(u32) -> Duration),
}

impl Retry {
    /// One attempt, no retry.
    pub fn none() -> Self {
        Retry::fixed(1, Duration::ZERO)
    }

    fn new(max_attempts: u32, backoff: Backoff) -> Self {
        Retry { max_attempts: max_attempts.max(1), backoff, jitter: Jitter::Proportional(0.0), inherited: false }
    }

    /// Up to `max_attempts` attempts in all, `delay` apart.
    pub fn fixed(max_attempts: u32, delay: Duration) -> Self {
        Retry::new(max_attempts, Backoff::Fixed(delay))
    }

    /// Up to `max_attempts` attempts in all; the delay starts at one second and doubles after
    /// each attempt, up to one hour.
    pub fn exponential(max_attempts: u32) -> Self {
        let backoff =
            Backoff::Exponential { initial: Duration::from_secs(1), factor: 2.0, max: Duration::from_secs(3600) };
        Retry::new(max_attempts, backoff)
    }

    /// Up to `max_attempts` attempts in all; `delay(n)` is the delay after the `n`-th failed
    /// attempt (counting from 1).
    pub fn custom(max_attempts: u32, delay: fn(u32) -> Duration) -> Self {
        Retry::new(max_attempts, Backoff::Custom(delay))
    }

    /// Sets the first delay of an exponential policy (or the delay of a fixed one).
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        match &mut self.backoff {
            Backoff::Fixed(d) => *d = delay,
            Backoff::Exponential { initial, .. } => *initial = delay,
            Backoff::Custom(_) => {}
        }
        self
    }

    /// Sets the factor an exponential delay grows by after each attempt.
    pub fn factor(mut self, by: f64) -> Self {
        if let Backoff::Exponential { factor, .. } = &mut self.backoff {
            *factor = by.max(1.0);
        }
        self
    }

    /// Caps an exponential delay.
    pub fn max_delay(mut self, cap: Duration) -> Self {
        if let Backoff::Exponential { max, .. } = &mut self.backoff {
            *max = cap;
        }
        self
    }

    /// Varies each delay at random by up to `fraction` of it either way (0.0 to 1.0): with
    /// 0.1, a 10 s delay becomes anything from 9 s to 11 s. Many executions failing together
    /// then do not all retry at the same moment.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = Jitter::Proportional(fraction.clamp(0.0, 1.0));
        self
    }

    /// Makes each delay anything from zero to the delay, at random ("full jitter"): a 10 s
    /// delay becomes 0 to 10 s. It spreads retries the most, and is what many cloud SDKs do.
    ///
    /// ```
    /// use durable_core::Retry;
    /// use std::time::Duration;
    ///
    /// let policy = Retry::fixed(3, Duration::from_secs(10)).full_jitter();
    /// assert_eq!(policy.delay_after(1, 0.0), Some(Duration::ZERO));
    /// assert_eq!(policy.delay_after(1, 0.25), Some(Duration::from_millis(2_500)));
    /// ```
    pub fn full_jitter(mut self) -> Self {
        self.jitter = Jitter::Full;
        self
    }

    /// Whether this is the policy of a step that was given none, which takes the engine's
    /// default ([`EngineBuilder::default_retry`](crate::engine::EngineBuilder::default_retry)).
    pub fn is_inherited(&self) -> bool {
        self.inherited
    }

    /// The number of attempts in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay after failed attempt `attempt` (counting from 1), or `None` when no attempt is
    /// left. `random` is a number in `0.0..1.0` that picks the jitter: with
    /// [`Retry::jitter`], 0.5 means none; with [`Retry::full_jitter`], the delay is scaled by it.
    pub fn delay_after(&self, attempt: u32, random: f64) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let base = match &self.backoff {
            Backoff::Fixed(delay) => *delay,
            Backoff::Exponential { initial, factor, max } => {
                let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
                let secs = initial.as_secs_f64() * factor.powi(exp);
                Duration::try_from_secs_f64(secs).unwrap_or(*max).min(*max)
            }
            Backoff::Custom(delay) => delay(attempt),
        };
        let random = random.clamp(0.0, 1.0);
        let scale = match self.jitter {
            Jitter::Proportional(fraction) => 1.0 + (random * 2.0 - 1.0) * fraction,
            Jitter::Full => random,
        };
        Some(Duration::try_from_secs_f64(base.as_secs_f64() * scale).unwrap_or(base))
    }
}

/// The policy of a step given none: the engine's default for its workflow applies, which is
/// [`Retry::none`] unless configured
/// ([`EngineBuilder::default_retry`](crate::engine::EngineBuilder::default_retry)).
impl Default for Retry {
    fn default() -> Self {
        Retry { inherited: true, ..Retry::none() }
    }
}

/// What happens when a worker dies while a step's body runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Semantics {
    /// The attempt runs again on resume (the default). Make the step idempotent.
    #[default]
    AtLeastOncePerAttempt,
    /// A `StepStarted` is persisted before the body runs; an attempt found started but
    /// unfinished on resume counts as failed and is not run again.
    AtMostOncePerAttempt,
}

/// Everything a `step!` was told: its retry policy and semantics.
#[derive(Clone, Debug, Default)]
pub struct StepPolicy {
    /// How failed attempts are retried.
    pub retry: Retry,
    /// Whether an interrupted attempt may run again.
    pub semantics: Semantics,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_doubles_and_caps() {
        let policy = Retry::exponential(10).max_delay(Duration::from_secs(5));
        let delays: Vec<_> = (1..10).map(|n| policy.delay_after(n, 0.5).unwrap().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5, 5, 5, 5, 5]);
        assert_eq!(policy.delay_after(10, 0.5), None);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let policy = Retry::fixed(3, Duration::from_secs(10)).jitter(0.2);
        assert_eq!(policy.delay_after(1, 0.0), Some(Duration::from_secs(8)));
        assert_eq!(policy.delay_after(1, 1.0), Some(Duration::from_secs(12)));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_delay() {
        let policy = Retry::exponential(4).full_jitter();
        assert_eq!(policy.delay_after(3, 0.0), Some(Duration::ZERO));
        assert_eq!(policy.delay_after(3, 0.5), Some(Duration::from_secs(2)));
        assert_eq!(policy.delay_after(3, 1.0), Some(Duration::from_secs(4)));
        assert_eq!(policy.delay_after(4, 0.5), None);
    }

    #[test]
    fn a_step_given_no_policy_inherits_and_an_explicit_one_does_not() {
        assert!(Retry::default().is_inherited());
        assert_eq!(Retry::default().max_attempts(), 1);
        assert!(!Retry::none().is_inherited() && !Retry::exponential(3).is_inherited());
        assert!(StepPolicy::default().retry.is_inherited());
    }

    #[test]
    fn an_error_keeps_its_kind() {
        let io: StepError = std::io::Error::other("reset").into();
        assert_eq!(io.kind(), Some("std::io::error::Error"));
        assert_eq!(StepError::retryable("x").kind(), None);
        let old: StepError =
            serde_json::from_str(r#"{"message":"m","terminal":false,"step":null,"attempts":1}"#).unwrap();
        assert_eq!(old.kind(), None, "errors stored before kinds still decode");
    }

    #[test]
    fn none_gives_up_after_the_first_attempt() {
        assert_eq!(Retry::none().delay_after(1, 0.5), None);
        assert_eq!(
            Retry::custom(3, |n| Duration::from_secs(n.into())).delay_after(2, 0.5),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn error_display_names_step_and_attempts() {
        let error = StepError::retryable("connection refused").with_step("ship_order", 3);
        assert_eq!(error.to_string(), "step `ship_order` failed after 3 attempts: connection refused");
        let io = std::io::Error::other("disk full");
        assert!(!StepError::from(io).is_terminal());
        assert!(StepError::terminal("declined").is_terminal());
    }
}
