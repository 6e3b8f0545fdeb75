//! The limits on ids, names and payloads (`durable_core::limits`): the same refusal on every
//! store, before anything is read or stored.

use durable_core::EngineError;
use durable_core::limits::{Field, Invalid, MAX_ID_BYTES, MAX_PAYLOAD_BYTES, Problem};
use durable_core::store::{ListFilter, Store};

use crate::support::{both, clock, engine, greet, pay};

both!(ids_names_and_payloads_outside_the_limits_are_refused);

/// The field and problem of an [`EngineError::Invalid`]; panics on any other answer.
fn refused<T: std::fmt::Debug>(answer: Result<T, EngineError>) -> (Field, Problem) {
    match answer {
        Err(EngineError::Invalid(Invalid { field, problem, .. })) => (field, problem),
        other => panic!("expected EngineError::Invalid, got {other:?}"),
    }
}

fn too_long(len: usize, max: usize) -> Problem {
    Problem::TooLong { len, max }
}

async fn ids_names_and_payloads_outside_the_limits_are_refused<S: Store>(store: S, _tag: &str) {
    let clock = clock();
    let engine = engine(store, &clock);
    let id = Field::ExecutionId;
    let nul = Problem::ControlCharacter { char: '\0', at: 1 };
    let huge = "x".repeat(10 * 1024 * 1024);

    assert_eq!(refused(engine.start(greet, "", "a".to_owned()).await), (id, Problem::Empty));
    assert_eq!(refused(engine.start(greet, "a\0b", "a".to_owned()).await), (id, nul.clone()));
    let long = "x".repeat(MAX_ID_BYTES + 1);
    assert_eq!(refused(engine.start(greet, long.as_str(), "a".to_owned()).await), (id, too_long(256, 255)));
    assert_eq!(refused(engine.start(greet, huge.as_str(), "a".to_owned()).await), (id, too_long(huge.len(), 255)));
    let tab = Problem::ControlCharacter { char: '\t', at: 1 };
    assert_eq!(refused(engine.start_json("greet", "a\tb", "\"a\"").await), (id, tab));
    let input = Field::Input;
    let big = MAX_PAYLOAD_BYTES - 1;
    assert_eq!(
        refused(engine.start(greet, "g-1", "x".repeat(big)).await),
        (input, too_long(big + 2, MAX_PAYLOAD_BYTES))
    );
    let json = format!("\"{huge}\"");
    assert_eq!(
        refused(engine.start_json("greet", "g-1", &json).await),
        (input, too_long(json.len(), MAX_PAYLOAD_BYTES))
    );
    assert_eq!(refused(engine.start_json("", "g-1", "\"a\"").await), (Field::WorkflowName, Problem::Empty));
    let ids = engine.store().list(ListFilter::default()).await.unwrap();
    assert!(ids.is_empty(), "nothing was stored: {ids:?}");

    // An id at the limit works; the lookups refuse what no execution can be called.
    let longest = "é".repeat(MAX_ID_BYTES / 2);
    assert!(engine.start(pay, longest.as_str(), "k".to_owned()).await.unwrap().is_new());
    assert_eq!(engine.status(&longest).await.unwrap().id, longest);
    assert_eq!(refused(engine.status("a\0b").await), (id, nul.clone()));
    assert_eq!(refused(engine.history("").await), (id, Problem::Empty));
    assert_eq!(refused(engine.cancel(&long).await), (id, too_long(256, 255)));
    assert_eq!(refused(engine.result(pay, &huge).await), (id, too_long(huge.len(), 255)));

    // Events: the name and the payload, before anything is delivered or queued.
    let event = Field::EventName;
    assert_eq!(refused(engine.send_event(&longest, "", &1).await), (event, Problem::Empty));
    assert_eq!(refused(engine.send_event(&longest, "p\0", &1).await), (event, nul));
    assert_eq!(refused(engine.send_event_json(&longest, &long, "1").await), (event, too_long(256, 255)));
    assert_eq!(refused(engine.send_event_json("", "payment", "1").await), (id, Problem::Empty));
    let payload = Field::Payload;
    assert_eq!(
        refused(engine.send_event(&longest, "payment", &huge).await),
        (payload, too_long(huge.len() + 2, MAX_PAYLOAD_BYTES))
    );
    assert_eq!(
        refused(engine.send_event_json(&longest, "payment", &json).await),
        (payload, too_long(json.len(), MAX_PAYLOAD_BYTES))
    );
    assert!(engine.store().inbox(&longest).await.unwrap().is_empty(), "no event was queued");
    let stored = engine.store().list(ListFilter::default()).await.unwrap();
    assert_eq!(stored.iter().map(|record| record.id.as_str()).collect::<Vec<_>>(), [longest.as_str()]);
}

/// PostgreSQL stores what it can hold, but refuses NUL with a raw error: the engine's limits
/// answer first, as on the other stores.
#[cfg(all(feature = "postgres", feature = "testing"))]
#[tokio::test]
async fn postgres_gets_the_same_refusals() {
    use durable_core::store::{PostgresOptions, PostgresStore};
    use durable_core::testing::postgres::{SchemaGuard, server, unique_schema};

    let Some(url) = server().await else { return };
    let schema = unique_schema("limits");
    let _guard = SchemaGuard::new(&url, &schema);
    let options = PostgresOptions { schema, pool_size: 2, ..PostgresOptions::default() };
    let store = PostgresStore::connect_with(&url, options).await.unwrap();
    ids_names_and_payloads_outside_the_limits_are_refused(store, "postgres").await;
}
