//! Executions as text: the renderings the `durable` command line prints and the testing
//! [`Harness`](crate::testing::Harness) snapshots.
//!
//! Everything here is a pure function of stored data (an [`ExecutionView`]: the record, its
//! history and the registered facts of its workflow), so the same execution renders the same
//! way wherever it is read. Times in history lines are offsets from the execution's start
//! (`+2h 0m`); absolute times are UTC (`2026-01-01T00:00:00.000Z`). No rendering shows a lease
//! owner or anything else that differs between two runs of the same story on the same clock.
//!
//! ```
//! use durable_core::prelude::*;
//! use durable_core::testing::Harness;
//!
//! #[durable(key = order_id)]
//! async fn order(order_id: String) -> Result<u64, StepError> {
//!     let total = step!("price", Ok::<_, StepError>(order_id.len() as u64))?;
//!     Ok(total)
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let mut harness = Harness::new().register(order);
//! harness.start(order, "o-42", "o-42".to_owned()).await.unwrap();
//! let log = harness.render_log("o-42").await.unwrap();
//! assert!(log.starts_with("execution o-42 of order (order_id=o-42): succeeded\n"), "{log}");
//! assert!(log.contains("StepSucceeded      price ("), "{log}");
//! # });
//! ```

use std::fmt::Write as _;

use crate::engine::human;
use crate::facts::{FactsRecord, keys_text};
use crate::store::{EventKind, ExecutionRecord, HistoryEvent, InboxEvent, ListFilter, Status, Store, StoreError};
use crate::time::Timestamp;

mod graph;
mod show;

pub use self::graph::{GraphMarks, graph, node_id};
pub use self::show::{Position, Report, StoredState, show};

/// One execution as stored: what every rendering reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionView {
    /// The execution's record.
    pub record: ExecutionRecord,
    /// Its history, oldest first.
    pub history: Vec<HistoryEvent>,
    /// The events in its inbox that were not consumed, by seq.
    pub inbox: Vec<InboxEvent>,
    /// The registered facts of its workflow (of the build that wrote its state if they were
    /// registered, else the latest), if any.
    pub facts: Option<FactsRecord>,
    /// The child workflows it started, oldest first.
    pub children: Vec<ExecutionRecord>,
    /// The layout fingerprint of its workflow's latest registered build, if any.
    pub latest_layout: Option<String>,
}

impl ExecutionView {
    /// Reads execution `id` from `store`; `None` if there is no such execution.
    ///
    /// The record and the history are read one after the other: an execution that a worker
    /// runs meanwhile may show a history one commit ahead of its record.
    pub async fn load<S: Store>(store: &S, id: &str) -> Result<Option<Self>, StoreError> {
        let Some(record) = store.load(id).await? else { return Ok(None) };
        let history = store.history(id).await?;
        let inbox = store.inbox(id).await?;
        let fingerprint = record.snapshot.as_ref().map(|snapshot| snapshot.fingerprint.as_str());
        let mut info = store.workflow(&record.workflow, fingerprint).await?;
        if info.is_none() && fingerprint.is_some() {
            info = store.workflow(&record.workflow, None).await?;
        }
        let facts = info.and_then(|info| info.facts().ok());
        let children = store.list(ListFilter { parent: Some(id.to_owned()), ..ListFilter::default() }).await?;
        let latest_layout = store.workflow(&record.workflow, None).await?.map(|info| info.fingerprint);
        Ok(Some(ExecutionView { record, history, inbox, facts, children, latest_layout }))
    }

    /// The execution's business keys, `(name, value)`, if its workflow's facts are known.
    pub fn keys(&self) -> Vec<(String, String)> {
        self.facts.as_ref().map(|facts| facts.key_values(&self.record.input)).unwrap_or_default()
    }

    /// `execution o-42 of order_workflow (order_id=o-42)`, with the id, the workflow and the
    /// keys [cleaned](clean) for display.
    pub fn title(&self) -> String {
        let keys = self.keys();
        let keys = if keys.is_empty() { String::new() } else { format!(" ({})", clean(&keys_text(&keys), WIDE)) };
        format!("execution {} of {}{keys}", clean(&self.record.id, WIDE), clean(&self.record.workflow, WIDE))
    }

    /// When the execution started: the origin of the offsets in history lines.
    pub fn start(&self) -> Timestamp {
        self.record.created_at
    }
}

/// The deterministic log of an execution, made for snapshot tests: its title and status, every
/// history event with its stored state, and its output once it has finished.
pub fn log(view: &ExecutionView) -> String {
    let mut out = format!("{}: {}\n", view.title(), view.record.status);
    out.push_str(&history(&view.history, view.start(), true));
    if let Some(output) = &view.record.output {
        let _ = writeln!(out, "output: {output}");
    }
    out
}

/// One line per history event: seq, offset from `start`, kind, point and source location, and
/// what happened. With `states`, a checkpoint's state (an `ExecutionStarted`'s input) follows on
/// a line of its own, as stored.
pub fn history(events: &[HistoryEvent], start: Timestamp, states: bool) -> String {
    history_lines(events, start, states, false)
}

