//! The lease a run holds, and the runs this process holds leases for.
//!
//! A run commits, renews and releases with the [`LeaseToken`] of the claim it runs under, so a
//! run that lost its lease is fenced out by the store. The run's host, its renewal loop and the
//! worker share one [`HeldLease`]: when a worker's claim hands back an execution this process is
//! still running (its renewals could not reach the store for a whole lease, and nobody else took
//! it), the new claim is given to the run already in flight instead of starting a second run of
//! the same execution next to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::store::{ExecutionId, Lease, LeaseToken, Store, StoreError};
use crate::time::{SharedClock, Timestamp};

/// The lease of one run, as last granted by the store.
#[derive(Debug)]
pub(crate) struct HeldLease(Mutex<Lease>);

impl HeldLease {
    pub(crate) fn new(lease: Lease) -> Arc<Self> {
        Arc::new(HeldLease(Mutex::new(lease)))
    }

    fn get(&self) -> Lease {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The token of the claim the run holds now.
    pub(crate) fn token(&self) -> LeaseToken {
        self.get().token()
    }

    /// When the lease ends, as last granted.
    pub(crate) fn until(&self) -> Timestamp {
        self.get().until
    }

    fn set(&self, lease: Lease) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = lease;
    }

    /// Extends the lease to `length` from the time the store grants it.
    ///
    /// A renewal refused because the process itself claimed the execution again meanwhile (the
    /// new claim was handed to this run) is not a loss: the run holds the newer claim.
    pub(crate) async fn renew<S: Store>(
        &self,
        store: &S,
        id: &str,
        clock: &SharedClock,
        length: Duration,
    ) -> Result<(), StoreError> {
        let token = self.token();
        match store.renew_lease(id, &token, clock, length).await {
            Ok(lease) => {
                let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
                if held.token() == token {
                    *held = lease;
                }
                Ok(())
            }
            Err(StoreError::LeaseLost { .. }) if self.token() != token => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Makes sure the lease has at least half its length left before the run starts a step
    /// body, renewing it first if not: a run whose renewals fell behind (a stalled store, a
    /// paused process) finds out it lost its lease here, before the body runs, not after.
    pub(crate) async fn confirm<S: Store>(
        &self,
        store: &S,
        id: &str,
        clock: &SharedClock,
        length: Duration,
    ) -> Result<(), StoreError> {
        let left = self.until().saturating_since(clock.now());
        if left.saturating_mul(2) > length {
            return Ok(());
        }
        self.renew(store, id, clock, length).await
    }
}

/// The executions this process runs, by id.
#[derive(Debug, Default)]
pub(crate) struct Active(Mutex<HashMap<ExecutionId, Arc<HeldLease>>>);

impl Active {
    /// Registers a run of execution `id` under `lease`. If the process already runs `id`, that
    /// run takes the new claim and `None` says not to start another one.
    pub(crate) fn enter(&self, id: &str, lease: Lease) -> Option<Entered<'_>> {
        let mut active = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = active.get(id) {
            tracing::warn!(
                "{id}: claimed again while this process still runs it (its lease had lapsed); the run in \
                 flight goes on under the new claim"
            );
            running.set(lease);
            return None;
        }
        let held = HeldLease::new(lease);
        active.insert(id.to_owned(), Arc::clone(&held));
        Some(Entered { active: self, id: id.to_owned(), held })
    }
}

/// A run registered in [`Active`]; it leaves when dropped.
pub(crate) struct Entered<'a> {
    active: &'a Active,
    id: ExecutionId,
    pub(crate) held: Arc<HeldLease>,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.active.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}
