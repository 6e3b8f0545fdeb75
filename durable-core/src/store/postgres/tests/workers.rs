//! Many workers on one schema: shared claiming, notifications of new work, lost connections.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::harness::{admin, fresh, options, server};
use super::{create, t};
use crate::store::{Commit, Lease, NewExecution, PostgresStore, Status, Store, WorkListener};
use crate::time::ManualClock;

const MINUTE: Duration = Duration::from_secs(60);

/// Claims in a loop until nothing is left, as a worker would; returns the ids it got.
async fn claim_all(store: PostgresStore, owner: String, now: crate::Timestamp) -> Vec<String> {
    let mut mine = Vec::new();
    loop {
        let claimed = store.claim_due(&owner, &ManualClock::shared(now), MINUTE, 7).await.expect("claim_due");
        if claimed.is_empty() {
            return mine;
        }
        assert!(
            claimed
                .iter()
                .all(|r| r.lease.as_ref().is_some_and(|l| l.owner == owner && l.until == now.saturating_add(MINUTE)))
        );
        mine.extend(claimed.into_iter().map(|record| record.id));
    }
}

/// Four stores (four pools, as four processes would have) claim concurrently; returns who got what.
async fn claim_round(stores: &[PostgresStore], now: crate::Timestamp) -> HashMap<String, String> {
    let tasks: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, store)| tokio::spawn(claim_all(store.clone(), format!("w-{i}"), now)))
        .collect();
    let mut owners = HashMap::new();
    for (i, task) in tasks.into_iter().enumerate() {
        for id in task.await.expect("claimer") {
            let previous = owners.insert(id.clone(), format!("w-{i}"));
            assert!(previous.is_none(), "{id} was claimed by {previous:?} and by w-{i}");
        }
    }
    owners
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_stores_never_share_a_claim() {
    let Some((first, _guard)) = fresh().await else { return };
    let url = server().await.unwrap();
    let mut stores = vec![first];
    for _ in 1..4 {
        stores.push(PostgresStore::connect_with(&url, options(stores[0].schema())).await.unwrap());
    }
    let started = Instant::now();
    for i in 0..200 {
        let new = NewExecution::new(format!("e-{i:03}"), "order", "null", t(1));
        stores[i % 4].create(new).await.unwrap();
    }
    let created = started.elapsed();

    let started = Instant::now();
    let owners = claim_round(&stores, t(5)).await;
    let claimed = started.elapsed();
    assert_eq!(owners.len(), 200, "every execution claimed exactly once");
    for (id, owner) in &owners {
        let lease = stores[0].load(id).await.unwrap().unwrap().lease.unwrap();
        assert_eq!(&lease.owner, owner, "the stored lease is the claimer's");
    }
    let mut per_owner: HashMap<&str, usize> = HashMap::new();
    for owner in owners.values() {
        *per_owner.entry(owner).or_default() += 1;
    }
    for store in &stores {
        assert!(
            store.claim_due("late", &ManualClock::shared(t(64)), MINUTE, 10).await.unwrap().is_empty(),
            "the leases hold"
        );
    }

    // Once the leases expire (at t(65)), the executions are shared out again, once each.
    let again = claim_round(&stores, t(65)).await;
    assert_eq!(again.len(), 200, "every expired lease reclaimed exactly once");
    eprintln!("postgres: 200 creates in {created:?}, 200 claims by 4 stores in {claimed:?} ({per_owner:?})");
}

/// Waits for a wake-up, failing after five seconds.
async fn woken(listener: &WorkListener, why: &str) {
    let woke = tokio::time::timeout(Duration::from_secs(5), listener.notified()).await;
    assert!(woke.is_ok(), "no wake-up after {why}");
}

