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

/// Executions are found by their business keys, and a purge drops the keys with them.
pub async fn list_by_business_key<S: Store>(store: S) {
    let key = |value: &str| vec![("order_id".to_owned(), value.to_owned()), ("region".to_owned(), "eu".to_owned())];
    for (id, order) in [("k-1", "o-1"), ("k-2", "o-2"), ("k-3", "o-1")] {
        store.create(NewExecution::new(id, "order", "null", t(1)).with_keys(key(order))).await.unwrap();
    }
    let by = |name: &str, value: &str| ListFilter {
        key: Some((name.to_owned(), value.to_owned())),
        ..ListFilter::default()
    };
    let ids = |records: Vec<crate::store::ExecutionRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list(by("order_id", "o-1")).await.unwrap()), ["k-1", "k-3"]);
    assert_eq!(ids(store.list(by("region", "eu")).await.unwrap()), ["k-1", "k-2", "k-3"]);
    assert!(store.list(by("order_id", "o-9")).await.unwrap().is_empty());
    assert!(store.list(by("customer", "o-1")).await.unwrap().is_empty());
    let combined = ListFilter { limit: Some(1), ..by("order_id", "o-1") };
    assert_eq!(ids(store.list(combined).await.unwrap()), ["k-1"]);
}

/// A paused workflow's executions are not claimed, by `claim_due` or `claim`, until it is
/// resumed; other workflows' are.
pub async fn paused_workflows_are_not_claimed<S: Store>(store: S) {
    start(&store, "z-1", "order", t(1)).await;
    start(&store, "z-2", "refund", t(1)).await;
    assert_eq!(store.paused().await.unwrap(), Vec::<String>::new());
    store.set_paused("order", true).await.unwrap();
    store.set_paused("order", true).await.unwrap();
    assert_eq!(store.paused().await.unwrap(), ["order"]);
    assert_eq!(claim_ids(&store, "w", t(2), 10).await, ["z-2"]);
    let clock = crate::time::ManualClock::shared(t(2));
    let direct = store.claim("z-1", "w", &clock, std::time::Duration::from_secs(60)).await.unwrap();
    assert_eq!(direct, None, "not claimed while paused");
    store.set_paused("order", false).await.unwrap();
    assert!(store.paused().await.unwrap().is_empty());
    assert_eq!(claim_ids(&store, "w", t(3), 10).await, ["z-1"]);
}

/// `claim_due_for` claims only executions of the builds it is given: of those workflows, not
/// started yet or with a state of that layout.
pub async fn claims_only_runnable_layouts<S: Store>(store: S) {
    start(&store, "l-0", "order", t(1)).await;
    for (id, layout) in [("l-1", "old"), ("l-2", "new")] {
        let record = start(&store, id, "order", t(1)).await;
        let mut commit = Commit::on(&record, t(1));
        commit.snapshot =
            Some(crate::store::Snapshot { point: "payment".into(), fingerprint: layout.into(), state: "{}".into() });
        store.commit(commit).await.unwrap();
    }
    start(&store, "l-3", "refund", t(1)).await;
    let clock = crate::time::ManualClock::shared(t(2));
    let minute = std::time::Duration::from_secs(60);
    let new = [("order".to_owned(), "new".to_owned())];
    let claimed = store.claim_due_for("w-new", &clock, minute, 10, &new).await.unwrap();
    let mut ids: Vec<String> = claimed.into_iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(ids, ["l-0", "l-2"], "not the old layout's, not another workflow's");
    let old = [("order".to_owned(), "old".to_owned()), ("refund".to_owned(), "any".to_owned())];
    let claimed = store.claim_due_for("w-old", &clock, minute, 10, &old).await.unwrap();
    let mut ids: Vec<String> = claimed.into_iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(ids, ["l-1", "l-3"]);
}