/// [`history`], each line ending with the worker whose run wrote the event (`[by w-1]`), for
/// `durable history`: who ran each attempt, when executions move between workers.
pub fn history_by_worker(events: &[HistoryEvent], start: Timestamp, states: bool) -> String {
    history_lines(events, start, states, true)
}

fn history_lines(events: &[HistoryEvent], start: Timestamp, states: bool, workers: bool) -> String {
    let mut out = String::new();
    for event in events {
        let line = event_line(event, start);
        match event.worker.as_deref().filter(|_| workers) {
            Some(worker) => {
                let _ = writeln!(out, "{line}  [by {}]", clean(worker, 64));
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
        if let Some(state) = event.state.as_deref().filter(|_| states) {
            let label = if event.kind == EventKind::ExecutionStarted { "input" } else { "state" };
            let _ = writeln!(out, "{:33}{label}: {state}", "");
        }
    }
    out
}

/// `  7 +200ms    StepFailed         ship_order (src/order.rs:56): attempt 1 of 3: ...`, with
/// control characters escaped ([`clean`]).
pub fn event_line(event: &HistoryEvent, start: Timestamp) -> String {
    let mut line = format!("{:>3} {:<9} {:<18}", event.seq, offset(event.at, start), event.kind.as_str());
    let mut parts = Vec::new();
    if let Some(point) = &event.point {
        parts.push(match (&event.file, event.line) {
            (Some(file), Some(number)) => format!("{point} ({file}:{number})"),
            _ => point.clone(),
        });
    }
    let detail = event.detail.as_deref().unwrap_or("");
    if let Some(attempt) = event.attempt.filter(|_| !detail.contains("attempt")) {
        parts.push(format!("attempt {attempt}"));
    }
    match (&event.error_kind, detail.is_empty()) {
        (Some(kind), false) => parts.push(format!("{detail} (error kind {kind})")),
        (Some(kind), true) => parts.push(format!("error kind {kind}")),
        (None, false) => parts.push(detail.to_owned()),
        (None, true) => {}
    }
    line.push(' ');
    // One line whatever was stored: an error message may hold line feeds or terminal escapes.
    line.push_str(&clean(&parts.join(": "), usize::MAX));
    line.trim_end().to_owned()
}

/// The most characters of a stored name, id or key shown in a title or a header line.
const WIDE: usize = 256;

/// The most characters of a cell of [`list`]'s table.
const CELL: usize = 64;

/// A table of executions, one line each: id, workflow, status, business keys, last checkpoint,
/// when it is due again, when it last changed. `keys` gives each execution's keys. Each cell is
/// [cleaned](clean) to at most 64 characters, so that any stored id keeps the table readable.
pub fn list(records: &[ExecutionRecord], keys: impl Fn(&ExecutionRecord) -> Vec<(String, String)>) -> String {
    let header = ["ID", "WORKFLOW", "STATUS", "KEYS", "CHECKPOINT", "WAITING FOR", "DUE", "UPDATED"].map(String::from);
    let mut rows = vec![header];
    for record in records {
        let due = match (record.status, record.wake_at) {
            (Status::Running | Status::Suspended, Some(at)) => utc(at),
            _ => "-".to_owned(),
        };
        let cell = |text: &str| or_dash(clean(text, CELL));
        rows.push([
            cell(&record.id),
            cell(&record.workflow),
            record.status.to_string(),
            cell(&keys_text(&keys(record))),
            cell(record.snapshot.as_ref().map_or("", |s| s.point.as_str())),
            cell(&waiting_text(record)),
            due,
            utc(record.updated_at),
        ]);
    }
    let widths: Vec<usize> = (0..8).map(|c| rows.iter().map(|row| row[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            // Padded by hand: `format!("{cell:<width$}")` panics for widths past 65,535.
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width.saturating_sub(cell.chars().count()) + 2));
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if records.is_empty() {
        out.push_str("(no executions)\n");
    }
    out
}

/// What `record` waits for, in the words of its workflow: an event's name, `child <id>`, or
/// `callback <point>` (a callback's awaited event is named by a digest of its token, which
/// says nothing to a reader and is not shown).
pub fn waiting_text(record: &ExecutionRecord) -> String {
    let Some(waiting) = record.waiting_for.as_deref() else { return String::new() };
    if let Some(child) = waiting.strip_prefix("child:") {
        return format!("child {child}");
    }
    if waiting.starts_with("callback:") {
        let point = record.snapshot.as_ref().map_or("?", |snapshot| snapshot.point.as_str());
        return format!("callback {point}");
    }
    waiting.to_owned()
}

/// `text` for display on one line: control characters escaped as Rust writes them (`\n`,
/// `\0`, `\u{85}`), and cut to its first `max` characters with `…` if it is longer.
///
/// For stored names and ids, which may hold anything if they were stored before the engine
/// [checked them](crate::limits).
///
/// ```
/// use durable_core::render::clean;
///
/// assert_eq!(clean("o-42", 8), "o-42");
/// assert_eq!(clean("a\0b\nc", 8), "a\\0b\\nc");
/// assert_eq!(clean("abcdefghij", 4), "abcd…");
/// ```
pub fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(4)));
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

fn or_dash(text: String) -> String {
    if text.is_empty() { "-".to_owned() } else { text }
}

/// `+2h 0m`: how long after `start` `at` is.
pub fn offset(at: Timestamp, start: Timestamp) -> String {
    if at >= start {
        format!("+{}", human(at.saturating_since(start)))
    } else {
        format!("-{}", human(start.saturating_since(at)))
    }
}

/// `2026-01-01T00:00:00.000Z`: a timestamp in UTC, as RFC 3339 writes it.
pub fn utc(at: Timestamp) -> String {
    let millis = at.as_millis();
    let secs = millis / 1_000;
    let (date, time) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm), on the proleptic Gregorian calendar.
    let z = date as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, ms) = (time / 3_600, time / 60 % 60, time % 60, millis % 1_000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// `json` pretty-printed with two-space indents, keeping its fields in their stored order;
/// as it is if it is not JSON.
pub fn pretty_json(json: &str) -> String {
    if serde_json::from_str::<serde::de::IgnoredAny>(json).is_err() {
        return json.to_owned();
    }
    let tokens = json_tokens(json);
    let mut out = String::with_capacity(json.len() * 2);
    let mut depth = 0usize;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    let mut tokens = tokens.iter().peekable();
    while let Some(token) = tokens.next() {
        match token.as_str() {
            open @ ("{" | "[") if tokens.peek().is_some_and(|next| matches!(next.as_str(), "}" | "]")) => {
                out.push_str(open);
                out.extend(tokens.next().map(String::as_str));
            }
            open @ ("{" | "[") => {
                out.push_str(open);
                depth += 1;
                newline(&mut out, depth);
            }
            close @ ("}" | "]") => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push_str(close);
            }
            "," => {
                out.push(',');
                newline(&mut out, depth);
            }
            ":" => out.push_str(": "),
            other => out.push_str(other),
        }
    }
    out
}

