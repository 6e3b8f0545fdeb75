//! The order workflow: validate, wait for the payment, ship with retries.
fn main() {}
