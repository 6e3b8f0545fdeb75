//! What each subcommand reads and prints, on any [`Store`].

use std::collections::HashMap;
use std::io::Write;

use serde_json::{Value, json};

use super::CliError;
use super::args::Command;
use crate::facts::FactsRecord;
use crate::render::{self, ExecutionView, GraphMarks, Report, StoredState};
use crate::store::{ExecutionRecord, ListFilter, Store};

/// Runs `command` on `store`, printing text (or JSON, with `json`) to `out`.
pub(super) async fn execute<S: Store>(
    store: &S,
    command: &Command,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let text = match command {
        Command::List { workflow, status, limit, key } => {
            let filter = ListFilter {
                workflow: workflow.clone(),
                status: *status,
                limit: *limit,
                parent: None,
                key: key.clone(),
            };
            list(store, filter, json).await?
        }
        Command::Show { id, events } => {
            let view = view(store, id).await?;
            if json { to_json(&Report::new(&view, *events)) } else { render::show(&view, *events) }
        }
        Command::History { id, states } => {
            let view = view(store, id).await?;
            if json {
                to_json(&view.history.iter().map(render::event_json).collect::<Vec<_>>())
            } else {
                format!(
                    "{}: {}\n{}",
                    view.title(),
                    view.record.status,
                    render::history_by_worker(&view.history, view.start(), *states)
                )
            }
        }
        Command::State { id, at, seq } => {
            let view = view(store, id).await?;
            let state = state(&view, at.as_deref(), *seq)?;
            if json {
                to_json(&state)
            } else {
                let place = format!("{}, event {}", state.place(), state.seq);
                format!(
                    "# state of {} {place}\n{}\n",
                    render::clean(&view.record.id, 256),
                    render::pretty_json(&state.text)
                )
            }
        }
        Command::Graph { workflow, execution } => graph(store, workflow, execution.as_deref(), json).await?,
        Command::Versions { workflow } => versions(store, workflow.as_deref(), json).await?,
        // Opened for writing and run by `operate::execute`.
        _ => return Err(CliError::Usage("this command writes: it does not run on a read-only store".to_owned())),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// The layouts in flight: one row per workflow, layout and point, with its count.
async fn versions<S: Store>(store: &S, workflow: Option<&str>, json: bool) -> Result<String, CliError> {
    use std::collections::BTreeMap;
    let mut rows: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for status in [crate::store::Status::Running, crate::store::Status::Suspended] {
        let filter =
            ListFilter { workflow: workflow.map(str::to_owned), status: Some(status), ..ListFilter::default() };
        for record in store.list(filter).await? {
            let (layout, point) = match &record.snapshot {
                Some(snapshot) => (snapshot.fingerprint.clone(), snapshot.point.clone()),
                None => ("-".to_owned(), "(not started)".to_owned()),
            };
            *rows.entry((record.workflow, layout, point)).or_default() += 1;
        }
    }
    let mut latest: HashMap<String, Option<String>> = HashMap::new();
    let mut table = Vec::new();
    for ((name, layout, point), count) in rows {
        if !latest.contains_key(&name) {
            let info = store.workflow(&name, None).await?;
            latest.insert(name.clone(), info.map(|info| info.fingerprint));
        }
        let build = match latest.get(&name).cloned().flatten() {
            _ if layout == "-" => "any build",
            Some(current) if current == layout => "the latest registered build",
            _ if store.workflow(&name, Some(&layout)).await?.is_some() => "an earlier registered build",
            _ => "a build never registered here",
        };
        table.push((name, layout, point, count, build));
    }
    if json {
        let rows: Vec<Value> = table
            .iter()
            .map(|(name, layout, point, count, build)| {
                json!({ "workflow": name, "layout": layout, "point": point, "executions": count, "build": build })
            })
            .collect();
        return Ok(to_json(&rows));
    }
    let mut text = String::from("WORKFLOW  LAYOUT  POINT  EXECUTIONS  RUN BY\n");
    for (name, layout, point, count, build) in &table {
        let (name, point) = (render::clean(name, 64), render::clean(point, 64));
        text.push_str(&format!("{name}  {layout}  {point}  {count}  {build}\n"));
    }
    if table.is_empty() {
        text.push_str("(no execution in flight)\n");
    }
    Ok(text)
}

fn to_json(value: &impl serde::Serialize) -> String {
    // Values made of strings, numbers, maps and sequences: encoding cannot fail.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

async fn view<S: Store>(store: &S, id: &str) -> Result<ExecutionView, CliError> {
    ExecutionView::load(store, id).await?.ok_or_else(|| CliError::UnknownExecution(id.to_owned()))
}

/// The latest registered facts of `workflow`.
async fn facts<S: Store>(store: &S, workflow: &str) -> Result<Option<FactsRecord>, CliError> {
    let Some(info) = store.workflow(workflow, None).await? else { return Ok(None) };
    let facts = info.facts().map_err(|error| CliError::BadFacts { workflow: workflow.to_owned(), error })?;
    Ok(Some(facts))
}

async fn list<S: Store>(store: &S, filter: ListFilter, json: bool) -> Result<String, CliError> {
    let records = store.list(filter).await?;
    let mut known: HashMap<String, Option<FactsRecord>> = HashMap::new();
    for record in &records {
        if !known.contains_key(&record.workflow) {
            known.insert(record.workflow.clone(), facts(store, &record.workflow).await?);
        }
    }
    let keys = |record: &ExecutionRecord| match known.get(&record.workflow) {
        Some(Some(facts)) => facts.key_values(&record.input),
        _ => Vec::new(),
    };
    if !json {
        let mut text = render::list(&records, keys);
        let paused = store.paused().await?;
        if !paused.is_empty() {
            text.push_str(&format!("paused workflows (no worker claims their executions): {}\n", paused.join(", ")));
        }
        return Ok(text);
    }
    let rows: Vec<Value> = records
        .iter()
        .map(|record| {
            let keys: serde_json::Map<String, Value> = keys(record).into_iter().map(|(k, v)| (k, json!(v))).collect();
            let mut row = serde_json::to_value(record).unwrap_or_default();
            row["keys"] = Value::Object(keys);
            // JSON all the way down: the stored JSON texts as values, as `show --json` has them.
            row["input"] = render::json_or_text(&record.input);
            if let Some(output) = &record.output {
                row["output"] = render::json_or_text(output);
            }
            if let Some(snapshot) = &record.snapshot {
                row["snapshot"]["state"] = render::json_or_text(&crate::callback::mask_tokens(&snapshot.state));
            }
            row
        })
        .collect();
    Ok(to_json(&rows))
}

/// The stored state `durable state` prints: at history event `seq`, at the last checkpoint of
/// `point`, or at the last checkpoint.
fn state(view: &ExecutionView, point: Option<&str>, seq: Option<u64>) -> Result<StoredState, CliError> {
    let id = &view.record.id;
    let checkpoints = || view.history.iter().filter_map(StoredState::of);
    let found = match (seq, point) {
        (Some(seq), _) => checkpoints().find(|state| state.seq == seq),
        (None, Some(point)) => checkpoints().rev().find(|state| state.point.as_deref() == Some(point)),
        (None, None) => checkpoints().next_back(),
    };
    found.ok_or_else(|| {
        let mut points: Vec<String> = checkpoints().filter_map(|state| state.point).collect();
        points.dedup();
        let which = match (seq, point) {
            (Some(seq), _) => format!("history event {seq} is not a checkpoint"),
            (None, Some(point)) => format!("it has no checkpoint at `{point}`"),
            (None, None) => "it has no checkpoint yet".to_owned(),
        };
        let known = if points.is_empty() { "none".to_owned() } else { points.join(", ") };
        CliError::NoState(format!("execution `{id}`: {which} (its checkpoints are at: {known})"))
    })
}

async fn graph<S: Store>(store: &S, workflow: &str, execution: Option<&str>, json: bool) -> Result<String, CliError> {
    let (facts, marks) = match execution {
        Some(id) => {
            let view = view(store, id).await?;
            if view.record.workflow != workflow {
                let found = view.record.workflow.clone();
                return Err(CliError::NoState(format!("execution `{id}` is of workflow `{found}`, not `{workflow}`")));
            }
            let facts = view.facts.clone().ok_or_else(|| CliError::UnknownWorkflow(workflow.to_owned()))?;
            let marks = GraphMarks::of(&view, &facts);
            (facts, Some(marks))
        }
        None => (facts(store, workflow).await?.ok_or_else(|| CliError::UnknownWorkflow(workflow.to_owned()))?, None),
    };
    let mermaid = render::graph(&facts, marks.as_ref());
    if !json {
        return Ok(mermaid);
    }
    let marks = marks.map(|marks| {
        let ids =
            |nodes: &mut dyn Iterator<Item = crate::workflow::Node>| nodes.map(render::node_id).collect::<Vec<_>>();
        json!({
            "passed": ids(&mut marks.passed.iter().copied()),
            "current": marks.current.map(render::node_id),
            "failed": marks.failed.map(render::node_id),
        })
    });
    Ok(to_json(&json!({ "workflow": facts.name, "mermaid": mermaid, "marks": marks, "facts": facts })))
}
