//! The trip story: reserve a flight, a hotel and a car at once, have a payment authorized by a
//! payment provider that answers through a callback (in a child workflow of its own), and undo
//! the reservations made when a part of the trip cannot be booked.
//!
//! The services are stand-ins: a reservation of anything named `none` is refused, and the
//! payment provider records the callback tokens it is handed (see [`PaymentProvider`]) so that
//! the example can answer them as the provider's webhook would.

use std::sync::Mutex;
use std::time::Duration;

use durable_core::prelude::*;
use serde::{Deserialize, Serialize};

/// What a traveller asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TripRequest {
    /// The flight's number.
    pub flight: String,
    /// The hotel's name.
    pub hotel: String,
    /// The car's class.
    pub car: String,
    /// The price, in cents.
    pub amount: u64,
}

/// A reservation a supplier confirmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// What was reserved (`flight LH400`).
    pub what: String,
    /// The supplier's reference.
    pub reference: String,
}

/// How long a payment may wait for the provider's answer.
pub const AUTHORIZATION_TIMEOUT: Duration = Duration::from_secs(3600);

/// Reserve all three parts at once; pay; undo the reservations if a part or the payment fails.
#[durable(key = trip_id)]
pub async fn trip_workflow(trip_id: String, request: TripRequest) -> Result<Vec<Reservation>, WorkflowError> {
    let reserved = parallel!(
        "reserve",
        [
            reserve("flight", &request.flight).await,
            reserve("hotel", &request.hotel).await,
            reserve("car", &request.car).await,
        ]
    )?;
    let made: Vec<Reservation> = reserved.succeeded().into_iter().map(|(_, r)| r.clone()).collect();
    if reserved.failed_count() > 0 {
        let why = reserved.into_result().err().map(|e| e.message().to_owned()).unwrap_or_default();
        let released = map!("release", made, |reservation| release(&reservation).await)?;
        return Err(WorkflowError::new(format!(
            "trip {trip_id} not booked: {why}; released {} reservation(s)",
            released.succeeded_count()
        )));
    }
    match call!("pay", payment_workflow, (trip_id.clone(), request.amount)) {
        Ok(authorization) => {
            step!("confirm", confirm(&trip_id, &authorization).await)?;
            Ok(made)
        }
        Err(error) => {
            map!("release_after_payment", made, |reservation| release(&reservation).await)?;
            Err(WorkflowError::new(format!("trip {trip_id} not booked: {error}")))
        }
    }
}

/// A child workflow: ask the provider to authorize `amount` and wait for its answer.
#[durable(key = trip_id)]
pub async fn payment_workflow(trip_id: String, amount: u64) -> Result<String, WorkflowError> {
    let authorization: String = wait!(
        "authorization",
        callback = |token| PaymentProvider::submit(&trip_id, amount, token).await,
        retry = Retry::exponential(3),
        timeout = AUTHORIZATION_TIMEOUT
    )?;
    Ok(authorization)
}

/// Reserves `what` named `name` with its supplier.
async fn reserve(what: &str, name: &str) -> Result<Reservation, StepError> {
    tokio::task::yield_now().await;
    if name == "none" {
        return Err(StepError::terminal(format!("no {what} available")));
    }
    Ok(Reservation { what: format!("{what} {name}"), reference: format!("{what}-{}", name.to_lowercase()) })
}

/// Gives a reservation back.
async fn release(reservation: &Reservation) -> Result<String, std::io::Error> {
    tokio::task::yield_now().await;
    Ok(format!("released {}", reservation.reference))
}

/// Tells the traveller.
async fn confirm(trip_id: &str, authorization: &str) -> Result<(), std::io::Error> {
    tracing::info!(trip_id, authorization, "trip confirmed");
    Ok(())
}

/// The payment provider: it takes a payment request with a callback token and answers later,
/// through its webhook, with [`Engine::complete_callback`](durable_core::Engine::complete_callback).
pub struct PaymentProvider;

/// The requests the provider has not answered yet: `(trip, amount, token)`.
static PENDING: Mutex<Vec<(String, u64, String)>> = Mutex::new(Vec::new());

impl PaymentProvider {
    /// Takes a payment request; the answer comes later.
    pub async fn submit(trip_id: &str, amount: u64, token: String) -> Result<(), std::io::Error> {
        let mut pending = PENDING.lock().map_err(|_| std::io::Error::other("the provider is down"))?;
        pending.push((trip_id.to_owned(), amount, token));
        Ok(())
    }

    /// The requests waiting for an answer, taken.
    pub fn take_pending() -> Vec<(String, u64, String)> {
        PENDING.lock().map(|mut pending| std::mem::take(&mut *pending)).unwrap_or_default()
    }
}
