//! The order workflow from the design: validate the order, wait (up to two days) for its payment,
//! ship it with retries.
//!
//! The services it calls are stand-ins that behave like real ones: validation refuses ids that
//! start with `bad-`, and the carrier can be told to fail a number of times first (see
//! [`Carrier::fail_next`]) so that retries can be watched.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use durable_core::prelude::*;
use serde::{Deserialize, Serialize};

/// A validated order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id.
    pub id: String,
    /// What to ship.
    pub items: Vec<String>,
    /// The amount due, in cents.
    pub amount: u64,
}

/// The payment event an order waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The amount paid, in cents.
    pub amount: u64,
    /// The payment provider's reference.
    pub reference: String,
}

/// What shipping an order gives back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// The order shipped.
    pub order_id: String,
    /// The carrier's tracking number.
    pub tracking: String,
}

/// How long an order waits for its payment.
pub const PAYMENT_TIMEOUT: Duration = Duration::from_secs(48 * 3600);

/// Validate, wait for the payment, ship.
#[durable(key = order_id)]
pub async fn order_workflow(order_id: String) -> Result<Shipment, WorkflowError> {
    let order = step!("validate_order", validate_order(&order_id).await)?;
    let payment: Payment = wait!("payment", event, timeout = PAYMENT_TIMEOUT)?;
    if payment.amount < order.amount {
        return Err(WorkflowError::new(format!(
            "payment {} covers {} of {} cents",
            payment.reference, payment.amount, order.amount
        )));
    }
    let shipment = step!(
        "ship_order",
        retry = Retry::exponential(3).initial_delay(Duration::from_millis(200)),
        Carrier::ship(&order, &payment).await
    )?;
    Ok(shipment)
}

/// Checks the order and prices it. Ids starting with `bad-` are refused for good.
pub async fn validate_order(order_id: &str) -> Result<Order, StepError> {
    if order_id.starts_with("bad-") {
        return Err(StepError::terminal(format!("order {order_id} does not exist")));
    }
    Ok(Order { id: order_id.to_owned(), items: vec!["book".to_owned(), "lamp".to_owned()], amount: 4_200 })
}

/// The shipping carrier stand-in.
pub struct Carrier;

static FAILURES_LEFT: AtomicU32 = AtomicU32::new(0);

impl Carrier {
    /// Makes the next `n` shipments in this process fail with a transient error.
    pub fn fail_next(n: u32) {
        FAILURES_LEFT.store(n, Ordering::SeqCst);
    }

    /// Ships the order, or fails if told to.
    pub async fn ship(order: &Order, payment: &Payment) -> Result<Shipment, std::io::Error> {
        let failing = FAILURES_LEFT.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if failing {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "carrier did not answer in time"));
        }
        Ok(Shipment { order_id: order.id.clone(), tracking: format!("TRK-{}-{}", order.id, payment.reference) })
    }
}
