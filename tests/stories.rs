//! The order stories that the log and command-line tests tell, each on a testing `Harness`.

#![allow(dead_code)]

use std::time::Duration;

use durable_core::testing::{CrashAt, Harness};
use durable_examples::order::{Carrier, PAYMENT_TIMEOUT, Payment, order_workflow};

/// The carrier's failures are counted per process: stories that ship take turns.
pub static SHIPPING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn payment() -> Payment {
    Payment { amount: 4_200, reference: "pay-7".to_owned() }
}

pub fn harness() -> Harness {
    Harness::new().register(order_workflow)
}

/// Validated, paid, shipped.
pub async fn succeeded(h: &mut Harness, id: &str) {
    h.start(order_workflow, id, id.to_owned()).await.unwrap();
    h.send_event(id, "payment", &payment()).await.unwrap();
}

/// Validated, waiting for its payment.
pub async fn waiting(h: &mut Harness, id: &str) {
    h.start(order_workflow, id, id.to_owned()).await.unwrap();
}

/// Paid, then every attempt to ship it failed.
pub async fn shipment_failed(h: &mut Harness, id: &str) {
    h.start(order_workflow, id, id.to_owned()).await.unwrap();
    Carrier::fail_next(3);
    h.send_event(id, "payment", &payment()).await.unwrap();
    h.advance(Duration::from_secs(1)).await.unwrap();
    Carrier::fail_next(0);
}

/// Paid two hours after it started waiting, then shipped.
pub async fn resumed_after_two_hours(h: &mut Harness, id: &str) {
    h.start(order_workflow, id, id.to_owned()).await.unwrap();
    h.advance(Duration::from_secs(2 * 3600)).await.unwrap();
    h.send_event(id, "payment", &payment()).await.unwrap();
}

/// Shipping failed once and succeeded at the second attempt.
pub async fn retried(h: &mut Harness, id: &str) {
    h.start(order_workflow, id, id.to_owned()).await.unwrap();
    Carrier::fail_next(1);
    h.send_event(id, "payment", &payment()).await.unwrap();
    h.advance(Duration::from_secs(1)).await.unwrap();
    Carrier::fail_next(0);
}

/// No payment came within the timeout.
pub async fn timed_out(h: &mut Harness, id: &str) {
    h.start(order_workflow, id, id.to_owned()).await.unwrap();
    h.advance(PAYMENT_TIMEOUT).await.unwrap();
}

/// The process died right after the first checkpoint; a new one finished the order.
pub async fn crashed_after_validation(h: &mut Harness, id: &str) {
    h.crash_and_resume_at(id, CrashAt::Checkpoint(1));
    h.start(order_workflow, id, id.to_owned()).await.unwrap();
    h.send_event(id, "payment", &payment()).await.unwrap();
    assert_eq!(h.crashes(), 1);
}
