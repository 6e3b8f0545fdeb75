//! `durable graph`: a workflow's diagram in Mermaid, from the macro's static facts, with an
//! execution's path marked on it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::ExecutionView;
use crate::facts::FactsRecord;
use crate::store::{EventKind, Status};
use crate::workflow::{Node, PointKind};

/// What an execution did on its workflow's diagram: the nodes it passed, the one it is at, the
/// one it failed at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphMarks {
    /// A comment naming the execution, shown at the top of the diagram's source.
    pub note: String,
    /// The nodes it passed.
    pub passed: BTreeSet<Node>,
    /// Where it waits or runs now.
    pub current: Option<Node>,
    /// Where it failed: a step that failed for good, or the end for an error the workflow
    /// returned.
    pub failed: Option<Node>,
    /// What happened at a node beyond passing it: the outcomes of a `map!`'s branches, how a
    /// child workflow ended.
    pub notes: BTreeMap<Node, String>,
}

impl GraphMarks {
    /// The marks of `view`'s execution on the diagram of `facts`.
    pub fn of(view: &ExecutionView, facts: &FactsRecord) -> Self {
        let node = |point: Option<&String>| {
            let point = facts.point(point?)?;
            Some(Node::Point(point.index))
        };
        let mut marks = GraphMarks {
            note: format!("execution {}: {}", view.record.id, view.record.status),
            passed: BTreeSet::from([Node::Start]),
            ..GraphMarks::default()
        };
        let mut branches: BTreeMap<Node, (usize, usize)> = BTreeMap::new();
        for event in &view.history {
            let at = node(event.point.as_ref());
            match (event.kind, at) {
                (EventKind::BranchEnded, Some(at)) => {
                    let counts = branches.entry(at).or_default();
                    if event.detail.as_deref().is_some_and(|detail| detail.contains(" succeeded")) {
                        counts.0 += 1;
                    } else {
                        counts.1 += 1;
                    }
                }
                (EventKind::ChildEnded, Some(at)) => {
                    let ended = event.detail.as_deref().unwrap_or("").split_once(' ').map_or("", |(_, how)| how);
                    marks.notes.insert(at, format!("child {}", ended.split(':').next().unwrap_or(ended)));
                }
                _ => {}
            }
            let passed = match event.kind {
                EventKind::StepSucceeded
                | EventKind::WaitSucceeded
                | EventKind::EventReceived
                | EventKind::EventTimedOut
                | EventKind::ChildEnded => true,
                // `start!` passes its point when the child is started.
                EventKind::ChildStarted => event.state.is_some(),
                // A step that failed for good and whose error the workflow handled.
                EventKind::StepFailed => event.state.is_some(),
                _ => false,
            };
            if let Some(node) = node(event.point.as_ref()).filter(|_| passed) {
                marks.passed.insert(node);
            }
        }
        let last_at = |kinds: &[EventKind]| view.history.iter().rev().find(|e| kinds.contains(&e.kind));
        match view.record.status {
            Status::Succeeded => {
                marks.passed.insert(Node::End);
            }
            Status::Failed => {
                let failure = last_at(&[EventKind::ExecutionFailed]);
                marks.failed = Some(failure.and_then(|e| node(e.point.as_ref())).unwrap_or(Node::End));
            }
            Status::Suspended => marks.current = last_at(&[EventKind::Suspended]).and_then(|e| node(e.point.as_ref())),
            Status::Running | Status::Cancelled => {
                let point = view.record.snapshot.as_ref().map(|snapshot| &snapshot.point);
                marks.current = node(point);
            }
        }
        for (at, (succeeded, failed)) in branches {
            marks.notes.insert(at, format!("{succeeded} succeeded, {failed} failed"));
        }
        for node in marks.current.iter().chain(&marks.failed) {
            marks.passed.remove(node);
        }
        marks
    }
}

/// The Mermaid id of `node`: `start`, `p0`, `p1`, ..., `stop`.
pub fn node_id(node: Node) -> String {
    match node {
        Node::Start => "start".to_owned(),
        Node::Point(index) => format!("p{index}"),
        // `end` is a keyword in Mermaid.
        Node::End => "stop".to_owned(),
    }
}

/// A label as Mermaid reads it inside double quotes.
fn escape(text: &str) -> String {
    text.replace('"', "#quot;").replace('<', "#lt;").replace('>', "#gt;")
}

/// The diagram of `facts` as a Mermaid `flowchart TD`: the start, every point (a rectangle for
/// a step, a parallelogram for a timer, a hexagon for an event, labelled with its name, kind
/// and line), the end, and the edges between them. With `marks`, the nodes an execution passed,
/// where it is and where it failed get the classes `passed`, `current` and `failed`.
pub fn graph(facts: &FactsRecord, marks: Option<&GraphMarks>) -> String {
    let mut out = String::from("flowchart TD\n");
    let _ = writeln!(out, "    %% workflow {} ({}:{})", facts.name, facts.file, facts.line);
    if let Some(marks) = marks {
        let _ = writeln!(out, "    %% {}", marks.note.replace('\n', " "));
    }
    out.push_str("    start([\"start\"])\n");
    for point in &facts.points {
        let mut label = format!("{}<br/>{}, line {}", escape(&point.name), point.kind, point.line);
        if let Some(note) = marks.and_then(|marks| marks.notes.get(&Node::Point(point.index))) {
            label.push_str(&format!("<br/><i>{}</i>", escape(note)));
        }
        let (open, close) = match point.kind {
            PointKind::Step => ("[\"", "\"]"),
            PointKind::Sleep => ("[/\"", "\"/]"),
            PointKind::Event | PointKind::Callback => ("{{\"", "\"}}"),
            // A loop of polls: a circle.
            PointKind::Poll => ("((\"", "\"))"),
            // A child workflow is a subroutine: a box with double sides.
            PointKind::Child | PointKind::Spawn => ("[[\"", "\"]]"),
            // A fan-out: a trapezoid, wide side down.
            PointKind::Map => ("[/\"", "\"\\]"),
        };
        let _ = writeln!(out, "    p{}{open}{label}{close}", point.index);
    }
    out.push_str("    stop([\"end\"])\n");
    let exists = |node: Node| match node {
        Node::Point(index) => index < facts.points.len(),
        Node::Start | Node::End => true,
    };
    let mut seen = BTreeSet::new();
    for edge in facts.edges.iter().filter(|e| exists(e.from) && exists(e.to)) {
        if seen.insert((edge.from, edge.to)) {
            let _ = writeln!(out, "    {} --> {}", node_id(edge.from), node_id(edge.to));
        }
    }
    if let Some(marks) = marks {
        out.push_str("    classDef passed fill:#d4edda,stroke:#2e7d32\n");
        out.push_str("    classDef current fill:#fff3cd,stroke:#b8860b,stroke-width:3px\n");
        out.push_str("    classDef failed fill:#f8d7da,stroke:#c62828,stroke-width:3px\n");
        let passed: Vec<String> = marks.passed.iter().copied().filter(|n| exists(*n)).map(node_id).collect();
        if !passed.is_empty() {
            let _ = writeln!(out, "    class {} passed", passed.join(","));
        }
        for (node, class) in [(marks.current, "current"), (marks.failed, "failed")] {
            if let Some(node) = node.filter(|n| exists(*n)) {
                let _ = writeln!(out, "    class {} {class}", node_id(node));
            }
        }
    }
    out
}
