//! The `durable` command line on a SQLite file the engine wrote, and the Mermaid diagrams of
//! the example workflows.

mod stories;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use durable_core::cli::{self, CliError};
use durable_core::render::{self, GraphMarks};
use durable_core::testing::Harness;
use durable_core::{Engine, FactsRecord, ManualClock, SqliteStore, Workflow, WorkflowFacts};
use durable_examples::order::{Carrier, order_workflow};
use stories::{SHIPPING, harness, payment};

/// Every workflow of the examples crate.
fn example_workflows() -> Vec<&'static WorkflowFacts> {
    vec![order_workflow.facts()]
}

/// Writes three orders to a SQLite file on a virtual clock: `o-1` shipped, `o-2` waiting for
/// its payment, `o-3` whose shipment failed at every attempt.
async fn orders_db(dir: &Path) -> PathBuf {
    let _turn = SHIPPING.lock().await;
    let path = dir.join("orders.db");
    let clock = ManualClock::new(Harness::EPOCH);
    let store = SqliteStore::create(&path).unwrap();
    let engine = Engine::builder(store).clock(Arc::new(clock.clone())).register(order_workflow).build().unwrap();
    let worker = engine.worker("w-1");
    for id in ["o-1", "o-2", "o-3"] {
        engine.start(order_workflow, id, id.to_owned()).await.unwrap();
    }
    worker.run_until_idle().await.unwrap();
    engine.send_event("o-1", "payment", &payment()).await.unwrap();
    worker.run_until_idle().await.unwrap();
    Carrier::fail_next(3);
    engine.send_event("o-3", "payment", &payment()).await.unwrap();
    for delay in [0, 200, 400] {
        clock.advance(Duration::from_millis(delay));
        worker.run_until_idle().await.unwrap();
    }
    Carrier::fail_next(0);
    path
}

async fn durable(path: &Path, args: &[&str]) -> Result<String, CliError> {
    let database = path.to_str().unwrap();
    cli::run_args(["durable", "--database", database].iter().chain(args)).await
}

/// `text` with the names an engine gives its own runs (`engine-<pid>-<8 hex digits>`, which
/// differ from run to run) replaced by `engine-[pid]`.
fn engine_names_normalized(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("engine-") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + "engine-".len()..];
        let pid = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let hex = tail[pid..]
            .strip_prefix('-')
            .map(|h| h.len() - h.trim_start_matches(|c: char| c.is_ascii_hexdigit()).len());
        match hex {
            Some(8) if pid > 0 => {
                out.push_str("engine-[pid]");
                rest = &tail[pid + 1 + 8..];
            }
            _ => {
                out.push_str("engine-");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_command_line_reads_what_the_engine_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = orders_db(dir.path()).await;
    insta::assert_snapshot!("cli_list", durable(&path, &["list"]).await.unwrap());
    insta::assert_snapshot!("cli_list_failed", durable(&path, &["list", "--status", "failed"]).await.unwrap());
    insta::assert_snapshot!("cli_show_failed", durable(&path, &["show", "o-3"]).await.unwrap());
    insta::assert_snapshot!("cli_show_waiting", durable(&path, &["show", "o-2", "--events", "2"]).await.unwrap());
    let history = durable(&path, &["history", "o-3"]).await.unwrap();
    insta::assert_snapshot!("cli_history", engine_names_normalized(&history));
    let state = durable(&path, &["state", "o-3", "--at", "validate_order"]).await.unwrap();
    insta::assert_snapshot!("cli_state_at_validate_order", state);
    let graph = durable(&path, &["graph", "order_workflow", "--execution", "o-3"]).await.unwrap();
    insta::assert_snapshot!("cli_graph_failed", graph);
}

#[tokio::test]
async fn json_output_is_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let path = orders_db(dir.path()).await;
    let json = |text: String| serde_json::from_str::<serde_json::Value>(&text).unwrap();

    let list = json(durable(&path, &["list", "--json"]).await.unwrap());
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["keys"]["order_id"], "o-3");
    assert_eq!(rows[2]["status"], "failed");
    // JSON all the way down: input and state are values, not strings holding JSON.
    assert_eq!(rows[2]["input"], "o-3");
    assert_eq!(rows[2]["snapshot"]["state"]["payment"]["payment"]["reference"], "pay-7", "{}", rows[2]);

    let show = json(durable(&path, &["show", "o-3", "--json"]).await.unwrap());
    assert_eq!(show["position"]["what"], "failed");
    assert_eq!(show["position"]["point"], "ship_order");
    assert_eq!(show["position"]["file"], "examples/src/order.rs");
    assert_eq!(show["position"]["kind"], "Step");
    assert_eq!(show["state"]["point"], "payment");
    assert_eq!(show["state"]["state"]["payment"]["payment"]["reference"], "pay-7");
    assert!(show["error"].as_str().unwrap().contains("carrier did not answer in time"));

    let history = json(durable(&path, &["history", "o-3", "--json"]).await.unwrap());
    let events = history.as_array().unwrap();
    assert_eq!(events.first().unwrap()["kind"], "ExecutionStarted");
    assert_eq!(events.last().unwrap()["kind"], "ExecutionFailed");
    let validated = events.iter().find(|e| e["kind"] == "StepSucceeded").unwrap();
    assert_eq!(validated["state"]["validate_order"]["order"]["amount"], 4_200, "states are JSON, not text");

    let state = json(durable(&path, &["state", "o-2", "--json"]).await.unwrap());
    assert_eq!(state["point"], "payment");
    let graph = json(durable(&path, &["graph", "order_workflow", "--execution", "o-2", "--json"]).await.unwrap());
    assert_eq!(graph["marks"]["current"], "p1");
    assert!(graph["mermaid"].as_str().unwrap().starts_with("flowchart TD\n"));
}

