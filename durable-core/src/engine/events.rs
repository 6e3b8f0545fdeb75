//! Delivering events: at once to an execution that waits for them, else through its inbox.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::de::IgnoredAny;

use super::host::Staged;
use super::run::run_claimed;
use super::{Delivery, Engine, EngineError};
use crate::store::{ExecutionRecord, Status, Store, StoreError};

/// See [`Engine::send_event_json`].
pub(super) async fn send<S: Store>(
    engine: &Engine<S>,
    id: &str,
    name: &str,
    payload: &str,
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
    if let Some(delivery) = deliver_now(engine, record, name, payload).await? {
        return Ok(delivery);
    }
    let shared = &engine.shared;
    match shared.store.send_event(id, name, payload, shared.clock.now()).await {
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

/// Whether `record` sits at the `wait!` for event `name`, with nobody running it.
fn waits_for(record: &ExecutionRecord, name: &str, now: crate::Timestamp) -> bool {
    record.status == Status::Suspended
        && record.waiting_for.as_deref() == Some(name)
        && record.lease.as_ref().is_none_or(|lease| lease.until <= now)
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
    if !waits_for(&record, name, now) || shared.registry.get(&record.workflow).is_none() {
        return Ok(None);
    }
    let owner = shared.name.clone();
    let Some(claimed) = shared.store.claim(&record.id, &owner, now, shared.lease).await? else {
        return Ok(None);
    };
    // Status and awaited event change only with the version.
    if claimed.version != record.version {
        let _ = shared.store.release_lease(&record.id, &owner).await;
        return Ok(None);
    }
    let staged = Staged { name: name.to_owned(), payload: payload.to_owned() };
    let stop = Arc::new(AtomicBool::new(false));
    let (_, report) = run_claimed(Arc::clone(shared), owner, claimed, Some(staged), stop).await;
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
