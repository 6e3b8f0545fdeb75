//! End to end: every control-flow form a workflow uses, run uninterrupted and then crashed after
//! every checkpoint in turn and resumed from the stored record alone.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use common::{Layout, crash_everywhere, crash_everywhere_with_events, effect};
use durable_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    id: String,
    items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    sku: String,
    qty: u64,
}

fn order(id: &str, n: u64) -> Order {
    Order { id: id.to_owned(), items: (1..=n).map(|i| Item { sku: format!("sku-{i}"), qty: i }).collect() }
}

// ------------------------------------------------------------------ straight line

#[durable]
async fn straight_line(order_id: String) -> Result<String, WorkflowError> {
    let scratch = order_id.len();
    let order = step!("validate", effect("validate", order(&order_id, scratch as u64)).await)?;
    let count = order.items.len();
    let total = step!("price", effect("price", count as u64 * 10).await)?;
    let receipt = step!("charge", effect("charge", format!("rcpt-{total}")).await)?;
    Ok(format!("{} {receipt}", order.id))
}

#[tokio::test]
async fn straight_line_keeps_only_what_is_used_later() {
    let result = crash_everywhere(
        straight_line,
        "o-1".to_owned(),
        &[("validate", &["order"]), ("price", &["order", "total"]), ("charge", &["order", "receipt"])],
    )
    .await;
    assert_eq!(result, Ok("o-1 rcpt-30".to_owned()));
}

// ------------------------------------------------------------------ let patterns

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Quote {
    price: u64,
    currency: String,
}

#[durable]
async fn let_patterns(n: u64) -> Result<String, WorkflowError> {
    let (low, high) = step!("range", effect("range", (n, n * 3)).await)?;
    let Quote { price, currency } =
        step!("quote", effect("quote", Quote { price: low + high, currency: "EUR".into() }).await)?;
    let (mut a, b) = (price, 1);
    a += step!("bump", effect("bump", b).await)?;
    Ok(format!("{a} {currency} {high}"))
}

#[tokio::test]
async fn let_with_tuple_and_struct_patterns() {
    let result = crash_everywhere(
        let_patterns,
        5,
        &[("range", &["high", "low"]), ("quote", &["currency", "high", "price"]), ("bump", &["a", "currency", "high"])],
    )
    .await;
    assert_eq!(result, Ok("21 EUR 15".to_owned()));
}

// ------------------------------------------------------------------ if / else if / else

#[durable]
async fn branches(amount: u64) -> Result<String, WorkflowError> {
    let note = format!("amount {amount}");
    let route = if amount > 100 {
        let approved = step!("approve", effect("approve", amount > 150).await)?;
        if approved { "manual-approved".to_owned() } else { "manual-rejected".to_owned() }
    } else if amount > 10 {
        step!("auto", effect("auto", "auto".to_owned()).await)?
    } else {
        "free".to_owned()
    };
    let receipt = step!("record", effect("record", format!("{note}: {route}")).await)?;
    Ok(receipt)
}

#[tokio::test]
async fn if_else_if_else_with_points_in_branches() {
    let cases: [(u64, &str, Layout); 4] = [
        (200, "amount 200: manual-approved", &[("approve", &["approved", "note"]), ("record", &["receipt"])]),
        (120, "amount 120: manual-rejected", &[("approve", &["approved", "note"]), ("record", &["receipt"])]),
        (50, "amount 50: auto", &[("auto", &["__v", "note"]), ("record", &["receipt"])]),
        (5, "amount 5: free", &[("record", &["receipt"])]),
    ];
    for (amount, expected, layout) in cases {
        assert_eq!(crash_everywhere(branches, amount, layout).await, Ok(expected.to_owned()));
    }
}

// ------------------------------------------------------------------ match with guards

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Payment {
    Card { last4: String },
    Invoice(u64),
    Free,
}

