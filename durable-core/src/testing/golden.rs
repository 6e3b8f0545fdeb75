//! Golden states: the snapshot equivalent of replay tests.
//!
//! Executions live longer than a build. Before deploying changed code, check that it can still
//! resume the executions in flight: keep one stored state per point of a workflow (a *golden
//! state*, written from a real run with [`Harness::save_golden_states`](super::Harness::save_golden_states))
//! in the repository, and let [`check_golden_states`] in `cargo test` resume each with the
//! current build. A renamed local, a stored local whose type changed so that the old state
//! no longer decodes, or a removed point fails the check, naming the point.
//!
//! ```
//! use durable_core::prelude::*;
//! use durable_core::testing::{Harness, check_golden_states};
//!
//! #[durable]
//! async fn order(id: String) -> Result<String, WorkflowError> {
//!     let total = step!("price", Ok::<u64, StepError>(id.len() as u64))?;
//!     let paid: u64 = wait!("payment", event);
//!     Ok(format!("{id}: {paid} of {total}"))
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir()?; // in a real project: a folder of the repository
//! let mut harness = Harness::new().register(order);
//! harness.start(order, "o-1", "o-1".to_owned()).await?;
//! harness.send_event("o-1", "payment", &3).await?;
//! // After `price`, while waiting at `payment`, after `payment`.
//! assert_eq!(harness.save_golden_states("o-1", dir.path()).await?, 3);
//!
//! // Later, in `cargo test`, with whatever the code has become:
//! assert_eq!(check_golden_states(order, dir.path()).await?, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::callback::{CallbackPoll, CallbackWait};
use crate::host::{BoxFuture, Ctx, EventPoll, Gate, Host, Pause};
use crate::step::{StepError, StepPolicy};
use crate::time::{SystemClock, Timestamp};
use crate::workflow::{Entry, Exit, PointFacts, Snapshot, Workflow};

/// One golden state, as a file `<dir>/<workflow>/<point>.json` holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoldenState {
    /// The workflow.
    pub workflow: String,
    /// Where the state was stored: the point's name, with `:waiting` (and the like) for a state
    /// stored while a wait waits; the key of the state's JSON.
    pub point: String,
    /// The layout fingerprint of the build that stored it.
    pub fingerprint: String,
    /// The stored state, as JSON.
    pub state: String,
}

/// Why golden states could not be written or do not resume.
#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    /// The execution could not be read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The execution's workflow was never registered with the store.
    #[error("workflow `{0}` is not registered")]
    Unregistered(String),
    /// A file could not be read or written.
    #[error("golden state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file is not a golden state.
    #[error("golden state {path} is not one: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// This build cannot resume a golden state.
    #[error(
        "this build of `{workflow}` cannot resume the state stored after `{point}` ({path}): {message}; \
         executions waiting there would be stuck after a deploy"
    )]
    Incompatible {
        /// The workflow.
        workflow: String,
        /// The point.
        point: String,
        /// The file.
        path: PathBuf,
        /// What the build said.
        message: String,
    },
}

/// Writes `states` into `dir`, one file per workflow and point (a later state at the same
/// point replaces an earlier one). Returns how many files were written.
pub(crate) fn save(dir: &Path, states: &[GoldenState]) -> Result<usize, GoldenError> {
    let mut written = std::collections::BTreeSet::new();
    for golden in states {
        let folder = dir.join(file_name(&golden.workflow));
        std::fs::create_dir_all(&folder).map_err(|source| GoldenError::Io { path: folder.clone(), source })?;
        let path = folder.join(format!("{}.json", file_name(&golden.point)));
        let text = serde_json::to_string_pretty(golden).unwrap_or_default() + "\n";
        std::fs::write(&path, text).map_err(|source| GoldenError::Io { path: path.clone(), source })?;
        written.insert(path);
    }
    Ok(written.len())
}

/// Resumes each golden state of `workflow` in `dir` with this build, up to its first call to
/// the runtime (a checkpoint, a step, a wait): the state is decoded as a resumed run decodes it,
/// and the code between the point and the next one runs (step bodies do not). Returns how many
/// states were checked; fails at the first that this build cannot resume.
pub async fn check_golden_states<W: Workflow>(workflow: W, dir: impl AsRef<Path>) -> Result<usize, GoldenError> {
    let name = workflow.facts().name;
    let folder = dir.as_ref().join(file_name(name));
    let entries = std::fs::read_dir(&folder).map_err(|source| GoldenError::Io { path: folder.clone(), source })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|entry| Some(entry.ok()?.path())).collect();
    paths.retain(|path| path.extension().is_some_and(|ext| ext == "json"));
    paths.sort();
    for path in &paths {
        let text = std::fs::read_to_string(path).map_err(|source| GoldenError::Io { path: path.clone(), source })?;
        let golden: GoldenState = serde_json::from_str(&text)
            .map_err(|error| GoldenError::Malformed { path: path.clone(), message: error.to_string() })?;
        let incompatible = |message: String| GoldenError::Incompatible {
            workflow: name.to_owned(),
            point: golden.point.clone(),
            path: path.clone(),
            message,
        };
        let point = golden.point.split(':').next().unwrap_or_default();
        if workflow.facts().point(point).is_none() {
            return Err(incompatible("the point no longer exists".to_owned()));
        }
        let ctx = Ctx::new("golden-state-check", name, std::sync::Arc::new(SystemClock));
        let snapshot = Snapshot { fingerprint: &golden.fingerprint, state: &golden.state };
        let mut probe = Probe;
        if let Exit::BadState(error) = workflow.run(&ctx, &mut probe, Entry::Resume(snapshot)).await {
            return Err(incompatible(error.to_string()));
        }
    }
    Ok(paths.len())
}

