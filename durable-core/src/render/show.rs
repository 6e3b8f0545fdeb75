//! `durable show`: where an execution is or where it failed, the state it was in, and what
//! happened just before.

use std::fmt::Write as _;

use serde::Serialize;

use super::{ExecutionView, WIDE, clean, event_json, event_line, json_or_text, offset, pretty_json, utc};
use crate::store::{EventKind, HistoryEvent, InboxEvent, Status};
use crate::time::Timestamp;
use crate::workflow::PointKind;

/// Where an execution stands: the point it waits at, retries, or failed at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Position {
    /// `waiting`, `retrying`, `running`, `failed` (at the point: a step that failed for good)
    /// or `failed_after` (the workflow returned an error after the point).
    pub what: &'static str,
    /// The point's name, if the execution is at (or failed at) a point.
    pub point: Option<String>,
    /// What the point does, if the workflow's facts are known.
    pub kind: Option<PointKind>,
    /// The point's source file.
    pub file: Option<String>,
    /// The point's source line.
    pub line: Option<u32>,
    /// The step attempt concerned.
    pub attempt: Option<u32>,
    /// What it waits for (`waiting for event payment (timeout in 2d 0h)`), or the error.
    pub detail: Option<String>,
    /// When it is due again.
    pub due_at: Option<Timestamp>,
}

/// The state stored at one checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredState {
    /// The history event that recorded it.
    pub seq: u64,
    /// The point it was stored after.
    pub point: Option<String>,
    /// The point's source file.
    pub file: Option<String>,
    /// The point's source line.
    pub line: Option<u32>,
    /// The state.
    pub state: serde_json::Value,
    /// The state as stored (its fields in their order).
    #[serde(skip)]
    pub text: String,
}

impl StoredState {
    /// The state recorded by `event`, if it recorded one (an `ExecutionStarted`'s input is not
    /// a checkpoint).
    pub fn of(event: &HistoryEvent) -> Option<Self> {
        let state = event.state.as_deref().filter(|_| event.kind != EventKind::ExecutionStarted)?;
        // A callback's token is shown masked: whoever reads the state cannot complete it.
        let state = &crate::callback::mask_tokens(state);
        Some(StoredState {
            seq: event.seq,
            point: event.point.clone(),
            file: event.file.clone(),
            line: event.line,
            state: json_or_text(state),
            text: state.to_owned(),
        })
    }

    /// `after payment (src/order.rs:50)`.
    pub fn place(&self) -> String {
        let point = self.point.as_deref().unwrap_or("?");
        match (&self.file, self.line) {
            (Some(file), Some(line)) => format!("after {point} ({file}:{line})"),
            _ => format!("after {point}"),
        }
    }
}

/// Everything `durable show` says about an execution; `--json` prints it as it is.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The execution's id.
    pub id: String,
    /// Its workflow.
    pub workflow: String,
    /// Its business keys.
    pub keys: serde_json::Map<String, serde_json::Value>,
    /// Its status.
    pub status: Status,
    /// When it started.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Where it is or where it failed (nothing once it succeeded or was cancelled).
    pub position: Option<Position>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its input.
    pub input: serde_json::Value,
    /// Its output, once it has finished.
    pub output: Option<serde_json::Value>,
    /// The state of its last checkpoint (before the failure, for a failed execution).
    pub state: Option<StoredState>,
    /// The last events of its history, oldest first.
    pub last_events: Vec<serde_json::Value>,
    /// The events in its inbox that were not consumed (`seq`, `name`, `at`, `payload`). Once
    /// the execution has finished, none of them ever will be.
    pub inbox: Vec<serde_json::Value>,
    /// The execution that started it as a child workflow, if one did.
    pub parent: Option<String>,
    /// The child workflows it started (`id`, `workflow`, `status`), oldest first.
    pub children: Vec<serde_json::Value>,
    #[serde(skip)]
    last: Vec<HistoryEvent>,
}

impl Report {
    /// The report on `view`, with its `last` history events.
    pub fn new(view: &ExecutionView, last: usize) -> Self {
        let record = &view.record;
        let keys = view.keys().into_iter().map(|(key, value)| (key, serde_json::Value::String(value))).collect();
        let failure = view.history.iter().rev().find(|e| e.kind == EventKind::ExecutionFailed);
        let recent = view.history[view.history.len().saturating_sub(last)..].to_vec();
        Report {
            id: record.id.clone(),
            workflow: record.workflow.clone(),
            keys,
            status: record.status,
            created_at: record.created_at,
            updated_at: record.updated_at,
            position: position(view),
            error: failure.and_then(|event| event.detail.clone()),
            input: json_or_text(&record.input),
            output: record.output.as_deref().map(json_or_text),
            state: view.history.iter().rev().find_map(StoredState::of),
            last_events: recent.iter().map(event_json).collect(),
            inbox: view.inbox.iter().map(inbox_json).collect(),
            parent: view.record.parent.clone(),
            children: view
                .children
                .iter()
                .map(|child| serde_json::json!({ "id": child.id, "workflow": child.workflow, "status": child.status }))
                .collect(),
            last: recent,
        }
    }
}

