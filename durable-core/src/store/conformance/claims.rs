//! Conformance checks for claiming and leases.

use std::collections::HashSet;
use std::sync::Arc;

use super::{MINUTE, claim_ids, finish, start, suspend, t};
use crate::store::{Commit, Status, Store, StoreError};

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

/// An expired lease can be claimed by another worker; the old owner then can neither commit,
/// renew nor release.
pub async fn expired_lease_is_reclaimable<S: Store>(store: S) {
    start(&store, "e-1", "order", t(1)).await;
    let claimed = store.claim_due("w-a", t(10), MINUTE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let lease = claimed[0].lease.clone().unwrap();
    assert_eq!((lease.owner.as_str(), lease.until, claimed[0].version), ("w-a", t(70), 1));
    assert!(claim_ids(&store, "w-b", t(69), 10).await.is_empty(), "lease still valid");
    assert_eq!(claim_ids(&store, "w-b", t(70), 10).await, ["e-1"], "expired at `until`");

    let mut late = Commit::on(&claimed[0], t(71));
    late.lease_owner = Some("w-a".into());
    late.status = Status::Succeeded;
    let error = store.commit(late).await.unwrap_err();
    assert!(matches!(&error, StoreError::LeaseLost { owner, .. } if owner == "w-a"), "{error:?}");
    assert!(matches!(store.renew_lease("e-1", "w-a", t(200)).await, Err(StoreError::LeaseLost { .. })));
    assert!(matches!(store.release_lease("e-1", "w-a").await, Err(StoreError::LeaseLost { .. })));
    let record = store.load("e-1").await.unwrap().unwrap();
    assert_eq!((record.version, record.lease.map(|l| l.owner)), (1, Some("w-b".to_owned())));

    let mut owner_commit = Commit::on(&claimed[0], t(72));
    owner_commit.lease_owner = Some("w-b".into());
    assert_eq!(store.commit(owner_commit).await.unwrap().version, 2);
}

/// Renewing keeps others out; releasing lets them in at once; a commit can release the lease;
/// a commit by the owner after its lease expired fails even if nobody reclaimed it.
pub async fn lease_renew_and_release<S: Store>(store: S) {
    start(&store, "e-1", "order", t(1)).await;
    let claimed = store.claim_due("w-a", t(10), MINUTE, 1).await.unwrap().remove(0);
    store.renew_lease("e-1", "w-a", t(200)).await.unwrap();
    assert!(claim_ids(&store, "w-b", t(100), 10).await.is_empty());
    store.release_lease("e-1", "w-a").await.unwrap();
    store.release_lease("e-1", "w-a").await.expect("releasing a free lease is a no-op");
    assert!(matches!(store.renew_lease("e-1", "w-a", t(300)).await, Err(StoreError::LeaseLost { .. })));
    assert!(matches!(store.renew_lease("nope", "w-a", t(300)).await, Err(StoreError::NotFound(_))));

    let claimed_b = store.claim_due("w-b", t(100), MINUTE, 1).await.unwrap().remove(0);
    assert_eq!(claimed_b.lease.as_ref().map(|lease| lease.owner.as_str()), Some("w-b"));
    let mut expired = Commit::on(&claimed_b, t(160));
    expired.lease_owner = Some("w-b".into());
    assert!(matches!(store.commit(expired).await, Err(StoreError::LeaseLost { .. })));

    let mut release = Commit::on(&claimed, t(150));
    release.lease_owner = Some("w-b".into());
    release.release_lease = true;
    let record = store.commit(release).await.unwrap();
    assert_eq!((record.lease, record.version), (None, 2));
    assert_eq!(claim_ids(&store, "w-c", t(150), 10).await, ["e-1"]);
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

    assert!(store.claim_due("w", t(50), MINUTE, 0).await.unwrap().is_empty());
    assert_eq!(claim_ids(&store, "w", t(50), 2).await, ["timer-early", "running-a"]);
    assert_eq!(claim_ids(&store, "w", t(50), 10).await, ["running-b", "event", "running-late"]);
}

/// `claim` leases one execution whether or not it is due, never from another owner's valid
/// lease and never a finished one; it does not change the version.
pub async fn claim_one_rules<S: Store>(store: S) {
    assert!(matches!(store.claim("nope", "w-a", t(1), MINUTE).await, Err(StoreError::NotFound(_))));
    let record = start(&store, "e-1", "order", t(1)).await;
    suspend(&store, &record, Some(t(1_000)), Some("payment")).await;
    let claimed = store.claim("e-1", "w-a", t(10), MINUTE).await.unwrap();
    let claimed = claimed.expect("a suspended execution with no lease is claimable");
    assert_eq!(claimed.lease.as_ref().map(|l| (l.owner.as_str(), l.until)), Some(("w-a", t(70))));
    assert_eq!((claimed.version, claimed.status), (2, Status::Suspended));
    assert_eq!(store.load("e-1").await.unwrap().unwrap(), claimed);
    assert_eq!(store.claim("e-1", "w-b", t(69), MINUTE).await.unwrap(), None);
    assert!(claim_ids(&store, "w-b", t(69), 10).await.is_empty());
    let again = store.claim("e-1", "w-a", t(20), MINUTE).await.unwrap().unwrap();
    assert_eq!(again.lease.map(|l| l.until), Some(t(80)), "the owner extends its lease");
    let taken = store.claim("e-1", "w-b", t(80), MINUTE).await.unwrap().unwrap();
    assert_eq!(taken.lease.map(|l| l.owner), Some("w-b".to_owned()), "expired at `until`");

    let done = start(&store, "done", "order", t(1)).await;
    finish(&store, &done, Status::Succeeded).await;
    assert_eq!(store.claim("done", "w-a", t(10), MINUTE).await.unwrap(), None);
    assert_eq!(store.load("done").await.unwrap().unwrap().lease, None);
}
