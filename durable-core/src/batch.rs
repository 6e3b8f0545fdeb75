//! Fan-out inside one workflow: `map!` over a collection and `parallel!` over a list of
//! branches, with a concurrency limit and a completion policy.
//!
//! Each branch is a step body (an async expression with no points in it). The branches run
//! concurrently in the worker that runs the execution, at most `max_concurrency` at a time, and
//! each branch's outcome is committed on its own as it finishes: after a crash only the
//! branches that had not finished run again. The point evaluates to a [`Batch`]: every
//! branch's [`Outcome`] in input order, whatever order they finished in, and why the batch
//! ended ([`Completed`]).
//!
//! A branch runs once per attempt of the batch: a failed branch is an [`Outcome::Failed`], not
//! retried (retry inside the body, or make the branch a child workflow, which has the step
//! retry policies and runs on any worker). Once the completion policy has decided, branches
//! that have not started are not started ([`Outcome::NotStarted`]) and branches still running
//! are cancelled where they stand, at their next `.await` ([`Outcome::Cancelled`]): what they
//! did until then stays done.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::step::StepError;

/// When a batch is done; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Completion {
    /// Every branch runs to its end, whatever fails (the default).
    #[default]
    All,
    /// Done once this many branches have succeeded.
    MinSuccessful(usize),
    /// Done, as a failure, once more than this many branches have failed.
    ToleratedFailures(usize),
    /// Done, as a failure, once more than this percentage of all branches have failed.
    ToleratedFailurePercentage(f64),
}

impl Completion {
    /// Done once `n` branches have succeeded.
    pub fn min_successful(n: usize) -> Self {
        Completion::MinSuccessful(n)
    }

    /// Done once more than `n` branches have failed.
    pub fn tolerated_failures(n: usize) -> Self {
        Completion::ToleratedFailures(n)
    }

    /// Done once more than `percent` % of all branches have failed.
    pub fn tolerated_failure_percentage(percent: f64) -> Self {
        Completion::ToleratedFailurePercentage(percent)
    }
}

/// How a batch runs: `map!(name, items, |item| body, options)`.
///
/// ```
/// use durable_core::{BatchOptions, Completion};
///
/// let options = BatchOptions::new().max_concurrency(4).completion(Completion::min_successful(2));
/// assert_eq!(options.concurrency_limit(), Some(4));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchOptions {
    max_concurrency: Option<usize>,
    completion: Completion,
}

impl BatchOptions {
    /// Unlimited concurrency, every branch to its end.
    pub fn new() -> Self {
        BatchOptions::default()
    }

    /// At most `n` branches run at once. `0` is refused when the batch starts
    /// ([`BatchError::Invalid`]).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// When the batch is done.
    pub fn completion(mut self, completion: Completion) -> Self {
        self.completion = completion;
        self
    }

    /// The concurrency limit, if any.
    pub fn concurrency_limit(&self) -> Option<usize> {
        self.max_concurrency
    }

    /// Why these options cannot run a batch, if they cannot.
    pub(crate) fn check(&self) -> Result<(), BatchError> {
        if self.max_concurrency == Some(0) {
            return Err(BatchError::Invalid("max_concurrency must be at least 1".to_owned()));
        }
        if let Completion::ToleratedFailurePercentage(p) = self.completion
            && !(0.0..=100.0).contains(&p)
        {
            return Err(BatchError::Invalid(format!("a tolerated failure percentage must be 0 to 100, not {p}")));
        }
        Ok(())
    }
}

/// A batch that could not run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum BatchError {
    /// Its options make no sense; nothing ran.
    #[error("invalid batch options: {0}")]
    Invalid(String),
}

/// How one branch of a batch ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome<T> {
    /// The branch returned `Ok`.
    Succeeded(T),
    /// The branch returned `Err`.
    Failed(StepError),
    /// The batch was decided before the branch started.
    NotStarted,
    /// The batch was decided while the branch ran; it was stopped at its next `.await`.
    Cancelled,
}

impl<T> Outcome<T> {
    /// The value, if the branch succeeded.
    pub fn value(&self) -> Option<&T> {
        match self {
            Outcome::Succeeded(value) => Some(value),
            _ => None,
        }
    }
}

/// Why a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Completed {
    /// Every branch ran to its end.
    AllCompleted,
    /// `min_successful` branches succeeded.
    MinSuccessfulReached,
    /// More branches failed than tolerated.
    FailureToleranceExceeded,
}

impl fmt::Display for Completed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Completed::AllCompleted => "all branches completed",
            Completed::MinSuccessfulReached => "enough branches succeeded",
            Completed::FailureToleranceExceeded => "more branches failed than tolerated",
        })
    }
}

/// What a `map!`/`parallel!` evaluates to: each branch's outcome in input order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch<T> {
    outcomes: Vec<Outcome<T>>,
    completed: Completed,
}

impl<T> Batch<T> {
    /// Every branch's outcome, in input order.
    pub fn outcomes(&self) -> &[Outcome<T>] {
        &self.outcomes
    }

