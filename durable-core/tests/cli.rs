//! The `durable` binary itself: arguments, output, exit codes.

#![cfg(feature = "cli")]

use std::process::{Command, Output};

use durable_core::prelude::*;
use durable_core::{Engine, SqliteStore};

#[durable(key = name)]
async fn greet(name: String) -> Result<String, WorkflowError> {
    let greeting = step!("compose", compose(&name).await)?;
    Ok(greeting)
}

async fn compose(name: &str) -> Result<String, std::io::Error> {
    Ok(format!("hello, {name}"))
}

fn durable(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_durable")).args(args).output().expect("the durable binary runs")
}

#[tokio::test]
async fn the_binary_shows_an_execution_and_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let engine = Engine::builder(SqliteStore::create(&path).unwrap()).register(greet).build().unwrap();
    engine.start(greet, "g-1", "Ada".to_owned()).await.unwrap();
    engine.worker("w-1").run_until_idle().await.unwrap();
    let database = path.to_str().unwrap();

    let shown = durable(&["--database", database, "show", "g-1"]);
    let stdout = String::from_utf8(shown.stdout).unwrap();
    assert!(shown.status.success(), "{stdout}");
    assert!(stdout.starts_with("execution g-1 of greet (name=Ada)\nstatus:       succeeded\n"), "{stdout}");
    assert!(stdout.contains("\"hello, Ada\""), "{stdout}");

    let graph = durable(&["--database", database, "graph", "greet", "--execution", "g-1"]);
    assert!(String::from_utf8(graph.stdout).unwrap().starts_with("flowchart TD\n"));

    let missing = durable(&["--database", database, "show", "g-2"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(String::from_utf8(missing.stderr).unwrap(), "durable: there is no execution `g-2` in this store\n");

    let usage = durable(&["show", "g-1"]);
    assert_eq!(usage.status.code(), Some(2), "clap's usage error");
    let help = durable(&["--help"]);
    let help = String::from_utf8(help.stdout).unwrap();
    for command in ["list", "show", "history", "state", "graph", "--json"] {
        assert!(help.contains(command), "{help}");
    }
}
