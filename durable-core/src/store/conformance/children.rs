//! Conformance checks for what a commit does to other executions: the child workflows it
//! starts and the notices it delivers.

use super::{claim_ids, finish, start, suspend, t};
use crate::store::{Commit, ListFilter, NewExecution, Notice, Status, Store, StoreError};

/// A commit's `spawn` creates its executions in the same transaction, with their parent, and
/// leaves an existing id as it is; the children are listed by parent and are claimable.
pub async fn commit_spawns_children<S: Store>(store: S) {
    let parent = start(&store, "p-1", "trip", t(1)).await;
    start(&store, "p-1/hotel", "hotel", t(1)).await;
    let mut commit = Commit::on(&parent, t(2));
    commit.status = Status::Suspended;
    commit.waiting_for = Some("child:p-1/flight".to_owned());
    commit.spawn = vec![
        NewExecution::new("p-1/flight", "flight", "\"LHR\"", t(2)).child_of("p-1").reported_as("batch:legs"),
        NewExecution::new("p-1/hotel", "hotel", "\"other\"", t(2)).child_of("p-1"),
    ];
    store.commit(commit).await.expect("commit with spawn");

    let flight = store.load("p-1/flight").await.unwrap().expect("the child was created");
    assert_eq!((flight.workflow.as_str(), flight.input.as_str()), ("flight", "\"LHR\""));
    assert_eq!((flight.status, flight.version, flight.parent.as_deref()), (Status::Running, 1, Some("p-1")));
    assert_eq!(flight.parent_event.as_deref(), Some("batch:legs"));
    let history = store.history("p-1/flight").await.unwrap();
    assert_eq!(history.len(), 1, "a child starts with its ExecutionStarted event");
    let hotel = store.load("p-1/hotel").await.unwrap().unwrap();
    assert_eq!((hotel.input.as_str(), hotel.parent), ("{\"id\":\"p-1/hotel\"}", None), "an existing id is left alone");

    let children = store.list(ListFilter { parent: Some("p-1".to_owned()), ..ListFilter::default() }).await.unwrap();
    assert_eq!(children.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["p-1/flight"]);
    assert_eq!(store.load("p-1").await.unwrap().unwrap().parent, None);
    assert_eq!(claim_ids(&store, "w", t(3), 10).await, ["p-1/hotel", "p-1/flight"]);
}

/// A commit that fails its checks spawns nothing and delivers nothing.
pub async fn refused_commit_spawns_nothing<S: Store>(store: S) {
    let parent = start(&store, "p-2", "trip", t(1)).await;
    let other = start(&store, "o-2", "order", t(1)).await;
    let mut stale = Commit::on(&parent, t(2));
    stale.expected_version = parent.version + 1;
    stale.spawn = vec![NewExecution::new("p-2/car", "car", "null", t(2)).child_of("p-2")];
    stale.notify = vec![Notice { to: other.id.clone(), name: "hello".into(), payload: "1".into(), key: None }];
    assert!(matches!(store.commit(stale).await, Err(StoreError::Conflict { .. })));
    assert_eq!(store.load("p-2/car").await.unwrap(), None);
    assert!(store.inbox("o-2").await.unwrap().is_empty());
}

/// A commit's notices are delivered as keyed events in the same transaction: the parent
/// waiting for one becomes due, a repeated key is delivered once, and a notice to an unknown
/// or finished execution is dropped without failing the commit.
pub async fn commit_notifies_other_executions<S: Store>(store: S) {
    let parent = start(&store, "p-3", "trip", t(1)).await;
    suspend(&store, &parent, None, Some("child:p-3/pay")).await;
    let done = start(&store, "d-3", "order", t(1)).await;
    finish(&store, &done, Status::Succeeded).await;
    let child =
        store.create(NewExecution::new("p-3/pay", "pay", "null", t(1)).child_of("p-3")).await.unwrap().into_record();
    assert!(claim_ids(&store, "w", t(2), 10).await.contains(&"p-3/pay".to_owned()));

    let notice = |to: &str| Notice {
        to: to.to_owned(),
        name: "child:p-3/pay".into(),
        payload: r#"{"succeeded":7}"#.into(),
        key: Some("p-3/pay".into()),
    };
    let mut end = Commit::on(&child, t(3));
    end.status = Status::Succeeded;
    end.output = Some(r#"{"Ok":7}"#.into());
    end.notify = vec![notice("p-3"), notice("p-3"), notice("nobody"), notice("d-3")];
    end.release_lease = true;
    store.commit(end).await.expect("a notice to nobody does not fail the commit");

    let inbox = store.inbox("p-3").await.unwrap();
    assert_eq!(inbox.len(), 1, "one key, one event: {inbox:?}");
    assert_eq!((inbox[0].name.as_str(), inbox[0].payload.as_str()), ("child:p-3/pay", r#"{"succeeded":7}"#));
    assert_eq!(inbox[0].at, t(3));
    assert_eq!(claim_ids(&store, "w", t(4), 10).await, ["p-3"], "the parent is due on the child's notice");
    assert!(store.inbox("d-3").await.unwrap().is_empty());
}