    /// Why the batch ended.
    pub fn completed(&self) -> Completed {
        self.completed
    }

    /// How many branches succeeded.
    pub fn succeeded_count(&self) -> usize {
        self.outcomes.iter().filter(|o| matches!(o, Outcome::Succeeded(_))).count()
    }

    /// How many branches failed.
    pub fn failed_count(&self) -> usize {
        self.outcomes.iter().filter(|o| matches!(o, Outcome::Failed(_))).count()
    }

    /// The values of the branches that succeeded, with their indexes, in input order.
    pub fn succeeded(&self) -> Vec<(usize, &T)> {
        self.outcomes.iter().enumerate().filter_map(|(i, o)| Some((i, o.value()?))).collect()
    }

    /// Every value in input order, or the first failure (in input order) if a branch failed or
    /// did not run to its end.
    pub fn into_result(self) -> Result<Vec<T>, StepError> {
        self.outcomes
            .into_iter()
            .enumerate()
            .map(|(i, outcome)| match outcome {
                Outcome::Succeeded(value) => Ok(value),
                Outcome::Failed(error) => Err(error),
                Outcome::NotStarted => Err(StepError::terminal(format!("branch {i} did not start"))),
                Outcome::Cancelled => Err(StepError::terminal(format!("branch {i} was cancelled"))),
            })
            .collect()
    }

    /// Builds a batch (for tests of code that takes one).
    pub fn new(outcomes: Vec<Outcome<T>>, completed: Completed) -> Self {
        Batch { outcomes, completed }
    }
}

/// Decides, from the outcomes so far, whether the batch is done.
pub(crate) fn decide<T>(options: &BatchOptions, outcomes: &[Option<Outcome<T>>]) -> Option<Completed> {
    let total = outcomes.len();
    let finished = outcomes.iter().filter(|o| o.is_some()).count();
    let succeeded = outcomes.iter().filter(|o| matches!(o, Some(Outcome::Succeeded(_)))).count();
    let failed = outcomes.iter().filter(|o| matches!(o, Some(Outcome::Failed(_)))).count();
    match options.completion {
        Completion::MinSuccessful(n) if succeeded >= n => return Some(Completed::MinSuccessfulReached),
        Completion::ToleratedFailures(n) if failed > n => return Some(Completed::FailureToleranceExceeded),
        Completion::ToleratedFailurePercentage(p) if total > 0 && failed as f64 * 100.0 / total as f64 > p => {
            return Some(Completed::FailureToleranceExceeded);
        }
        _ => {}
    }
    (finished == total).then_some(Completed::AllCompleted)
}

/// A `map!` whose branches are child workflows, as stored with the point between wake-ups:
/// the items not started yet (so the state shrinks as the batch goes), the branches running,
/// and the outcomes so far.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChildBatch<I, T> {
    /// The items whose children have not started, with their indexes.
    pub pending: std::collections::VecDeque<(usize, I)>,
    /// The indexes of the children running.
    pub running: Vec<usize>,
    /// The outcome of every branch that ended, by index.
    pub outcomes: Vec<Option<Outcome<T>>>,
    /// How the batch runs.
    pub options: BatchOptions,
}

/// The items of a `map!`, stored with the point while its branches run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchItems<I> {
    /// The items, in input order.
    pub items: Vec<I>,
    /// How the batch runs.
    pub options: BatchOptions,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(spec: &str) -> Vec<Option<Outcome<u8>>> {
        spec.chars()
            .map(|c| match c {
                's' => Some(Outcome::Succeeded(1)),
                'f' => Some(Outcome::Failed(StepError::retryable("no"))),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn policies_decide_as_documented() {
        let all = BatchOptions::new();
        assert_eq!(decide(&all, &outcomes("sf.")), None);
        assert_eq!(decide(&all, &outcomes("sff")), Some(Completed::AllCompleted));
        assert_eq!(decide(&all, &outcomes("")), Some(Completed::AllCompleted), "an empty batch is done at once");
        let two = BatchOptions::new().completion(Completion::min_successful(2));
        assert_eq!(decide(&two, &outcomes("sf..")), None);
        assert_eq!(decide(&two, &outcomes("s.s.")), Some(Completed::MinSuccessfulReached));
        assert_eq!(decide(&two, &outcomes("sff")), Some(Completed::AllCompleted), "two can no longer succeed");
        let one = BatchOptions::new().completion(Completion::tolerated_failures(1));
        assert_eq!(decide(&one, &outcomes("f..")), None);
        assert_eq!(decide(&one, &outcomes("f.f")), Some(Completed::FailureToleranceExceeded));
        let pct = BatchOptions::new().completion(Completion::tolerated_failure_percentage(25.0));
        assert_eq!(decide(&pct, &outcomes("f...")), None, "25 % is tolerated");
        assert_eq!(decide(&pct, &outcomes("ff..")), Some(Completed::FailureToleranceExceeded));
        assert!(BatchOptions::new().max_concurrency(0).check().is_err());
        assert!(BatchOptions::new().completion(Completion::tolerated_failure_percentage(101.0)).check().is_err());
    }
}