/// Where `view`'s execution stands; see [`Position`].
fn position(view: &ExecutionView) -> Option<Position> {
    let record = &view.record;
    let (what, event) = match record.status {
        Status::Succeeded | Status::Cancelled => return None,
        Status::Failed => {
            let failed = view.history.iter().rposition(|e| e.kind == EventKind::ExecutionFailed);
            // A failure at a step names it; else the last point reached is where it failed.
            let at = failed.and_then(|i| view.history[..=i].iter().rev().find(|e| e.point.is_some()));
            let at_step = at.is_some_and(|e| e.kind == EventKind::ExecutionFailed);
            (if at_step { "failed" } else { "failed_after" }, at.or(failed.map(|i| &view.history[i])))
        }
        Status::Suspended => {
            let retrying = record.step.as_ref().is_some_and(|step| step.retry_at.is_some());
            let suspended = view.history.iter().rev().find(|e| e.kind == EventKind::Suspended);
            (if retrying { "retrying" } else { "waiting" }, suspended)
        }
        Status::Running => ("running", view.history.iter().rev().find(|e| e.point.is_some())),
    };
    let point = event.and_then(|e| e.point.clone());
    let kind = point.as_deref().and_then(|name| view.facts.as_ref()?.point(name)).map(|p| p.kind);
    let detail = match record.status {
        Status::Failed => view.history.iter().rev().find(|e| e.kind == EventKind::ExecutionFailed),
        _ => event,
    };
    Some(Position {
        what,
        kind,
        file: event.and_then(|e| e.file.clone()),
        line: event.and_then(|e| e.line),
        attempt: event.and_then(|e| e.attempt).or(record.step.as_ref().map(|step| step.attempt)),
        detail: detail.and_then(|e| e.detail.clone()),
        due_at: record.wake_at.filter(|_| !record.status.is_terminal()),
        point,
    })
}

impl Position {
    /// `step ship_order (src/order.rs:56), attempt 3`.
    pub fn place(&self) -> String {
        let mut place = match (&self.kind, &self.point) {
            (Some(kind), Some(point)) => format!("{kind} {point}"),
            (None, Some(point)) => point.clone(),
            (_, None) => "-".to_owned(),
        };
        if let (Some(file), Some(line)) = (&self.file, self.line) {
            let _ = write!(place, " ({file}:{line})");
        }
        if let Some(attempt) = self.attempt.filter(|_| self.kind != Some(PointKind::Event)) {
            let _ = write!(place, ", attempt {attempt}");
        }
        place
    }
}

/// `durable show`: the report on `view` as text, with its `last` history events.
pub fn show(view: &ExecutionView, last: usize) -> String {
    let report = Report::new(view, last);
    let start = view.start();
    let mut out = format!("{}\n", view.title());
    let line = |out: &mut String, label: &str, text: &str| {
        let _ = writeln!(out, "{:<14}{}", format!("{label}:"), clean(text, usize::MAX));
    };
    let why = report.position.as_ref().and_then(|p| p.detail.as_deref()).filter(|_| report.error.is_none());
    match why {
        Some(why) => line(&mut out, "status", &format!("{}, {why}", report.status)),
        None => line(&mut out, "status", report.status.as_str()),
    }
    if let Some(parent) = &view.record.parent {
        line(&mut out, "parent", parent);
    }
    // A state the latest build cannot read: say so, instead of looking like a healthy wait.
    if let (Some(snapshot), Some(latest)) = (&view.record.snapshot, &view.latest_layout)
        && !view.record.status.is_terminal()
        && snapshot.fingerprint != *latest
    {
        let text = format!(
            "{} written by an earlier build; the latest registered build has layout {latest} and cannot run \
             it: a worker of the build that wrote it must (see `durable versions`)",
            snapshot.fingerprint
        );
        line(&mut out, "layout", &text);
    }
    line(&mut out, "started", &utc(report.created_at));
    line(&mut out, "updated", &format!("{} ({})", utc(report.updated_at), offset(report.updated_at, start)));
    if let Some(position) = &report.position {
        let label = match position.what {
            "failed" => "failed at",
            "failed_after" => "failed after",
            "retrying" => "retrying",
            "running" => "running",
            _ => "waiting at",
        };
        line(&mut out, label, &position.place());
        if let Some(error) = &report.error {
            line(&mut out, "error", error);
        }
        if let Some(due) = position.due_at {
            line(&mut out, "due", &format!("{} ({})", utc(due), offset(due, start)));
        }
    }
    match &report.state {
        Some(state) => {
            let _ = writeln!(out, "state {}, event {}:", state.place(), state.seq);
            out.push_str(&indent(&pretty_json(&state.text), "  "));
        }
        None => line(&mut out, "input", &report.input.to_string()),
    }
    if let Some(output) = &view.record.output {
        let _ = writeln!(out, "output:");
        out.push_str(&indent(&pretty_json(output), "  "));
    }
    if !view.children.is_empty() {
        let _ = writeln!(out, "children, {}:", view.children.len());
        for child in &view.children {
            let _ = writeln!(out, "  {:<10} {} of {}", child.status.as_str(), clean(&child.id, WIDE), child.workflow);
        }
    }
    if !view.inbox.is_empty() {
        let never =
            if view.record.status.is_terminal() { ", never to be consumed: the execution has finished" } else { "" };
        let _ = writeln!(out, "inbox, {} event(s) not consumed{never}:", view.inbox.len());
        for event in &view.inbox {
            let _ = writeln!(out, "{:>3} {:<9} {} {}", event.seq, offset(event.at, start), event.name, event.payload);
        }
    }
    let _ = writeln!(out, "last {} of {} events:", report.last.len(), view.history.len());
    for event in &report.last {
        let _ = writeln!(out, "{}", event_line(event, start));
    }
    out
}

/// An inbox event as JSON for scripts, its payload as JSON rather than as text.
fn inbox_json(event: &InboxEvent) -> serde_json::Value {
    serde_json::json!({ "seq": event.seq, "name": event.name, "at": event.at, "payload": json_or_text(&event.payload) })
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|line| format!("{prefix}{line}\n")).collect()
}
