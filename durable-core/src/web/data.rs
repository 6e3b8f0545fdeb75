//! What the pages and the API show, gathered from the store: the same values serve both, so the
//! JSON API says exactly what a page shows.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::facts::FactsRecord;
use crate::render::{self, ExecutionView, GraphMarks, Report, StoredState};
use crate::store::{EventKind, ExecutionRecord, ListFilter, Status, Store, StoreError};
use crate::time::Timestamp;

/// How many failed executions the overview reads the history of, per workflow, to say where
/// they failed; beyond it they are counted at "?".
const FAILED_LOOKUPS: usize = 1_000;

/// One workflow on the overview.
#[derive(Clone, Debug, Serialize)]
pub(super) struct WorkflowSummary {
    pub name: String,
    pub total: usize,
    /// `(status, count)` for every status, in declaration order.
    pub totals: Vec<StatusCount>,
    /// Where the unfinished and failed executions are, the largest groups first.
    pub points: Vec<PointCount>,
    /// The Mermaid diagram from the registered facts, if any.
    pub mermaid: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub(super) struct StatusCount {
    pub status: Status,
    pub count: usize,
}

/// "42 waiting at payment, oldest since ...".
#[derive(Clone, Debug, Serialize)]
pub(super) struct PointCount {
    /// `waiting`, `retrying`, `running` or `failed`.
    pub what: &'static str,
    /// `at` a point, or `after` one (the last checkpoint, when the point is not known).
    pub preposition: &'static str,
    pub point: String,
    pub count: usize,
    /// The longest there: since its last change.
    pub oldest: Timestamp,
    pub oldest_utc: String,
}

/// Where `record` stands, from the record alone (`failed` needs the history: see
/// [`overview`]).
fn place(record: &ExecutionRecord) -> Option<(&'static str, String)> {
    let snapshot = record.snapshot.as_ref().map(|s| s.point.clone());
    match record.status {
        Status::Suspended => match (&record.waiting_for, &record.step) {
            (Some(event), _) => Some(("waiting", event.clone())),
            (None, Some(step)) if step.retry_at.is_some() => Some(("retrying", step.point.clone())),
            _ => Some(("waiting", snapshot.unwrap_or_else(|| "?".to_owned()))),
        },
        Status::Running | Status::Failed => {
            let what = if record.status == Status::Running { "running" } else { "failed" };
            Some((what, snapshot.map_or_else(|| "start".to_owned(), |p| format!("after {p}"))))
        }
        Status::Succeeded | Status::Cancelled => None,
    }
}

/// The point a failed execution failed at, from its history.
async fn failed_at<S: Store>(store: &S, record: &ExecutionRecord) -> Result<Option<String>, StoreError> {
    let history = match store.history(&record.id).await {
        Ok(history) => history,
        // Purged meanwhile.
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(error) => return Err(error),
    };
    let failed = history.iter().rposition(|e| e.kind == EventKind::ExecutionFailed);
    Ok(failed.and_then(|i| history[..=i].iter().rev().find_map(|e| e.point.clone())))
}

/// The latest registered facts of `workflow`, if they decode.
pub(super) async fn facts<S: Store>(store: &S, workflow: &str) -> Result<Option<FactsRecord>, StoreError> {
    Ok(store.workflow(workflow, None).await?.and_then(|info| info.facts().ok()))
}

/// Every workflow with executions in the store, with totals by status and where its
/// executions are.
pub(super) async fn overview<S: Store>(store: &S) -> Result<Vec<WorkflowSummary>, StoreError> {
    let records = store.list(ListFilter::default()).await?;
    let mut by_workflow: BTreeMap<String, Vec<ExecutionRecord>> = BTreeMap::new();
    for record in records {
        by_workflow.entry(record.workflow.clone()).or_default().push(record);
    }
    let mut summaries = Vec::new();
    for (name, records) in by_workflow {
        let totals = Status::ALL
            .into_iter()
            .map(|status| StatusCount { status, count: records.iter().filter(|r| r.status == status).count() })
            .collect();
        let mut groups: BTreeMap<(&'static str, String), (usize, Timestamp)> = BTreeMap::new();
        let mut lookups = 0;
        for record in &records {
            let Some((what, mut point)) = place(record) else { continue };
            if record.status == Status::Failed && lookups < FAILED_LOOKUPS {
                lookups += 1;
                if let Some(at) = failed_at(store, record).await? {
                    point = at;
                }
            }
            let entry = groups.entry((what, point)).or_insert((0, record.updated_at));
            entry.0 += 1;
            entry.1 = entry.1.min(record.updated_at);
        }
        let mut points: Vec<PointCount> = groups
            .into_iter()
            .map(|((what, point), (count, oldest))| PointCount {
                what,
                preposition: if point.starts_with("after ") { "after" } else { "at" },
                point: point.strip_prefix("after ").map(str::to_owned).unwrap_or(point),
                count,
                oldest,
                oldest_utc: render::utc(oldest),
            })
            .collect();
        points.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (a.what, &a.point).cmp(&(b.what, &b.point))));
        let mermaid = facts(store, &name).await?.map(|facts| render::graph(&facts, None));
        summaries.push(WorkflowSummary { name, total: records.len(), totals, points, mermaid });
    }
    Ok(summaries)
}