/// Checks that no wake-up comes within a moment.
async fn quiet(listener: &WorkListener, why: &str) {
    let woke = tokio::time::timeout(Duration::from_millis(300), listener.notified()).await;
    assert!(woke.is_err(), "a wake-up after {why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_wakes_on_new_work_only() {
    let Some((store, _guard)) = fresh().await else { return };
    let Some((neighbour, _neighbour_guard)) = fresh().await else { return };
    let listener = store.listen().await.unwrap();
    quiet(&listener, "listening").await;

    create(&store, "e-1").await;
    woken(&listener, "a create").await;
    let claimed = store.claim_due("w", &ManualClock::shared(t(2)), MINUTE, 1).await.unwrap().remove(0);
    let mut suspend = Commit::on(&claimed, t(3));
    suspend.lease = claimed.lease.as_ref().map(Lease::token);
    suspend.status = Status::Suspended;
    suspend.waiting_for = Some("go".into());
    suspend.wake_at = Some(t(1_000));
    suspend.release_lease = true;
    let suspended = store.commit(suspend).await.unwrap();
    quiet(&listener, "a claim and a suspension until later").await;
    store.send_event("e-1", "other", "{}", t(4)).await.unwrap();
    quiet(&listener, "an event nobody waits for").await;
    create(&neighbour, "e-1").await;
    quiet(&listener, "a create in another schema").await;

    store.send_event("e-1", "go", "{}", t(5)).await.unwrap();
    woken(&listener, "the awaited event").await;
    let claimed = store.claim("e-1", "w", &ManualClock::shared(t(6)), MINUTE).await.unwrap().unwrap();
    assert_eq!(claimed.version, suspended.version);
    let mut timer = Commit::on(&claimed, t(7));
    (timer.status, timer.waiting_for, timer.wake_at) = (Status::Suspended, None, Some(t(7)));
    timer.release_lease = true;
    store.commit(timer).await.unwrap();
    woken(&listener, "a commit whose timer has passed").await;
    let other = store.listen().await.unwrap();
    create(&store, "e-2").await;
    woken(&listener, "a second create").await;
    woken(&other, "a second create, on a second listener").await;
}

/// Cuts every connection of `store` (pooled and listening) from the server side, and waits until
/// the server has closed them all; returns how many there were.
async fn cut_connections(store: &PostgresStore) -> usize {
    let admin = admin(&server().await.unwrap()).await;
    let find = "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()";
    let pids: Vec<i32> = admin.query(find, &[&store.schema()]).await.unwrap().iter().map(|row| row.get(0)).collect();
    admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", &[&pids]).await.unwrap();
    let alive = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)";
    for _ in 0..250 {
        let left: i64 = admin.query_one(alive, &[&pids]).await.unwrap().get(0);
        if left == 0 {
            return pids.len();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server did not close the connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_come_back() {
    let Some((store, _guard)) = fresh().await else { return };
    let listener = store.listen().await.unwrap();
    // Fill the pool: four calls at once need four connections.
    let calls = (0..4).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { create(&store, &format!("e-{i}")).await })
    });
    for call in calls {
        call.await.unwrap();
    }
    while tokio::time::timeout(Duration::from_millis(300), listener.notified()).await.is_ok() {}

    let killed = cut_connections(&store).await;
    assert!(killed >= 2, "the pool's connections and the listener's were cut ({killed})");
    // Every kind of call works at once, with no error: each finds its connection dead at a
    // first statement that is safe to repeat, and retries on a fresh one.
    assert_eq!(store.load("e-0").await.unwrap().map(|r| r.version), Some(1));
    create(&store, "e-after").await;
    let claimed = store.claim_due("w", &ManualClock::shared(t(5)), MINUTE, 10).await.unwrap();
    assert_eq!(claimed.len(), 5);
    let token = claimed[0].lease.as_ref().map(Lease::token);
    store.renew_lease("e-0", token.as_ref().unwrap(), &ManualClock::shared(t(40)), MINUTE).await.unwrap();
    let record = store.commit(Commit { lease: token, ..Commit::on(&claimed[0], t(6)) }).await.unwrap();
    assert_eq!(record.version, 2);

    woken(&listener, "the listening connection came back").await;
    while tokio::time::timeout(Duration::from_millis(300), listener.notified()).await.is_ok() {}
    create(&store, "e-later").await;
    woken(&listener, "a create after the reconnection").await;

    // And once more, cutting the connections while calls run: each call either succeeds or
    // fails with a retryable error, and the store carries on.
    let runs = (0..4).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut errors = 0;
            for n in 0..30 {
                let new = NewExecution::new(format!("r-{i}-{n}"), "order", "null", t(9));
                if let Err(error) = store.create(new).await {
                    assert!(error.is_retryable(), "{error}");
                    errors += 1;
                }
            }
            errors
        })
    });
    let runs: Vec<_> = runs.collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    cut_connections(&store).await;
    let mut errors = 0;
    for run in runs {
        errors += run.await.unwrap();
    }
    assert!(store.load("e-later").await.unwrap().is_some());
    eprintln!("postgres: {errors} of 120 creates failed (retryably) while their connections were cut");
}

/// A batch of 100 commits (two history events and a consumed event each) is one transaction
/// of a fixed number of statements; compared with 100 single commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_applies_large_batches() {
    let Some((store, _guard)) = fresh().await else { return };
    let mut records = Vec::new();
    for i in 0..200 {
        create(&store, &format!("e-{i:03}")).await;
        store.send_event(&format!("e-{i:03}"), "go", "{}", t(2)).await.unwrap();
        records.push(store.load(&format!("e-{i:03}")).await.unwrap().unwrap());
    }
    let commit = |record: &crate::store::ExecutionRecord| {
        let mut commit = Commit::on(record, t(3));
        let step = crate::store::HistoryEvent::new(t(3), crate::store::EventKind::StepStarted);
        commit.events = vec![step.clone(), step.with_attempt(2)];
        commit.consume = vec![1];
        commit
    };
    let started = Instant::now();
    let results = store.commit_batch(records[..100].iter().map(commit).collect()).await.unwrap();
    let batched = started.elapsed();
    assert!(results.iter().all(|result| result.as_ref().is_ok_and(|record| record.version == 2)));
    let started = Instant::now();
    for record in &records[100..] {
        store.commit(commit(record)).await.unwrap();
    }
    let single = started.elapsed();
    for record in &records {
        assert_eq!(store.history(&record.id).await.unwrap().len(), 3);
        assert!(store.inbox(&record.id).await.unwrap().is_empty());
    }
    eprintln!("postgres: 100 commits in one batch took {batched:?}, 100 single commits {single:?}");
}
