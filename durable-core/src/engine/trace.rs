//! History events as `tracing` events, in business terms.

use std::time::Duration;

use crate::store::{EventKind, HistoryEvent};

/// Emits one `tracing` event for a committed history event of `workflow`'s execution `id`.
/// Called inside the execution's span, which carries both as fields.
pub(crate) fn history(workflow: &str, id: &str, event: &HistoryEvent) {
    let point = event.point.as_deref().unwrap_or("?");
    let detail = event.detail.as_deref().unwrap_or("");
    let at = match (&event.file, event.line) {
        (Some(file), Some(line)) => format!(" at {file}:{line}"),
        _ => String::new(),
    };
    let attempt = event.attempt.unwrap_or(1);
    match event.kind {
        EventKind::ExecutionStarted => tracing::info!("{workflow} {id} started"),
        EventKind::StepStarted => tracing::info!("{workflow} {id}: step {point} started (attempt {attempt})"),
        EventKind::StepSucceeded => tracing::info!("{workflow} {id}: step {point} succeeded ({detail})"),
        EventKind::StepFailed => tracing::warn!("{workflow} {id}: step {point} failed{at} ({detail})"),
        EventKind::WaitStarted => tracing::info!("{workflow} {id} waiting {detail}"),
        EventKind::WaitSucceeded => tracing::info!("{workflow} {id}: timer {point} fired ({detail})"),
        EventKind::EventReceived => tracing::info!("{workflow} {id} received event {point}"),
        EventKind::EventRejected => {
            tracing::warn!("{workflow} {id} refused event {point}: {detail}; still waiting for it")
        }
        EventKind::EventTimedOut => tracing::info!("{workflow} {id}: no event {point} arrived in time ({detail})"),
        EventKind::Suspended => tracing::info!("{workflow} {id} suspended: {detail}"),
        EventKind::Resumed => tracing::info!("{workflow} {id} resumed {detail}"),
        EventKind::ExecutionSucceeded => tracing::info!("{workflow} {id} succeeded"),
        EventKind::ExecutionFailed => tracing::warn!("{workflow} {id} failed: {detail}"),
        EventKind::ExecutionCancelled => tracing::info!("{workflow} {id} cancelled"),
    }
}

/// A duration as people write it: `250ms`, `4s`, `3m 5s`, `2h`, `365d`.
pub(crate) fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (days, hours, mins, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    let parts = match (days, hours, mins) {
        (0, 0, 0) if secs == 0 => return format!("{}ms", duration.as_millis()),
        (0, 0, 0) => vec![(s, "s")],
        (0, 0, _) => vec![(mins, "m"), (s, "s")],
        (0, _, _) => vec![(hours, "h"), (mins, "m")],
        _ => vec![(days, "d"), (hours, "h")],
    };
    let shown: Vec<String> = parts.iter().filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n}{unit}")).collect();
    shown.join(" ")
}

#[cfg(test)]
mod tests {
    use super::human;
    use std::time::Duration;

    #[test]
    fn durations_read_like_people_write_them() {
        let cases = [(0, "0ms"), (250, "250ms"), (4_000, "4s"), (185_000, "3m 5s"), (7_200_000, "2h")];
        for (millis, shown) in cases {
            assert_eq!(human(Duration::from_millis(millis)), shown);
        }
        assert_eq!(human(Duration::from_secs(365 * 86_400 + 3_600)), "365d 1h");
    }
}
