//! History events as `tracing` events, in business terms.
//!
//! Every event of an execution is emitted inside a span named `execution` whose fields name it:
//! `workflow`, `execution_id`, and, for a workflow with business keys
//! (`#[durable(key = order_id)]`), `keys` (`order_id=o-42`, all of them) and `business_key`
//! (the first key's value, `o-42`). Span fields must be known when the program is compiled, so
//! keys cannot be fields of their own (`order_id = ..`) in a span shared by every workflow: one
//! text field holds them all, and the common single-key case gets a plain value to filter on.
//!
//! Each event carries its history fields (`event`, `point`, `file`, `line`, `attempt`) and a
//! message that reads as what happened to the business object: "order_workflow o-42 waiting
//! for event payment (timeout in 2d 0h)", "order_workflow o-42: step ship_order failed (attempt
//! 3 of 3): carrier did not answer in time; no attempt left".

use std::time::Duration;

use crate::facts::{key_values, keys_text};
use crate::store::{EventKind, HistoryEvent};
use crate::workflow::WorkflowFacts;

/// An execution as logs name it.
#[derive(Clone, Debug)]
pub(crate) struct Subject {
    workflow: String,
    id: String,
    keys: Vec<(String, String)>,
}

impl Subject {
    /// Execution `id` of `workflow`, whose business keys are read from `input` with `facts` (if
    /// the workflow is known here).
    pub(crate) fn new(workflow: &str, id: &str, facts: Option<&WorkflowFacts>, input: &str) -> Self {
        let keys = facts.map(|facts| key_values(facts.params, facts.keys, input)).unwrap_or_default();
        Subject { workflow: workflow.to_owned(), id: id.to_owned(), keys }
    }

    /// The execution's span outside a run (a start, an event sent, a cancel): every event about
    /// it is emitted inside.
    pub(crate) fn span(&self) -> tracing::Span {
        self.span_on(None)
    }

    /// The execution's span, for a run on `worker` (its name is a field of the span, so that
    /// every line the run logs says which worker wrote it).
    pub(crate) fn span_on(&self, worker: Option<&str>) -> tracing::Span {
        let (keys, business_key) = self.key_fields();
        let span = tracing::info_span!(
            "execution",
            workflow = %self.workflow,
            execution_id = %self.id,
            keys = keys.as_deref(),
            business_key,
            worker,
        );
        #[cfg(feature = "otel")]
        crate::telemetry::otel::continue_trace(&span, &self.id);
        span
    }

    /// The `keys` and `business_key` fields: all keys as text, and the first key's value.
    pub(crate) fn key_fields(&self) -> (Option<String>, Option<&str>) {
        let keys = (!self.keys.is_empty()).then(|| keys_text(&self.keys));
        (keys, self.keys.first().map(|(_, value)| value.as_str()))
    }

    /// `order_workflow o-42`, or `order_workflow e-7 (order_id=o-42)` when the keys say more
    /// than the id.
    pub(crate) fn name(&self) -> String {
        if self.keys.iter().all(|(_, value)| *value == self.id) {
            format!("{} {}", self.workflow, self.id)
        } else {
            format!("{} {} ({})", self.workflow, self.id, keys_text(&self.keys))
        }
    }
}

/// Emits `event` with its history fields at `level`.
macro_rules! emit {
    ($level:ident, $event:expr, $message:expr) => {
        tracing::$level!(
            event = $event.kind.as_str(),
            point = $event.point.as_deref(),
            file = $event.file.as_deref(),
            line = $event.line,
            attempt = $event.attempt,
            worker = $event.worker.as_deref(),
            "{}",
            $message
        )
    };
}

/// Emits one `tracing` event for a committed history event of `who` (a [`Subject::name`]).
/// Called inside the execution's span.
pub(crate) fn history(who: &str, event: &HistoryEvent) {
    let message = message(who, event);
    match event.kind {
        EventKind::StepFailed | EventKind::EventRejected | EventKind::ExecutionFailed => emit!(warn, event, message),
        _ => emit!(info, event, message),
    }
}