#[durable]
async fn match_guards(payment: Payment) -> Result<String, WorkflowError> {
    let outcome = match payment {
        Payment::Card { last4 } if last4 == "0000" => return Err(WorkflowError::new("test card")),
        Payment::Card { last4 } => {
            let auth = step!("authorize", effect("authorize", format!("auth-{last4}")).await)?;
            format!("card {auth}")
        }
        Payment::Invoice(days) if days > 30 => {
            step!("long_invoice", effect("long_invoice", format!("invoice {days}d")).await)?
        }
        Payment::Invoice(days) => format!("invoice {days}d"),
        Payment::Free => String::from("free"),
    };
    let done = step!("settle", effect("settle", outcome.len()).await)?;
    Ok(format!("{outcome} ({done})"))
}

#[tokio::test]
async fn match_with_guards_and_points_in_arms() {
    let card = Payment::Card { last4: "4242".into() };
    let layout: &[(&str, &[&str])] =
        &[("authorize", &["auth"]), ("long_invoice", &["__v"]), ("settle", &["done", "outcome"])];
    assert_eq!(crash_everywhere(match_guards, card, layout).await, Ok("card auth-4242 (14)".into()));
    assert_eq!(crash_everywhere(match_guards, Payment::Invoice(45), layout).await, Ok("invoice 45d (11)".into()));
    assert_eq!(crash_everywhere(match_guards, Payment::Invoice(10), layout).await, Ok("invoice 10d (11)".into()));
    assert_eq!(crash_everywhere(match_guards, Payment::Free, layout).await, Ok("free (4)".into()));
    let test_card = Payment::Card { last4: "0000".into() };
    assert_eq!(crash_everywhere(match_guards, test_card, layout).await, Err(WorkflowError::new("test card")));
}

// ------------------------------------------------------------------ loop with break value

#[durable]
async fn poll_until_ready(threshold: u64) -> Result<String, WorkflowError> {
    let mut attempts = 0u64;
    let label = String::from("poll");
    let value = loop {
        attempts += 1;
        let reading = step!("read", effect(format!("read {attempts}"), attempts * 7).await)?;
        if reading >= threshold {
            break reading;
        }
        wait!("backoff", Duration::from_secs(60));
    };
    Ok(format!("{label} {value} after {attempts}"))
}

#[tokio::test]
async fn loop_with_break_value_and_timer() {
    let result = crash_everywhere(
        poll_until_ready,
        20,
        &[
            ("read", &["attempts", "label", "reading", "threshold"]),
            ("backoff", &["__wake_at", "attempts", "label", "threshold"]),
        ],
    )
    .await;
    assert_eq!(result, Ok("poll 21 after 3".to_owned()));
}

// ------------------------------------------------------------------ while

#[durable]
async fn countdown(from: u64) -> Result<u64, WorkflowError> {
    let mut left = from;
    let mut sum = 0;
    while left > 0 {
        sum += step!("tick", effect(format!("tick {left}"), left).await)?;
        left -= 1;
    }
    Ok(sum)
}

#[tokio::test]
async fn while_loop_with_a_point() {
    let result = crash_everywhere(countdown, 4, &[("tick", &["left", "sum"])]).await;
    assert_eq!(result, Ok(10));
}

// ------------------------------------------------------------------ while let

#[durable]
async fn drain_queue(jobs: Vec<String>) -> Result<Vec<String>, WorkflowError> {
    let mut queue: VecDeque<String> = jobs.into_iter().collect();
    let mut done = Vec::new();
    while let Some(job) = queue.pop_front() {
        let result = step!("run_job", effect(format!("job {job}"), job.to_uppercase()).await)?;
        done.push(result);
    }
    Ok(done)
}

#[tokio::test]
async fn while_let_over_a_queue() {
    let jobs = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
    let result = crash_everywhere(drain_queue, jobs, &[("run_job", &["done", "queue", "result"])]).await;
    assert_eq!(result, Ok(vec!["A".to_owned(), "B".to_owned(), "C".to_owned()]));
}

// ------------------------------------------------------------------ for, nested, continue, labeled break

#[durable]
async fn price_orders(orders: Vec<Order>) -> Result<u64, WorkflowError> {
    let mut total = 0;
    'orders: for order in orders {
        if order.id.starts_with("skip") {
            continue;
        }
        for item in order.items.clone() {
            if item.qty == 0 {
                continue;
            }
            if item.sku == "stop" {
                break 'orders;
            }
            let price = step!("price_item", effect(format!("{} {}", order.id, item.sku), item.qty * 10).await)?;
            total += price;
        }
    }
    Ok(total)
}

