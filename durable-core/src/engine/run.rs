//! One run of one claimed execution: from its stored record to its next suspension, its end,
//! or a stop.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};
use std::time::Duration;

use tracing::Instrument;

use super::Shared;
use super::host::{Env, Report, RunHost, Staged, StepSpan};
use super::lease::HeldLease;
use super::registry::{ErasedWorkflow, RawEntry, RawExit};
use super::trace::human;
use crate::host::Ctx;
use crate::store::{ExecutionRecord, Status, Store, StoreError};
use crate::workflow::Snapshot;

/// How long a worker leaves an execution it cannot run before trying it again; doubled at each
/// failure of the same version, up to [`PARK_MAX`].
const PARK_BASE: Duration = Duration::from_secs(60);
const PARK_MAX: Duration = Duration::from_secs(3_600);

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The execution finished with this status.
    Finished(Status),
    /// It waits, persisted, with no lease.
    Suspended,
    /// The run stopped early (a failed commit, a lost lease, a shutdown, a delivered event).
    Stopped,
    /// It cannot run here; it was left untouched under this worker's lease for a while.
    Parked,
}

/// Runs the claimed `record` (which carries its new lease), with `staged` handed in by a sender.
pub(crate) async fn run_claimed<S: Store>(
    shared: Arc<Shared<S>>,
    record: ExecutionRecord,
    staged: Option<Staged>,
    stop: Arc<AtomicBool>,
) -> (Ended, Report) {
    let span = shared.subject(&record).span_on(record.lease.as_ref().map(|lease| lease.owner.as_str()));
    async move {
        let Some(lease) = record.lease.clone() else {
            tracing::error!("{}: a run was started without a lease; leaving it", record.id);
            return (Ended::Stopped, Report::default());
        };
        let Some(entered) = shared.active.enter(&record.id, lease) else {
            return (Ended::Stopped, Report::default());
        };
        let held = Arc::clone(&entered.held);
        let Some(workflow) = shared.registry.get(&record.workflow).cloned() else {
            let message = format!("workflow `{}` is not registered with this worker", record.workflow);
            park(&shared, &held, &record, message).await;
            return (Ended::Parked, Report::default());
        };
        let _running = shared.running_guard();
        let env = Env {
            store: Arc::clone(&shared.store),
            committer: shared.committer.clone(),
            clock: Arc::clone(&shared.clock),
            lease: Arc::clone(&held),
            lease_length: shared.lease,
            stop,
            default_retry: shared.default_retry(&record.workflow),
            observers: Arc::clone(&shared.observers),
        };
        let mut host = RunHost::new(env, workflow.facts(), record, staged);
        if let Err(error) = host.prepare().await {
            tracing::warn!(%error, "cannot load the inbox of {}; leaving it for later", host.record().id);
            host.release().await;
            return (Ended::Stopped, std::mem::take(&mut host.report));
        }
        host.started();
        let ended = match drive(&shared, &*workflow, &mut host, &held).await {
            None => Ended::Stopped,
            Some(Ok(exit)) => settle(&shared, &held, &mut host, exit).await,
            Some(Err(message)) => panicked(&shared, &mut host, &message).await,
        };
        if matches!(ended, Ended::Finished(_) | Ended::Suspended) {
            shared.clear_problem(&host.record().id);
        }
        if matches!(ended, Ended::Finished(_)) {
            shared.finished.notify_waiters();
        }
        drop(entered);
        (ended, std::mem::take(&mut host.report))
    }
    .instrument(span)
    .await
}

/// Commits what the run's exit means.
async fn settle<S: Store>(shared: &Shared<S>, held: &HeldLease, host: &mut RunHost<S>, exit: RawExit) -> Ended {
    match exit {
        RawExit::Done { output, error } => match host.complete(output, error).await {
            Some(status) => Ended::Finished(status),
            None => {
                host.release().await;
                Ended::Stopped
            }
        },
        RawExit::Suspended if host.suspend().await => Ended::Suspended,
        RawExit::Suspended => {
            host.release().await;
            Ended::Stopped
        }
        RawExit::Interrupted => {
            if !host.report.released {
                host.release().await;
            }
            Ended::Stopped
        }
        RawExit::BadState(error) => {
            park(shared, held, host.record(), error.to_string()).await;
            Ended::Parked
        }
    }
}