/// A page of the execution list.
#[derive(Clone, Debug, Serialize)]
pub(super) struct ListPage {
    pub workflow: Option<String>,
    pub status: Option<Status>,
    /// From 1.
    pub page: usize,
    pub per_page: usize,
    pub has_next: bool,
    pub executions: Vec<ListRow>,
}

#[derive(Clone, Debug, Serialize)]
pub(super) struct ListRow {
    pub id: String,
    pub workflow: String,
    pub status: Status,
    /// `waiting at payment`, `failed after validate`...
    pub place: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub updated_utc: String,
}

/// The most rows one page shows.
pub(super) const MAX_PER_PAGE: usize = 200;

/// Page `page` (from 1) of the executions that match, oldest first.
pub(super) async fn list<S: Store>(
    store: &S,
    workflow: Option<String>,
    status: Option<Status>,
    page: usize,
    per_page: usize,
) -> Result<ListPage, StoreError> {
    let page = page.max(1);
    let per_page = per_page.clamp(1, MAX_PER_PAGE);
    let skip = (page - 1).saturating_mul(per_page);
    // One more than the page, to know whether there is a next one.
    let limit = skip.saturating_add(per_page).saturating_add(1);
    let filter = ListFilter { workflow: workflow.clone(), status, limit: Some(limit), parent: None, key: None };
    let records = store.list(filter).await?;
    let has_next = records.len() > skip + per_page;
    let executions = records
        .into_iter()
        .skip(skip)
        .take(per_page)
        .map(|record| ListRow {
            place: place(&record).map(|(what, point)| format!("{what} at {point}").replace("at after", "after")),
            id: record.id,
            workflow: record.workflow,
            status: record.status,
            created_at: record.created_at,
            updated_at: record.updated_at,
            updated_utc: render::utc(record.updated_at),
        })
        .collect();
    Ok(ListPage { workflow, status, page, per_page, has_next, executions })
}

/// Everything the execution page shows.
#[derive(Clone, Debug, Serialize)]
pub(super) struct ExecutionPage {
    pub report: Report,
    pub title: String,
    /// `failed at`, `waiting at`...
    pub place_label: Option<&'static str>,
    pub place: Option<String>,
    /// Every history event, oldest first, with its offset from the start.
    pub timeline: Vec<Value>,
    /// Every checkpoint's state, latest first, pretty-printed.
    pub checkpoints: Vec<Value>,
    /// The last checkpoint's state, pretty-printed.
    pub state_pretty: Option<String>,
    pub output_pretty: Option<String>,
    /// The diagram with this execution's path marked, if the facts are registered.
    pub mermaid: Option<String>,
    /// Which controls apply to its status.
    pub can_redrive: bool,
    pub can_wake: bool,
    pub can_cancel: bool,
}

/// The execution page of `id`, or `None` if there is no such execution.
pub(super) async fn execution<S: Store>(store: &S, id: &str) -> Result<Option<ExecutionPage>, StoreError> {
    let Some(view) = ExecutionView::load(store, id).await? else { return Ok(None) };
    let report = Report::new(&view, 0);
    let start = view.start();
    let timeline = view
        .history
        .iter()
        .map(|event| {
            let mut value = render::event_json(event);
            value["offset"] = json!(render::offset(event.at, start));
            value["utc"] = json!(render::utc(event.at));
            value
        })
        .collect();
    let mut checkpoints: Vec<Value> = view
        .history
        .iter()
        .filter_map(StoredState::of)
        .map(|state| {
            json!({
                "seq": state.seq,
                "place": state.place(),
                "point": state.point,
                "state": state.state,
                "pretty": render::pretty_json(&state.text),
            })
        })
        .collect();
    checkpoints.reverse();
    let state_pretty = report.state.as_ref().map(|state| render::pretty_json(&state.text));
    let output_pretty = view.record.output.as_deref().map(render::pretty_json);
    let mermaid = view.facts.as_ref().map(|facts| render::graph(facts, Some(&GraphMarks::of(&view, facts))));
    let (place_label, place) = match &report.position {
        Some(position) => {
            let label = match position.what {
                "failed" => "failed at",
                "failed_after" => "failed after",
                "retrying" => "retrying",
                "running" => "running at",
                _ => "waiting at",
            };
            (Some(label), Some(position.place()))
        }
        None => (None, None),
    };
    let status = view.record.status;
    Ok(Some(ExecutionPage {
        title: view.title(),
        place_label,
        place,
        timeline,
        checkpoints,
        state_pretty,
        output_pretty,
        mermaid,
        can_redrive: matches!(status, Status::Failed | Status::Cancelled),
        can_wake: status == Status::Suspended && view.record.waiting_for.is_none(),
        can_cancel: !status.is_terminal(),
        report,
    }))
}