#[tokio::test]
async fn mistakes_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = orders_db(dir.path()).await;
    let error = durable(&path, &["show", "o-404"]).await.unwrap_err();
    assert_eq!(error.to_string(), "there is no execution `o-404` in this store");
    let error = durable(&path, &["state", "o-3", "--at", "nowhere"]).await.unwrap_err();
    let expected =
        "execution `o-3`: it has no checkpoint at `nowhere` (its checkpoints are at: validate_order, payment)";
    assert_eq!(error.to_string(), expected);
    let error = durable(&path, &["graph", "refund_workflow"]).await.unwrap_err();
    assert!(matches!(error, CliError::UnknownWorkflow(_)), "{error}");
    let error = durable(&path, &["list", "--status", "lost"]).await.unwrap_err();
    assert!(error.to_string().contains("unknown status `lost`"), "{error}");
    let error = durable(&dir.path().join("absent.db"), &["list"]).await.unwrap_err();
    assert!(error.to_string().contains("absent.db"), "{error}");
    assert!(!dir.path().join("absent.db").exists(), "inspection creates no file");
}

/// Ids and names stored before the engine checked them (or by another program) are shown
/// escaped and cut: a 70,000-character id used to make `durable list` panic ("Formatting
/// argument out of range") and take the whole listing away.
#[tokio::test]
async fn any_stored_id_is_listed_and_shown_without_a_panic() {
    use durable_core::Timestamp;
    use durable_core::store::{Commit, EventKind, HistoryEvent, NewExecution, Status, Store};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.db");
    let store = SqliteStore::create(&path).unwrap();
    let long = format!("L\n\t\u{7f}{}", "x".repeat(70_000));
    let at = Timestamp::from_millis(1_700_000_000_000);
    for (id, workflow) in [(long.as_str(), "order\u{1b}[31m"), ("n\0ul", "order"), ("", "order")] {
        store.create(NewExecution::new(id, workflow, "\"in\u{0}put\"", at)).await.unwrap();
    }
    // A failure whose message would clear the terminal and break the line.
    let record = store.load(&long).await.unwrap().unwrap();
    let mut failed = Commit::on(&record, at);
    failed.status = Status::Failed;
    let mut event = HistoryEvent::new(at, EventKind::ExecutionFailed);
    event.detail = Some("boom\n\u{1b}[2J".to_owned());
    failed.events.push(event);
    store.commit(failed).await.unwrap();
    drop(store);

    let list = durable(&path, &["list"]).await.unwrap();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three executions:\n{list}");
    let cut = format!("L\\n\\t\\u{{7f}}{}…", "x".repeat(60));
    assert!(lines[1].starts_with("-  "), "the empty id shows as a dash: {list}");
    assert!(lines[2].starts_with(&format!("{cut}  order\\u{{1b}}[31m  failed")), "{list}");
    assert!(lines[3].starts_with("n\\0ul"), "{list}");
    assert!(lines.iter().all(|line| line.chars().count() < 200), "{list}");
    assert!(!list.contains('\0') && !list.contains('\u{1b}') && !list.contains('\u{7f}'), "{list:?}");

    let show = durable(&path, &["show", &long]).await.unwrap();
    let title = show.lines().next().unwrap();
    let expected = format!("execution L\\n\\t\\u{{7f}}{}… of order\\u{{1b}}[31m", "x".repeat(252));
    assert_eq!(title, expected);
    assert!(show.contains("\nstatus:       failed\n"), "{show}");
    assert!(show.contains("\nerror:        boom\\n\\u{1b}[2J\n"), "{show}");
    let history = durable(&path, &["history", &long]).await.unwrap();
    assert!(history.starts_with(&expected) && history.contains("ExecutionStarted"), "{history}");
    assert!(history.contains("ExecutionFailed    boom\\n\\u{1b}[2J\n"), "{history}");
    assert!(!show.contains('\u{1b}') && !history.contains('\u{1b}'));

    // JSON keeps every id exactly, escaped as JSON.
    let json: serde_json::Value = serde_json::from_str(&durable(&path, &["list", "--json"]).await.unwrap()).unwrap();
    let ids: Vec<&str> = json.as_array().unwrap().iter().map(|row| row["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["", long.as_str(), "n\0ul"]);
}

/// Whether schema `schema` exists on the server at `url`.
async fn schema_exists(url: &str, schema: &str) -> bool {
    let admin = durable_core::testing::postgres::admin(url).await;
    let query = "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)";
    admin.query_one(query, &[&schema]).await.unwrap().get(0)
}

/// Inspection never writes: `durable list` on a schema that does not exist used to create the
/// schema and its tables.
#[tokio::test]
async fn the_command_line_creates_no_postgres_schema() {
    use durable_core::testing::postgres::{SchemaGuard, server, unique_schema};

    let Some(url) = server().await else { return };
    let schema = unique_schema("cli_missing");
    let _guard = SchemaGuard::new(&url, &schema);
    for command in [&["list"][..], &["show", "o-1"], &["graph", "order_workflow"]] {
        let base = ["durable", "--database", &url, "--schema", &schema];
        let error = cli::run_args(base.iter().chain(command)).await.unwrap_err();
        let expected = format!(
            "postgres: there is no durable store in schema `{schema}` (the schema or its tables do not exist); \
             nothing was created"
        );
        assert_eq!(error.to_string(), expected);
    }
    assert!(!schema_exists(&url, &schema).await, "the schema was created");

    // An empty schema (made by someone else) is no store either, and stays empty.
    let admin = durable_core::testing::postgres::admin(&url).await;
    admin.batch_execute(&format!("CREATE SCHEMA \"{schema}\"")).await.unwrap();
    let args = ["durable", "--database", &url, "--schema", &schema, "list"];
    assert!(cli::run_args(args).await.unwrap_err().to_string().contains("no durable store"));
    let tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1";
    let count: i64 = admin.query_one(tables, &[&schema]).await.unwrap().get(0);
    assert_eq!(count, 0, "no table was created");
}

/// A read-only PostgreSQL store reads what a worker wrote and refuses every write.
#[tokio::test]
async fn the_command_line_reads_postgres_read_only() {
    use durable_core::Timestamp;
    use durable_core::store::{NewExecution, PostgresOptions, PostgresStore, Store};
    use durable_core::testing::postgres::{SchemaGuard, server, unique_schema};

    let Some(url) = server().await else { return };
    let schema = unique_schema("cli_read");
    let _guard = SchemaGuard::new(&url, &schema);
    let options = PostgresOptions { schema: schema.clone(), pool_size: 1, ..PostgresOptions::default() };
    let writer = PostgresStore::connect_with(&url, options.clone()).await.unwrap();
    let at = Timestamp::from_millis(1_700_000_000_000);
    writer.create(NewExecution::new("o-1", "order_workflow", "\"o-1\"", at)).await.unwrap();

    let list = cli::run_args(["durable", "--database", &url, "--schema", &schema, "list"]).await.unwrap();
    assert!(list.lines().nth(1).unwrap().starts_with("o-1  order_workflow  running"), "{list}");
    let reader = PostgresStore::connect_read_only(&url, options).await.unwrap();
    assert_eq!(reader.load("o-1").await.unwrap().unwrap().id, "o-1");
    let error = reader.create(NewExecution::new("o-2", "order_workflow", "\"o-2\"", at)).await.unwrap_err();
    assert!(error.to_string().contains("read-only transaction"), "{error}");
    assert!(writer.load("o-2").await.unwrap().is_none());
}

/// A Mermaid flowchart, as far as `durable graph` writes one.
#[derive(Debug, Default)]
struct Flowchart {
    nodes: BTreeMap<String, String>,
    edges: Vec<(String, String)>,
    class_defs: BTreeSet<String>,
    classes: BTreeMap<String, String>,
}

/// Parses `text` strictly: a `flowchart TD` header; then comments, node declarations with a
/// quoted label in one of the shapes we use, edges between declared nodes, `classDef`s with
/// `key:value` styles, and `class` lines naming declared nodes and defined classes.
fn parse(text: &str) -> Flowchart {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("flowchart TD"), "the header:\n{text}");
    let mut chart = Flowchart::default();
    let is_id = |id: &str| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    for line in lines.map(str::trim).filter(|line| !line.is_empty() && !line.starts_with("%%")) {
        if let Some(rest) = line.strip_prefix("classDef ") {
            let (name, style) = rest.split_once(' ').expect("classDef NAME STYLE");
            assert!(is_id(name) && style.split(',').all(|pair| pair.split_once(':').is_some()), "{line}");
            chart.class_defs.insert(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("class ") {
            let (ids, class) = rest.split_once(' ').expect("class IDS NAME");
            assert!(chart.class_defs.contains(class), "class `{class}` is defined first: {line}");
            for id in ids.split(',') {
                assert!(chart.nodes.contains_key(id), "class of an undeclared node: {line}");
                assert!(chart.classes.insert(id.to_owned(), class.to_owned()).is_none(), "one class per node");
            }
        } else if let Some((from, to)) = line.split_once(" --> ") {
            assert!(chart.nodes.contains_key(from) && chart.nodes.contains_key(to), "an edge between nodes: {line}");
            chart.edges.push((from.to_owned(), to.to_owned()));
        } else {
            let split = line.find(|c: char| !c.is_ascii_alphanumeric() && c != '_').expect("a node's shape");
            let (id, shape) = line.split_at(split);
            let label = [("[\"", "\"]"), ("{{\"", "\"}}"), ("[/\"", "\"/]"), ("([\"", "\"])")]
                .iter()
                .find_map(|(open, close)| shape.strip_prefix(open)?.strip_suffix(close))
                .unwrap_or_else(|| panic!("a node with a quoted label in a known shape: {line}"));
            assert!(is_id(id) && !label.contains('"'), "{line}");
            assert!(chart.nodes.insert(id.to_owned(), label.to_owned()).is_none(), "declared once: {line}");
        }
    }
    chart
}

/// Checks that `chart` draws `facts`: start, end, one node per point, every edge, and every
/// point reachable from the start.
fn assert_draws(chart: &Flowchart, facts: &FactsRecord) {
    assert_eq!(chart.nodes.len(), facts.points.len() + 2);
    assert_eq!((chart.nodes["start"].as_str(), chart.nodes["stop"].as_str()), ("start", "end"));
    for point in &facts.points {
        let label = &chart.nodes[&format!("p{}", point.index)];
        assert_eq!(label, &format!("{}<br/>{}, line {}", point.name, point.kind, point.line));
    }
    for edge in &facts.edges {
        let edge = (render::node_id(edge.from), render::node_id(edge.to));
        assert!(chart.edges.contains(&edge), "{edge:?}");
    }
    let mut reached = BTreeSet::from(["start".to_owned()]);
    while let Some(next) = chart.edges.iter().find(|(from, to)| reached.contains(from) && !reached.contains(to)) {
        reached.insert(next.1.clone());
    }
    assert_eq!(reached.len(), chart.nodes.len(), "every node is reachable from the start");
}

#[tokio::test]
async fn every_example_workflow_draws_as_valid_mermaid() {
    for facts in example_workflows() {
        let facts = FactsRecord::from(facts);
        let chart = parse(&render::graph(&facts, None));
        assert_draws(&chart, &facts);
        assert!(chart.class_defs.is_empty() && chart.classes.is_empty(), "no marks without an execution");
    }
}

#[tokio::test]
async fn an_execution_is_marked_where_it_is_and_where_it_failed() {
    let _turn = SHIPPING.lock().await;
    let mut h = harness();
    stories::waiting(&mut h, "o-1").await;
    stories::shipment_failed(&mut h, "o-2").await;
    stories::succeeded(&mut h, "o-3").await;
    let facts = FactsRecord::from(order_workflow.facts());
    let index = |name: &str| format!("p{}", facts.point(name).unwrap().index);
    let expected = [
        ("o-1", vec![("start", "passed"), ("validate_order", "passed"), ("payment", "current")]),
        (
            "o-2",
            vec![("start", "passed"), ("validate_order", "passed"), ("payment", "passed"), ("ship_order", "failed")],
        ),
        (
            "o-3",
            vec![
                ("start", "passed"),
                ("validate_order", "passed"),
                ("payment", "passed"),
                ("ship_order", "passed"),
                ("stop", "passed"),
            ],
        ),
    ];
    for (id, marks) in expected {
        let text = h.graph("order_workflow", Some(id)).await.unwrap();
        let chart = parse(&text);
        assert_draws(&chart, &facts);
        let node = |name: &str| if ["start", "stop"].contains(&name) { name.to_owned() } else { index(name) };
        let expected: BTreeMap<String, String> =
            marks.iter().map(|(n, class)| (node(n), (*class).to_owned())).collect();
        assert_eq!(chart.classes, expected, "{id}:\n{text}");
        assert_eq!(chart.class_defs, BTreeSet::from(["current", "failed", "passed"].map(String::from)));
    }
    let view = h.view("o-1").await.unwrap();
    assert_eq!(GraphMarks::of(&view, &facts).note, "execution o-1: suspended");
}