/// A name safe as a file name: letters, digits, `-` and `_` kept, anything else `_`.
fn file_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// A host that stops the run at its first call that would persist or wait.
struct Probe;

impl Host for Probe {
    fn checkpoint<'a>(&'a mut self, _: &'static PointFacts, _: String) -> BoxFuture<'a, Result<(), Pause>> {
        Box::pin(async { Err(Pause::Interrupt) })
    }

    fn step_begin<'a>(&'a mut self, _: &'static PointFacts, _: &'a StepPolicy) -> BoxFuture<'a, Result<Gate, Pause>> {
        Box::pin(async { Err(Pause::Interrupt) })
    }

    fn step_end<'a>(
        &'a mut self,
        _: &'static PointFacts,
        _: &'a StepPolicy,
        _: Result<(), StepError>,
    ) -> BoxFuture<'a, Result<Result<(), StepError>, Pause>> {
        Box::pin(async { Err(Pause::Interrupt) })
    }

    fn sleep_start(&mut self, _: &'static PointFacts, _: Duration) -> Timestamp {
        Timestamp::from_millis(u64::MAX)
    }

    fn sleep_due(&mut self, _: &'static PointFacts, _: Timestamp) -> bool {
        false
    }

    fn event_start(&mut self, _: &'static PointFacts, _: Option<Duration>) -> Option<Timestamp> {
        None
    }

    fn event_poll(&mut self, _: &'static PointFacts, _: Option<Timestamp>) -> EventPoll {
        EventPoll::Pending
    }

    fn event_rejected(&mut self, _: &'static PointFacts, _: String) {}

    fn child_start(
        &mut self,
        _: &'static PointFacts,
        _: &'static str,
        _: Option<String>,
        _: String,
        _: Vec<(String, String)>,
    ) -> String {
        String::new()
    }

    fn callback_start(&mut self, _: &'static PointFacts, _: Option<Duration>, _: Option<Duration>) -> CallbackWait {
        let now = Timestamp::from_millis(0);
        CallbackWait { token: String::new(), created: now, deadline: None, heartbeat: None, submit_failed: None }
    }

    fn callback_poll(&mut self, _: &'static PointFacts, _: &CallbackWait) -> CallbackPoll {
        CallbackPoll::Pending
    }

    fn batch_start(&mut self, _: &'static PointFacts, _: usize, _: String) {}

    fn branch_results(&mut self, _: &'static PointFacts) -> Vec<(usize, String)> {
        Vec::new()
    }

    fn branches_end<'a>(
        &'a mut self,
        _: &'static PointFacts,
        _: Vec<(usize, String, String)>,
    ) -> BoxFuture<'a, Result<(), Pause>> {
        Box::pin(async { Err(Pause::Interrupt) })
    }

    fn batch_end<'a>(&'a mut self, _: &'static PointFacts) -> BoxFuture<'a, Result<(), Pause>> {
        Box::pin(async { Err(Pause::Interrupt) })
    }

    fn poll_scheduled(&mut self, _: &'static PointFacts, _: u32, _: Duration) -> Timestamp {
        Timestamp::from_millis(u64::MAX)
    }

    fn poll_due(&mut self, _: &'static PointFacts, _: Timestamp) -> bool {
        false
    }

    fn batch_child_start(
        &mut self,
        _: &'static PointFacts,
        _: &'static str,
        _: usize,
        _: String,
        _: Vec<(String, String)>,
    ) {
    }

    fn batch_children_ended(&mut self, _: &'static PointFacts) -> Vec<(String, String)> {
        Vec::new()
    }

    fn batch_note(&mut self, _: &'static PointFacts, _: String) {}

    fn batch_wait(&mut self, _: &'static PointFacts) {}

    fn child_wait(&mut self, _: &'static PointFacts, _: &str) {}

    fn child_poll(&mut self, _: &'static PointFacts, _: &str) -> EventPoll {
        EventPoll::Pending
    }
}