#[tokio::test]
async fn for_loops_store_only_the_remaining_items() {
    let mut skipped = order("skip-1", 2);
    skipped.items[0].qty = 9;
    let mut with_zero = order("o-2", 3);
    with_zero.items[1].qty = 0;
    let orders = vec![order("o-1", 2), skipped, with_zero];
    let layout: &[(&str, &[&str])] = &[("price_item", &["__iter1", "__iter2", "order", "price", "total"])];
    let result = crash_everywhere(price_orders, orders.clone(), layout).await;
    assert_eq!(result, Ok(10 + 20 + 10 + 30));

    // The stored iterators hold only what is left: after the first item of o-1, one item of
    // o-1 and the two orders after it.
    let mut run = durable_core::testing::TestRun::start(price_orders, "for", orders);
    run.run_to_end().await.unwrap().unwrap();
    let first: serde_json::Value = serde_json::from_str(&run.stored().checkpoints[0].state).unwrap();
    assert_eq!(first["price_item"]["__iter1"].as_array().unwrap().len(), 2);
    assert_eq!(first["price_item"]["__iter2"].as_array().unwrap().len(), 1);

    let stop = vec![
        order("o-1", 1),
        Order { id: "o-2".into(), items: vec![Item { sku: "stop".into(), qty: 1 }] },
        order("o-3", 1),
    ];
    assert_eq!(crash_everywhere(price_orders, stop, layout).await, Ok(10));
}

// ------------------------------------------------------------------ blocks as values, early return, `?`

#[durable]
async fn blocks_and_returns(input: String) -> Result<u64, WorkflowError> {
    let parsed: u64 = input.trim().parse().map_err(|e| WorkflowError::new(format!("bad input: {e}")))?;
    let doubled = {
        let base = step!("base", effect("base", parsed).await)?;
        base * 2
    };
    if doubled > 1000 {
        return Err(WorkflowError::new("too large"));
    }
    for round in 0..3u64 {
        let value = step!("round", effect(format!("round {round}"), doubled + round).await)?;
        if value % 5 == 0 {
            return Ok(value);
        }
    }
    let fallback = step!("fallback", effect("fallback", 1).await)?;
    Ok(fallback)
}

#[tokio::test]
async fn blocks_as_values_early_returns_and_question_marks() {
    let layout: &[(&str, &[&str])] =
        &[("base", &["base"]), ("round", &["__iter1", "doubled", "value"]), ("fallback", &["fallback"])];
    assert_eq!(crash_everywhere(blocks_and_returns, "4".into(), layout).await, Ok(10));
    assert_eq!(crash_everywhere(blocks_and_returns, "1".into(), layout).await, Ok(1));
    assert_eq!(crash_everywhere(blocks_and_returns, "600".into(), layout).await, Err(WorkflowError::new("too large")));
    let bad = crash_everywhere(blocks_and_returns, "x".into(), layout).await;
    assert_eq!(bad.unwrap_err().message(), "bad input: invalid digit found in string");
}

// ------------------------------------------------------------------ shadowing, awaits, late types

#[durable]
async fn shadowing(raw: String) -> Result<String, WorkflowError> {
    let value = step!("fetch", effect("fetch", raw.clone()).await)?;
    let value: u64 = value.len() as u64;
    let value = step!("scale", effect("scale", value * 3).await)?;
    tokio::time::sleep(Duration::from_millis(1)).await;
    // `seen`'s element type is fixed only after the next point.
    let mut seen = Vec::new();
    let extra = step!("extra", effect("extra", 7u64).await)?;
    seen.push(value);
    seen.push(extra);
    let value = format!("{raw}:{seen:?}");
    Ok(value)
}

#[tokio::test]
async fn shadowed_names_plain_awaits_and_types_fixed_after_a_point() {
    let layout: &[(&str, &[&str])] =
        &[("fetch", &["raw", "value"]), ("scale", &["raw", "value"]), ("extra", &["extra", "raw", "seen", "value"])];
    assert_eq!(crash_everywhere(shadowing, "abcd".into(), layout).await, Ok("abcd:[12, 7]".to_owned()));
}