/// Commits how a run that panicked goes on (see [`RunHost::panicked`]); a panic is a bug in the
/// workflow's code, so it is reported as an error and tried again later, with a pause that
/// doubles at each panic in a row.
async fn panicked<S: Store>(shared: &Shared<S>, host: &mut RunHost<S>, message: &str) -> Ended {
    let before = host.record().clone();
    tracing::error!("{} {} panicked: {message}", before.workflow, before.id);
    let mut parked = false;
    let park = || {
        parked = true;
        let strikes = shared.note_problem(&before, &format!("its run panicked: {message}"));
        let factor = 2u32.saturating_pow(strikes.saturating_sub(1).min(16));
        PARK_BASE.saturating_mul(factor).min(PARK_MAX)
    };
    if host.panicked(message, park).await {
        if parked {
            shared.problem_moved(&before.id, host.record().version);
        }
    } else {
        host.release().await;
    }
    Ended::Parked
}

/// Polls a run, turning a panic in it into `Err` with the panic's message, inside the span of
/// the step attempt running (if any).
struct CatchPanic<F>(F, StepSpan);

impl<F: Future + Unpin> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let step = self.1.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let _entered = step.as_ref().map(tracing::Span::enter);
        // The run is dropped after a panic, never polled again, and what it shared with the host
        // is only read to commit a suspension: nothing broken is observed.
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut self.0).poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|message| (*message).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                Poll::Ready(Err(message))
            }
        }
    }
}

/// Runs the workflow, renewing the lease while it runs. `None` if the lease was lost: the run
/// was dropped where it stood, as a crash would, since another worker may run it now.
/// `Some(Err(message))` if the run panicked.
async fn drive<S: Store>(
    shared: &Shared<S>,
    workflow: &dyn ErasedWorkflow,
    host: &mut RunHost<S>,
    held: &HeldLease,
) -> Option<Result<RawExit, String>> {
    let record = host.record();
    let (id, input, snapshot) = (record.id.clone(), record.input.clone(), record.snapshot.clone());
    let ctx = Ctx::new(id.clone(), workflow.facts().name, Arc::clone(&shared.clock));
    let entry = match &snapshot {
        None => RawEntry::Start(&input),
        Some(s) => RawEntry::Resume(Snapshot { fingerprint: &s.fingerprint, state: &s.state }),
    };
    let step_span = host.step_span();
    let mut run = CatchPanic(workflow.run(&ctx, host, entry), step_span);
    let every = (shared.lease / 3).max(Duration::from_millis(10));
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            exit = &mut run => return Some(exit),
            _ = renew.tick() => {
                match held.renew(&*shared.store, &id, &shared.clock, shared.lease).await {
                    Ok(()) => {}
                    Err(error @ (StoreError::LeaseLost { .. } | StoreError::NotFound(_))) => {
                        tracing::error!(%error, "{id}: lost its lease while running; stopping at once");
                        return None;
                    }
                    Err(error) => tracing::warn!(%error, "{id}: cannot renew its lease; will try again"),
                }
            }
        }
    }
}

/// Leaves an execution that cannot run here untouched: reports why, and keeps it leased to
/// `owner` for a while (doubling at each failure) so that no worker spins on it, while another
/// build or a fixed record gets its turn when the lease ends.
pub(crate) async fn park<S: Store>(shared: &Shared<S>, held: &HeldLease, record: &ExecutionRecord, message: String) {
    let strikes = shared.note_problem(record, &message);
    let factor = 2u32.saturating_pow(strikes.saturating_sub(1).min(16));
    let pause = PARK_BASE.saturating_mul(factor).min(PARK_MAX);
    tracing::error!(
        "{} {} cannot run and was left untouched: {message}; trying it again in {}",
        record.workflow,
        record.id,
        human(pause)
    );
    match held.renew(&*shared.store, &record.id, &shared.clock, pause).await {
        Ok(()) => {
            let mut parked = shared.parked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            parked.insert(record.id.clone(), held.token());
        }
        Err(error) => tracing::warn!(%error, "could not hold {} aside", record.id),
    }
}

/// Gives up the leases of the executions this engine holds aside (see [`park`]), so that
/// another worker (of a build that can run them) may take them at once. Called when `worker`
/// shuts down.
pub(crate) async fn release_parked<S: Store>(shared: &Shared<S>, worker: &str) {
    let parked: Vec<(String, crate::store::LeaseToken)> =
        shared.parked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain().collect();
    for (id, token) in parked {
        if let Err(error) = shared.store.release_lease(&id, &token).await {
            tracing::debug!(%error, worker, "{id} was held aside; its lease could not be given up (it may have moved on)");
        }
    }
}