/// What `event` means, in business terms.
pub(crate) fn message(who: &str, event: &HistoryEvent) -> String {
    let point = event.point.as_deref().unwrap_or("?");
    let detail = event.detail.as_deref().unwrap_or("");
    let attempt = event.attempt.unwrap_or(1);
    match event.kind {
        EventKind::ExecutionStarted if detail.is_empty() => format!("{who} started"),
        EventKind::ExecutionStarted => format!("{who} started, {detail}"),
        EventKind::StepStarted => format!("{who}: step {point} started (attempt {attempt})"),
        EventKind::StepSucceeded => format!("{who}: step {point} succeeded ({detail})"),
        EventKind::StepFailed => match detail.split_once(": ") {
            Some((attempts, why)) if attempts.starts_with("attempt ") => {
                format!("{who}: step {point} failed ({attempts}): {why}")
            }
            _ => format!("{who}: step {point} failed (attempt {attempt}): {detail}"),
        },
        EventKind::WaitStarted => format!("{who} waiting {detail}"),
        EventKind::WaitSucceeded => format!("{who}: timer {point} fired ({detail})"),
        EventKind::EventReceived => format!("{who} received event {point} ({detail})"),
        EventKind::EventRejected => format!("{who} refused event {point}: {detail}; still waiting for it"),
        EventKind::EventTimedOut => format!("{who}: no event {point} arrived in time ({detail})"),
        EventKind::Suspended => format!("{who} suspended: {detail}"),
        EventKind::Resumed => match &event.point {
            Some(point) => format!("{who} resumed {detail} (last checkpoint: {point})"),
            None => format!("{who} resumed {detail}"),
        },
        EventKind::ExecutionSucceeded => format!("{who} succeeded"),
        EventKind::ExecutionFailed => match (&event.point, &event.file, event.line) {
            (Some(point), Some(file), Some(line)) => format!("{who} failed at {point} ({file}:{line}): {detail}"),
            _ => format!("{who} failed: {detail}"),
        },
        EventKind::ChildStarted => format!("{who} started child workflow {detail} at {point}"),
        EventKind::ChildEnded => format!("{who}: child workflow {detail} (at {point})"),
        EventKind::BranchEnded => format!("{who}: {point} branch {detail}"),
        EventKind::ExecutionCancelled if detail.is_empty() => format!("{who} cancelled"),
        EventKind::ExecutionCancelled => format!("{who} cancelled {detail}"),
        EventKind::ExecutionRedriven => format!("{who} redriven {detail}"),
        EventKind::ExecutionWoken => format!("{who} woken early {detail}"),
    }
}

/// A duration as people write it, to the two largest units: `250ms`, `4s`, `3m 5s`, `2h 0m`,
/// `365d 1h`.
pub(crate) fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (days, hours, mins, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, mins) {
        (0, 0, 0) if secs == 0 => format!("{}ms", duration.as_millis()),
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{mins}m {s}s"),
        (0, _, _) => format!("{hours}h {mins}m"),
        _ => format!("{days}d {hours}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::{Subject, human, message};
    use crate::store::{EventKind, HistoryEvent};
    use crate::time::Timestamp;
    use std::time::Duration;

    #[test]
    fn durations_read_like_people_write_them() {
        let cases = [(0, "0ms"), (250, "250ms"), (4_000, "4s"), (60_000, "1m 0s"), (185_000, "3m 5s")];
        for (millis, shown) in cases {
            assert_eq!(human(Duration::from_millis(millis)), shown);
        }
        assert_eq!(human(Duration::from_secs(7_200)), "2h 0m");
        assert_eq!(human(Duration::from_secs(365 * 86_400 + 3_600)), "365d 1h");
    }

    #[test]
    fn messages_speak_of_the_business_object() {
        let at = Timestamp::from_millis(0);
        let failed = HistoryEvent::new(at, EventKind::StepFailed)
            .with_point("ship_order", "src/order.rs", 57)
            .with_attempt(3)
            .with_detail("attempt 3 of 3: carrier did not answer in time; no attempt left");
        assert_eq!(
            message("order_workflow o-42", &failed),
            "order_workflow o-42: step ship_order failed (attempt 3 of 3): carrier did not answer in time; \
             no attempt left"
        );
        let resumed = HistoryEvent::new(at, EventKind::Resumed).with_point("payment", "src/order.rs", 50);
        let resumed = resumed.with_detail("after 2h 0m");
        let expected = "order_workflow o-42 resumed after 2h 0m (last checkpoint: payment)";
        assert_eq!(message("order_workflow o-42", &resumed), expected);
    }

    #[test]
    fn subjects_show_keys_that_differ_from_the_id() {
        let same = Subject { workflow: "order".into(), id: "o-1".into(), keys: vec![("id".into(), "o-1".into())] };
        assert_eq!(same.name(), "order o-1");
        let other = Subject { keys: vec![("id".into(), "o-2".into())], ..same.clone() };
        assert_eq!(other.name(), "order o-1 (id=o-2)");
        assert_eq!(Subject { keys: Vec::new(), ..same }.name(), "order o-1");
    }
}
