//! Delivering events: at once to an execution that waits for them, else through its inbox.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::de::IgnoredAny;

use super::host::Staged;
use super::run::run_claimed;
use super::{Delivery, Engine, EngineError};
use crate::store::{ExecutionRecord, Sent, Status, Store, StoreError};
use crate::workflow::PointKind;

/// See [`Engine::send_event_json`] and [`Engine::send_event_once`].
pub(super) async fn send<S: Store>(
    engine: &Engine<S>,
    id: &str,
    name: &str,
    payload: &str,
    key: Option<&str>,
) -> Result<Delivery, EngineError> {
    if let Err(error) = serde_json::from_str::<IgnoredAny>(payload) {
        let (id, event, message) = (id.to_owned(), name.to_owned(), error.to_string());
        return Err(EngineError::MalformedPayload { id, event, message });
    }
    engine.shared.register_facts().await;
    let record = engine.load(id).await?;
    if record.status.is_terminal() {
        return Err(EngineError::Finished { id: id.to_owned(), status: record.status });
    }
    check_event(engine, &record, name)?;
    let shared = &engine.shared;
    let now = shared.clock.now();
    if waits_for(&record, name) && record.wake_at.is_some_and(|deadline| deadline <= now) {
        let deadline = record.wake_at.unwrap_or(now);
        return Err(EngineError::DeadlinePassed { id: id.to_owned(), event: name.to_owned(), deadline });
    }
    // A keyed event always goes through the store, which remembers the key.
    if key.is_none()
        && let Some(delivery) = deliver_now(engine, record, name, payload).await?
    {
        return Ok(delivery);
    }
    match shared.store.send_keyed_event(id, name, payload, key, now).await {
        Ok(Sent::New(_)) => {
            shared.work.notify_one();
            Ok(Delivery::Queued)
        }
        Ok(Sent::Duplicate(_)) => Ok(Delivery::Duplicate),
        Err(StoreError::Terminal(_)) => {
            let status = engine.load(id).await.map_or(Status::Cancelled, |record| record.status);
            Err(EngineError::Finished { id: id.to_owned(), status })
        }
        Err(error) => Err(error.into()),
    }
}

/// See [`Engine::complete_callback`]: the execution was seen waiting for completion event
/// `name` of one of its callbacks.
pub(super) async fn send_callback<S: Store>(
    engine: &Engine<S>,
    id: &str,
    name: &str,
    payload: &str,
) -> Result<Delivery, EngineError> {
    engine.shared.register_facts().await;
    let record = engine.load(id).await?;
    let shared = &engine.shared;
    let now = shared.clock.now();
    // Without heartbeats the wake-up time is the timeout; with them a heartbeat since may have
    // moved the window, which the wait itself decides on.
    let beats = shared.store.inbox(id).await?.into_iter().any(|event| event.name.starts_with("heartbeat:"));
    if waits_for(&record, name) && !beats && record.wake_at.is_some_and(|deadline| deadline <= now) {
        let deadline = record.wake_at.unwrap_or(now);
        return Err(EngineError::DeadlinePassed { id: id.to_owned(), event: "callback".to_owned(), deadline });
    }
    if let Some(delivery) = deliver_now(engine, record, name, payload).await? {
        return Ok(delivery);
    }
    match shared.store.send_event(id, name, payload, now).await {
        Ok(_) => {
            shared.work.notify_one();
            Ok(Delivery::Queued)
        }
        Err(StoreError::Terminal(_)) => {
            let status = engine.load(id).await.map_or(Status::Cancelled, |record| record.status);
            Err(EngineError::Finished { id: id.to_owned(), status })
        }
        Err(error) => Err(error.into()),
    }
}

/// Refuses an event that `record`'s workflow never waits for, when this engine knows the
/// workflow: it could never be consumed.
fn check_event<S: Store>(engine: &Engine<S>, record: &ExecutionRecord, name: &str) -> Result<(), EngineError> {
    let Some(workflow) = engine.shared.registry.get(&record.workflow) else { return Ok(()) };
    let events = workflow.facts().points.iter().filter(|point| point.kind == PointKind::Event);
    if events.clone().any(|point| point.name == name) {
        return Ok(());
    }
    Err(EngineError::UnknownEvent {
        id: record.id.clone(),
        workflow: record.workflow.clone(),
        event: name.to_owned(),
        known: events.map(|point| point.name.to_owned()).collect(),
    })
}

/// Whether `record` is suspended at the `wait!` for event `name`.
fn waits_for(record: &ExecutionRecord, name: &str) -> bool {
    record.status == Status::Suspended && record.waiting_for.as_deref() == Some(name)
}

/// Whether `record` sits at the `wait!` for event `name`, with nobody running it.
fn waits_unleased(record: &ExecutionRecord, name: &str, now: crate::Timestamp) -> bool {
    waits_for(record, name) && record.lease.as_ref().is_none_or(|lease| lease.until <= now)
}

/// Runs the execution with the event staged if it waits for it: `Some(Delivered)` once the
/// event is committed, an error if its payload does not decode (then nothing was stored), and
/// `None` if it could not be delivered at once (the caller queues it).
async fn deliver_now<S: Store>(
    engine: &Engine<S>,
    record: ExecutionRecord,
    name: &str,
    payload: &str,
) -> Result<Option<Delivery>, EngineError> {
    let shared = &engine.shared;
    let now = shared.clock.now();
    if !waits_unleased(&record, name, now) || shared.registry.get(&record.workflow).is_none() {
        return Ok(None);
    }
    // A state of another build: a worker of that build takes the event from the inbox.
    let runnable = |layout: &str| shared.layouts.iter().any(|(w, l)| *w == record.workflow && l == layout);
    if record.snapshot.as_ref().is_some_and(|snapshot| !runnable(&snapshot.fingerprint)) {
        return Ok(None);
    }
    let Some(claimed) = shared.store.claim(&record.id, &shared.name, &shared.clock, shared.lease).await? else {
        return Ok(None);
    };
    // Status and awaited event change only with the version.
    if claimed.version != record.version {
        if let Some(lease) = &claimed.lease {
            let _ = shared.store.release_lease(&record.id, &lease.token()).await;
        }
        return Ok(None);
    }
    let staged = Staged { name: name.to_owned(), payload: payload.to_owned() };
    let stop = Arc::new(AtomicBool::new(false));
    let (_, report) = run_claimed(Arc::clone(shared), claimed, Some(staged), stop).await;
    if let Some(message) = report.rejected {
        let subject = shared.subject(&record);
        subject.span().in_scope(|| {
            let who = subject.name();
            tracing::warn!(
                event = "EventRejected",
                point = name,
                "{who} refused event {name} from its sender: {message}; still waiting for it"
            );
        });
        let (id, event) = (record.id, name.to_owned());
        return Err(EngineError::EventRejected { id, event, message });
    }
    if report.delivered {
        shared.work.notify_one();
        return Ok(Some(Delivery::Delivered));
    }
    Ok(None)
}
