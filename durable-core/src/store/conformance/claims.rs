//! Conformance checks for claiming and leases.

use std::collections::HashSet;
use std::sync::Arc;

use super::{MINUTE, claim_ids, clock, finish, start, suspend, t};
use crate::store::{Commit, Status, Store, StoreError};
use crate::time::{ManualClock, SharedClock};

/// Concurrent claimers (on other tasks: the store's futures are `Send`) never get the same
/// execution while its lease is valid.
pub async fn concurrent_claimers_never_share<S: Store>(store: S) {
    let store = Arc::new(store);
    for i in 0..24 {
        start(&*store, &format!("e-{i:02}"), "order", t(1)).await;
    }
    let claimers = ["w-1", "w-2", "w-3"].map(|owner| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = claim_ids(&*store, owner, t(2), 3).await;
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got);
                tokio::task::yield_now().await;
            }
        })
    });
    let mut seen = HashSet::new();
    for claimer in claimers {
        for id in claimer.await.expect("claimer task") {
            assert!(seen.insert(id.clone()), "{id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), 24);
    let spawned = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.load("e-00").await }
    });
    let lease = spawned.await.unwrap().unwrap().and_then(|record| record.lease).unwrap();
    assert_eq!(lease.until, t(62));
}

/// An expired lease can be claimed by another worker; the old claim then can neither commit,
/// renew nor release. Every claim takes the next epoch.
pub async fn expired_lease_is_reclaimable<S: Store>(store: S) {
    start(&store, "e-1", "order", t(1)).await;
    let claimed = store.claim_due("w-a", &clock(t(10)), MINUTE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let lease = claimed[0].lease.clone().unwrap();
    assert_eq!((lease.owner.as_str(), lease.epoch, lease.until, claimed[0].version), ("w-a", 1, t(70), 1));
    assert!(claim_ids(&store, "w-b", t(69), 10).await.is_empty(), "lease still valid");
    let taken = store.claim_due("w-b", &clock(t(70)), MINUTE, 10).await.unwrap();
    assert_eq!(taken.len(), 1, "expired at `until`");
    let taken = taken[0].lease.clone().unwrap();
    assert_eq!((taken.owner.as_str(), taken.epoch, taken.until), ("w-b", 2, t(130)));

    let mut late = Commit::on(&claimed[0], t(71));
    late.lease = Some(lease.token());
    late.status = Status::Succeeded;
    let error = store.commit(late).await.unwrap_err();
    assert!(matches!(&error, StoreError::LeaseLost { owner, .. } if owner == "w-a"), "{error:?}");
    let renewed = store.renew_lease("e-1", &lease.token(), &clock(t(72)), MINUTE).await;
    assert!(matches!(renewed, Err(StoreError::LeaseLost { .. })), "{renewed:?}");
    assert!(matches!(store.release_lease("e-1", &lease.token()).await, Err(StoreError::LeaseLost { .. })));
    let record = store.load("e-1").await.unwrap().unwrap();
    assert_eq!((record.version, record.lease), (1, Some(taken.clone())));

    let mut owner_commit = Commit::on(&claimed[0], t(72));
    owner_commit.lease = Some(taken.token());
    assert_eq!(store.commit(owner_commit).await.unwrap().version, 2);
}

/// A worker that claims an execution again (its own lease had expired) gets a new epoch, and
/// its older claim is fenced out like anyone else's: no commit, renewal or release under it.
pub async fn same_owner_reclaim_fences_the_old_claim<S: Store>(store: S) {
    start(&store, "e-1", "order", t(1)).await;
    let first = store.claim_due("w-a", &clock(t(10)), MINUTE, 1).await.unwrap().remove(0);
    let old = first.lease.clone().unwrap().token();
    let second = store.claim_due("w-a", &clock(t(70)), MINUTE, 1).await.unwrap().remove(0);
    let new = second.lease.clone().unwrap().token();
    assert_eq!((old.epoch, new.epoch, new.owner.as_str()), (1, 2, "w-a"));

    assert!(matches!(store.release_lease("e-1", &old).await, Err(StoreError::LeaseLost { .. })));
    let renewed = store.renew_lease("e-1", &old, &clock(t(71)), MINUTE).await;
    assert!(matches!(renewed, Err(StoreError::LeaseLost { .. })), "{renewed:?}");
    let stale = Commit { lease: Some(old), ..Commit::on(&first, t(71)) };
    assert!(matches!(store.commit(stale).await, Err(StoreError::LeaseLost { .. })));
    assert_eq!(store.load("e-1").await.unwrap().unwrap().lease, second.lease, "the new claim is untouched");

    let current = Commit { lease: Some(new.clone()), ..Commit::on(&second, t(72)) };
    assert_eq!(store.commit(current).await.unwrap().version, 2);
    store.release_lease("e-1", &new).await.unwrap();
    let third = store.claim("e-1", "w-a", &clock(t(73)), MINUTE).await.unwrap().unwrap();
    assert_eq!(third.lease.map(|lease| lease.epoch), Some(3), "epochs never go back, also after a release");
}

/// A lease runs from the time the store grants it: the store reads the clock for it, so a
/// caller that read the time earlier does not shorten it. Renewals work the same way.
pub async fn lease_runs_from_the_grant<S: Store>(store: S) {
    start(&store, "e-1", "order", t(1)).await;
    let clock = clock(t(10));
    let claimed = store.claim_due("w-a", &clock, MINUTE, 1).await.unwrap().remove(0);
    let token = claimed.lease.clone().unwrap().token();
    assert_eq!(claimed.lease.map(|lease| lease.until), Some(t(70)));
    let manual = ManualClock::new(t(100));
    let renewed = store.renew_lease("e-1", &token, &(Arc::new(manual) as SharedClock), MINUTE).await.unwrap();
    assert_eq!((renewed.until, renewed.epoch), (t(160), 1), "renewed from its grant, also after it expired");
    assert_eq!(store.load("e-1").await.unwrap().unwrap().lease, Some(renewed));
}

/// Renewing keeps others out; releasing lets them in at once; a commit can release the lease;
/// a commit under a claim that expired but that nobody replaced still applies (nobody else can
/// have run the execution meanwhile).
pub async fn lease_renew_and_release<S: Store>(store: S) {
    start(&store, "e-1", "order", t(1)).await;
    let claimed = store.claim_due("w-a", &clock(t(10)), MINUTE, 1).await.unwrap().remove(0);
    let token = claimed.lease.clone().unwrap().token();
    store.renew_lease("e-1", &token, &clock(t(140)), MINUTE).await.unwrap();
    assert!(claim_ids(&store, "w-b", t(199), 10).await.is_empty());
    store.release_lease("e-1", &token).await.unwrap();
    store.release_lease("e-1", &token).await.expect("releasing a free lease is a no-op");
    let renewed = store.renew_lease("e-1", &token, &clock(t(200)), MINUTE).await;
    assert!(matches!(renewed, Err(StoreError::LeaseLost { .. })), "a released lease is not renewed");
    let missing = store.renew_lease("nope", &token, &clock(t(200)), MINUTE).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");

    let claimed_b = store.claim_due("w-b", &clock(t(100)), MINUTE, 1).await.unwrap().remove(0);
    let token_b = claimed_b.lease.clone().unwrap().token();
    assert_eq!((token_b.owner.as_str(), token_b.epoch), ("w-b", 2));
    let expired = Commit { lease: Some(token_b.clone()), ..Commit::on(&claimed_b, t(170)) };
    let expired = store.commit(expired).await.expect("an expired claim nobody replaced still commits");
    assert_eq!(expired.version, 2);

    let release = Commit { lease: Some(token_b), release_lease: true, ..Commit::on(&expired, t(171)) };
    let record = store.commit(release).await.unwrap();
    assert_eq!((record.lease, record.version), (None, 3));
    assert_eq!(claim_ids(&store, "w-c", t(171), 10).await, ["e-1"]);
}

/// A suspended execution is due when its timer has passed or a matching event waits in its
/// inbox, and not otherwise.
pub async fn suspended_due_rules<S: Store>(store: S) {
    let timer = start(&store, "timer", "order", t(1)).await;
    suspend(&store, &timer, Some(t(100)), None).await;
    let event = start(&store, "event", "order", t(1)).await;
    suspend(&store, &event, None, Some("payment")).await;
    let both = start(&store, "both", "order", t(1)).await;
    suspend(&store, &both, Some(t(500)), Some("payment")).await;
    let never = start(&store, "never", "order", t(1)).await;
    suspend(&store, &never, None, None).await;

    store.send_event("event", "refund", "{}", t(2)).await.unwrap();
    store.send_event("never", "payment", "{}", t(2)).await.unwrap();
    assert!(claim_ids(&store, "w", t(99), 10).await.is_empty());
    assert_eq!(claim_ids(&store, "w", t(100), 10).await, ["timer"]);

    store.send_event("event", "payment", "{}", t(101)).await.unwrap();
    store.send_event("both", "payment", "{}", t(102)).await.unwrap();
    assert_eq!(claim_ids(&store, "w", t(103), 10).await, ["event", "both"]);
    assert!(claim_ids(&store, "w", t(150), 10).await.is_empty(), "all leased or never due");
}

/// Finished executions are never claimed, whatever their wake-up time or inbox.
pub async fn terminal_never_claimed<S: Store>(store: S) {
    for (id, status) in [("s", Status::Succeeded), ("f", Status::Failed), ("c", Status::Cancelled)] {
        let record = start(&store, id, "order", t(1)).await;
        finish(&store, &record, status).await;
    }
    assert!(claim_ids(&store, "w", t(1_000), 10).await.is_empty());
    let history = store.history("s").await.unwrap();
    assert_eq!(history.len(), 1);
}

/// The longest-due come first; `limit` caps the batch.
pub async fn claim_order_and_limit<S: Store>(store: S) {
    start(&store, "running-late", "order", t(30)).await;
    let early = start(&store, "timer-early", "order", t(40)).await;
    suspend(&store, &early, Some(t(10)), None).await;
    start(&store, "running-b", "order", t(20)).await;
    start(&store, "running-a", "order", t(20)).await;
    let event = start(&store, "event", "order", t(5)).await;
    suspend(&store, &event, None, Some("go")).await;
    store.send_event("event", "go", "{}", t(25)).await.unwrap();

    assert!(store.claim_due("w", &ManualClock::shared(t(50)), MINUTE, 0).await.unwrap().is_empty());
    assert_eq!(claim_ids(&store, "w", t(50), 2).await, ["timer-early", "running-a"]);
    assert_eq!(claim_ids(&store, "w", t(50), 10).await, ["running-b", "event", "running-late"]);
}

/// `claim` leases one execution whether or not it is due, never from another owner's valid
/// lease and never a finished one; it does not change the version.
pub async fn claim_one_rules<S: Store>(store: S) {
    assert!(matches!(store.claim("nope", "w-a", &clock(t(1)), MINUTE).await, Err(StoreError::NotFound(_))));
    let record = start(&store, "e-1", "order", t(1)).await;
    suspend(&store, &record, Some(t(1_000)), Some("payment")).await;
    let claimed = store.claim("e-1", "w-a", &clock(t(10)), MINUTE).await.unwrap();
    let claimed = claimed.expect("a suspended execution with no lease is claimable");
    assert_eq!(claimed.lease.as_ref().map(|l| (l.owner.as_str(), l.until)), Some(("w-a", t(70))));
    assert_eq!((claimed.version, claimed.status), (2, Status::Suspended));
    assert_eq!(store.load("e-1").await.unwrap().unwrap(), claimed);
    assert_eq!(store.claim("e-1", "w-b", &clock(t(69)), MINUTE).await.unwrap(), None);
    assert!(claim_ids(&store, "w-b", t(69), 10).await.is_empty());
    let again = store.claim("e-1", "w-a", &clock(t(20)), MINUTE).await.unwrap();
    assert_eq!(again, None, "one claim never extends another, not even the same worker's");
    let taken = store.claim("e-1", "w-b", &clock(t(70)), MINUTE).await.unwrap().unwrap();
    let taken = taken.lease.map(|l| (l.owner, l.epoch));
    assert_eq!(taken, Some(("w-b".to_owned(), 2)), "expired at `until`, claimed under the next epoch");

    let done = start(&store, "done", "order", t(1)).await;
    finish(&store, &done, Status::Succeeded).await;
    assert_eq!(store.claim("done", "w-a", &clock(t(10)), MINUTE).await.unwrap(), None);
    assert_eq!(store.load("done").await.unwrap().unwrap().lease, None);
}
