//! The trip story of `cargo run --example trip`, checked: booked with a callback answered by the
//! provider, and undone when a part cannot be booked.

use durable_core::render::{self, ExecutionView, GraphMarks};
use durable_core::store::Status;
use durable_core::{Engine, SqliteStore, Store};
use durable_examples::trip::{PaymentProvider, TripRequest, payment_workflow, trip_workflow};

fn request(car: &str) -> TripRequest {
    TripRequest { flight: "LH400".into(), hotel: "Adlon".into(), car: car.into(), amount: 129_000 }
}

#[tokio::test]
async fn a_trip_is_booked_after_the_provider_answers_and_undone_when_a_part_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::create(dir.path().join("trips.db")).unwrap();
    let engine = Engine::builder(store).register(trip_workflow).register(payment_workflow).build().unwrap();
    let worker = engine.worker("w");

    engine.start(trip_workflow, "trip-a", ("trip-a".to_owned(), request("compact"))).await.unwrap();
    worker.run_until_idle().await.unwrap();
    assert_eq!(engine.status("trip-a").await.unwrap().status, Status::Suspended);
    assert_eq!(engine.status("trip-a/pay").await.unwrap().status, Status::Suspended);
    let pending: Vec<_> = PaymentProvider::take_pending().into_iter().filter(|(trip, ..)| trip == "trip-a").collect();
    assert_eq!(pending.len(), 1, "one payment request: {pending:?}");
    engine.complete_callback(&pending[0].2, Ok(&"auth-1")).await.unwrap();
    worker.run_until_idle().await.unwrap();
    let booked = engine.result(trip_workflow, "trip-a").await.unwrap().unwrap();
    assert_eq!(
        booked.iter().map(|r| r.reference.as_str()).collect::<Vec<_>>(),
        ["flight-lh400", "hotel-adlon", "car-compact"]
    );

    let view = ExecutionView::load(engine.store(), "trip-a").await.unwrap().unwrap();
    assert!(render::show(&view, 3).contains("succeeded  trip-a/pay of payment_workflow"));
    let facts = engine.store().workflow("trip_workflow", None).await.unwrap().unwrap().facts().unwrap();
    let graph = render::graph(&facts, Some(&GraphMarks::of(&view, &facts)));
    assert!(graph.contains(r#"p0[/"reserve<br/>map, line 43<br/><i>3 succeeded, 0 failed</i>"\]"#), "{graph}");
    assert!(graph.contains("<i>child succeeded</i>"), "{graph}");

    engine.start(trip_workflow, "trip-b", ("trip-b".to_owned(), request("none"))).await.unwrap();
    worker.run_until_idle().await.unwrap();
    let error = engine.result(trip_workflow, "trip-b").await.unwrap().unwrap_err();
    assert_eq!(error.to_string(), "trip trip-b not booked: no car available; released 2 reservation(s)");
    assert_eq!(engine.store().load("trip-b/pay").await.unwrap(), None, "nothing was paid");
}