/// The tokens of valid JSON text: punctuation, strings (with their quotes) and other scalars.
fn json_tokens(json: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' | '}' | '[' | ']' | ',' | ':' => tokens.push(c.to_string()),
            '"' => {
                let mut string = String::from('"');
                let mut escaped = false;
                for c in chars.by_ref() {
                    string.push(c);
                    match c {
                        '"' if !escaped => break,
                        '\\' => escaped = !escaped,
                        _ => escaped = false,
                    }
                }
                tokens.push(string);
            }
            c if c.is_whitespace() => {}
            c => {
                let mut scalar = c.to_string();
                while let Some(&next) = chars.peek().filter(|n| !"{}[],:\"".contains(**n) && !n.is_whitespace()) {
                    scalar.push(next);
                    chars.next();
                }
                tokens.push(scalar);
            }
        }
    }
    tokens
}

/// A history event as JSON for scripts: its fields, with the stored state as JSON rather than
/// as text.
pub fn event_json(event: &HistoryEvent) -> serde_json::Value {
    let state = event.state.as_deref().map(|state| json_or_text(&crate::callback::mask_tokens(state)));
    serde_json::json!({
        "seq": event.seq,
        "at": event.at,
        "kind": event.kind,
        "point": event.point,
        "file": event.file,
        "line": event.line,
        "attempt": event.attempt,
        "detail": event.detail,
        "error_kind": event.error_kind,
        "worker": event.worker,
        "state": state,
    })
}

/// `text` parsed as JSON, or as a JSON string if it is not JSON.
pub fn json_or_text(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::{offset, pretty_json, utc};
    use crate::time::Timestamp;

    #[test]
    fn utc_dates_follow_the_calendar() {
        assert_eq!(utc(Timestamp::from_millis(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(Timestamp::from_millis(951_782_400_000)), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(Timestamp::from_millis(1_767_225_600_123)), "2026-01-01T00:00:00.123Z");
        assert_eq!(utc(Timestamp::from_millis(1_709_251_199_999)), "2024-02-29T23:59:59.999Z");
    }

    #[test]
    fn pretty_json_keeps_the_stored_order() {
        let json = r#"{"b":{"z":1,"a":[1, 2],"e":{},"s":"x,\"y\":{"},"a":[]}"#;
        let expected = "{\n  \"b\": {\n    \"z\": 1,\n    \"a\": [\n      1,\n      2\n    ],\n    \"e\": {},\n    \
                        \"s\": \"x,\\\"y\\\":{\"\n  },\n  \"a\": []\n}";
        assert_eq!(pretty_json(json), expected);
        assert_eq!(pretty_json("not json"), "not json");
    }

    #[test]
    fn offsets_are_signed() {
        let start = Timestamp::from_millis(10_000);
        assert_eq!(offset(Timestamp::from_millis(7_210_000), start), "+2h 0m");
        assert_eq!(offset(Timestamp::from_millis(9_800), start), "-200ms");
    }
}