// ------------------------------------------------------------------ generic workflows and the context

#[durable]
async fn echo_twice<T>(ctx: &Ctx, value: T) -> Result<(String, Vec<T>), WorkflowError>
where
    T: Clone + Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let first = step!("first", effect("first", value.clone()).await)?;
    let second = step!("second", effect("second", value).await)?;
    Ok((ctx.execution_id().to_owned(), vec![first, second]))
}

#[tokio::test]
async fn generic_workflow_with_context() {
    let layout: &[(&str, &[&str])] = &[("first", &["first", "value"]), ("second", &["first", "second"])];
    let result = crash_everywhere(echo_twice::<u32>::new(), 7, layout).await;
    assert_eq!(result, Ok(("e2e".to_owned(), vec![7, 7])));
    let result = crash_everywhere(echo_twice::<String>::new(), "x".into(), layout).await;
    assert_eq!(result, Ok(("e2e".to_owned(), vec!["x".to_owned(), "x".to_owned()])));
}

// ------------------------------------------------------------------ events

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct PaymentReceived {
    amount: u64,
}

#[durable]
async fn await_payment(order_id: String) -> Result<String, WorkflowError> {
    let reserved = step!("reserve", effect("reserve", format!("{order_id}-r")).await)?;
    let payment: PaymentReceived = wait!("payment", event);
    let approval = match wait!("approval", event, timeout = Duration::from_secs(3600)) {
        Ok(approved) => approved,
        Err(Timeout { event }) => event != "approval",
    };
    let shipped =
        step!("ship", effect("ship", format!("{reserved} paid {} approved {approval}", payment.amount)).await)?;
    Ok(shipped)
}

#[tokio::test]
async fn events_delivered_early_are_kept_and_timeouts_are_values() {
    let layout: &[(&str, &[&str])] = &[
        ("reserve", &["reserved"]),
        ("payment:waiting", &["__deadline", "reserved"]),
        ("payment", &["payment", "reserved"]),
        ("approval:waiting", &["__deadline", "payment", "reserved"]),
        ("approval", &["approval", "payment", "reserved"]),
        ("ship", &["shipped"]),
    ];
    let events = [("payment", r#"{"amount": 42}"#), ("approval", "true")];
    let result = crash_everywhere_with_events(await_payment, "o-9".into(), &events, layout).await;
    assert_eq!(result, Ok("o-9-r paid 42 approved true".to_owned()));
    // Without an approval the timeout passes on the virtual clock and the wait yields an error.
    let events = [("payment", r#"{"amount": 7}"#)];
    let result = crash_everywhere_with_events(await_payment, "o-9".into(), &events, layout).await;
    assert_eq!(result, Ok("o-9-r paid 7 approved false".to_owned()));
}

// ------------------------------------------------------------------ ranges

#[durable]
async fn ranges(n: u64) -> Result<u64, WorkflowError> {
    let mut total = 0;
    for i in 0..n {
        total += step!("add", effect(format!("add {i}"), i).await)?;
    }
    for j in 1..=2u64 {
        total += step!("bonus", effect(format!("bonus {j}"), j * 100).await)?;
    }
    Ok(total)
}

#[tokio::test]
async fn a_range_loop_stores_what_is_left_of_the_range() {
    let layout: Layout = &[("add", &["__iter1", "total"]), ("bonus", &["__iter2", "total"])];
    // Crashing after the last `bonus` checkpoint checks that an exhausted `1..=2` does not run
    // its last iteration again.
    assert_eq!(crash_everywhere(ranges, 50, layout).await, Ok(1_225 + 300));
    let mut run = durable_core::testing::TestRun::start(ranges, "r", 1000);
    run.run_to_end().await.unwrap().unwrap();
    let first: serde_json::Value = serde_json::from_str(&run.stored().checkpoints[0].state).unwrap();
    assert_eq!(first["add"]["__iter1"], serde_json::json!({ "start": 1, "end": 1000 }), "two numbers, not 999");
}
