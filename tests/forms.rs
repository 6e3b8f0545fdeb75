//! Forms a workflow body may take that the lowering once got wrong or refused (issue 10): each
//! runs uninterrupted and crashed after every checkpoint, and gives what the same body gives
//! without the macro (the expected value is worked out in a comment beside each assertion).

mod common;

use common::{Layout, crash_everywhere, crash_everywhere_with_events, take_effects};
use durable_core::prelude::*;
use durable_core::testing::TestRun;

// ------------------------------------------------------------------ #[cfg] on a statement

// `all()` is the point of the test: a predicate the macro decides.
#[allow(clippy::non_minimal_cfg)]
#[durable]
async fn cfg_on_points(n: u64) -> Result<u64, WorkflowError> {
    #[cfg(any())]
    let skipped = step!("skipped", common::effect("skipped", 1u64).await)?;
    #[cfg(all())]
    let kept = step!("kept", common::effect("kept", n).await)?;
    #[cfg(not(all()))]
    step!("gone", common::effect("gone", 0u64).await)?;
    Ok(kept * 2)
}

#[tokio::test]
async fn a_cfg_that_does_not_hold_removes_the_point() {
    // Without the macro: `skipped` and `gone` do not exist; 2 * n.
    assert_eq!(crash_everywhere(cfg_on_points, 21, &[("kept", &["kept"])]).await, Ok(42));
    take_effects();
    let mut run = TestRun::start(cfg_on_points, "cfg", 1);
    run.run_to_end().await.unwrap().unwrap();
    let effects = take_effects();
    assert_eq!(effects.keys().collect::<Vec<_>>(), ["kept"], "only the point whose cfg holds ran");
    let keys: Vec<String> = run.stored().checkpoints.iter().map(|c| common::layout(&c.state).0).collect();
    assert_eq!(keys, ["kept"]);
}

// ------------------------------------------------------------------ an unbounded `for`

#[durable]
async fn first_reaching(n: u64) -> Result<u64, WorkflowError> {
    for i in 0u64.. {
        if step!("probe", common::effect(format!("probe {i}"), i * i).await)? >= n {
            return Ok(i);
        }
    }
    Ok(u64::MAX)
}

#[tokio::test]
async fn an_unbounded_range_is_taken_lazily() {
    // Without the macro: the first i with i * i >= 10 is 4.
    let layout: Layout = &[("probe", &["__iter1", "n"])];
    assert_eq!(crash_everywhere(first_reaching, 10, layout).await, Ok(4));
    let mut run = TestRun::start(first_reaching, "lazy", 10);
    run.run_to_end().await.unwrap().unwrap();
    let first: serde_json::Value = serde_json::from_str(&run.stored().checkpoints[0].state).unwrap();
    assert_eq!(first["probe"]["__iter1"], serde_json::json!({ "start": 1 }), "one number: what is left");
}

// ------------------------------------------------------------------ items in the body

#[durable]
async fn items_in_body(n: u64) -> Result<String, WorkflowError> {
    use std::collections::BTreeMap;
    const BONUS: u64 = 3;
    fn double(x: u64) -> u64 {
        x * 2
    }
    let a = step!("a", common::effect("a", n).await)?;
    struct Pair {
        left: u64,
        right: u64,
    }
    let b = step!("b", common::effect("b", double(a) + BONUS).await)?;
    let mut map = BTreeMap::new();
    map.insert("sum", b);
    let pair = Pair { left: a, right: map["sum"] };
    Ok(format!("{} {}", pair.left, pair.right))
}

#[tokio::test]
async fn items_declared_in_the_body_are_visible_after_every_point() {
    // Without the macro: a = 5, b = 2 * 5 + 3 = 13.
    let layout: Layout = &[("a", &["a"]), ("b", &["a", "b"])];
    let result = crash_everywhere(items_in_body, 5, layout).await;
    assert_eq!(result, Ok("5 13".to_owned()));
}

// ------------------------------------------------------------------ names

#[durable]
async fn colliding_names(n: u64) -> Result<u64, WorkflowError> {
    let first = step!("fetch_user", common::effect("fetch_user", n).await)?;
    let second = step!("fetchUser", common::effect("fetchUser", n + 1).await)?;
    let __v = first + second;
    #[allow(non_snake_case)]
    let N = step!("pay waiting", common::effect("pay waiting", 10u64).await)?;
    let paid: u64 = wait!("pay", event);
    Ok(__v + N + paid)
}

#[tokio::test]
async fn names_that_convert_alike_and_reserved_looking_locals_work() {
    // Without the macro: 1 + 2 + 10 + 100.
    let layout: Layout = &[
        ("fetch_user", &["first", "n"]),
        ("fetchUser", &["first", "second"]),
        ("pay waiting", &["N", "__v"]),
        ("pay:waiting", &["N", "__deadline", "__v"]),
        ("pay", &["N", "__v", "paid"]),
    ];
    let result = crash_everywhere_with_events(colliding_names, 1, &[("pay", "100")], layout).await;
    assert_eq!(result, Ok(113));
}

// ------------------------------------------------------------------ a body ending in `!`

fn give_up(n: u64) -> ! {
    panic!("gave up at {n}")
}

#[durable]
async fn ends_in_never(n: u64) -> Result<u64, WorkflowError> {
    let a = step!("a", common::effect("a", n).await)?;
    if a > 100 {
        return Ok(a);
    }
    give_up(a)
}

#[tokio::test]
async fn a_body_may_end_in_a_call_that_never_returns() {
    // Without the macro: 400 > 100, so it returns 400.
    assert_eq!(crash_everywhere(ends_in_never, 400, &[("a", &["a"])]).await, Ok(400));
}

// ------------------------------------------------------------------ several points in one expression

fn pair(a: u64, b: u64) -> u64 {
    a * 100 + b
}

#[durable]
async fn two_points_in_expressions(flag: bool) -> Result<Vec<u64>, WorkflowError> {
    let sum = step!("l", common::effect("l", 1u64).await)? + step!("r", common::effect("r", 2u64).await)?;
    let both = (step!("t1", common::effect("t1", 3u64).await)?, step!("t2", common::effect("t2", 4u64).await)?);
    let called = pair(step!("c1", common::effect("c1", 5u64).await)?, step!("c2", common::effect("c2", 6u64).await)?);
    let mut x = 7;
    x = if flag { step!("then", common::effect("then", 8u64).await)? } else { 0 };
    let mut v = vec![10u64];
    v[0] += step!("index", common::effect("index", 9u64).await)?;
    v.push(step!("push", common::effect("push", 11u64).await)?);
    v.extend([sum, both.0, both.1, called, x]);
    Ok(v)
}

#[tokio::test]
async fn several_points_in_one_expression_run_in_order() {
    // Without the macro: sum 3, both (3, 4), called 506, x 8 (or 0), v [19, 11, ..].
    let layout: Layout = &[
        ("l", &["__v", "flag"]),
        ("r", &["flag", "sum"]),
        ("t1", &["__v", "flag", "sum"]),
        ("t2", &["both", "flag", "sum"]),
        ("c1", &["__v", "both", "flag", "sum"]),
        ("c2", &["both", "called", "flag", "sum"]),
        ("then", &["__v", "both", "called", "sum", "x"]),
        ("index", &["both", "called", "sum", "v", "x"]),
        ("push", &["both", "called", "sum", "v", "x"]),
    ];
    let result = crash_everywhere(two_points_in_expressions, true, layout).await;
    assert_eq!(result, Ok(vec![19, 11, 3, 3, 4, 506, 8]));
    let result = crash_everywhere(two_points_in_expressions, false, layout).await;
    assert_eq!(result, Ok(vec![19, 11, 3, 3, 4, 506, 0]));
}

// ------------------------------------------------------------------ RefCell and Cell locals

#[durable]
async fn cells(n: u64) -> Result<u64, WorkflowError> {
    let seen = std::cell::RefCell::new(vec![n]);
    let count = std::cell::Cell::new(1u64);
    let a = step!("a", common::effect("a", n + 1).await)?;
    seen.borrow_mut().push(a);
    count.set(count.get() + 1);
    let b = step!("b", common::effect("b", a + 1).await)?;
    seen.borrow_mut().push(b);
    Ok(seen.borrow().iter().sum::<u64>() * count.get())
}

#[tokio::test]
async fn refcell_and_cell_locals_are_stored() {
    // Without the macro: (1 + 2 + 3) * 2.
    let layout: Layout = &[("a", &["a", "count", "seen"]), ("b", &["b", "count", "seen"])];
    assert_eq!(crash_everywhere(cells, 1, layout).await, Ok(12));
}

// ------------------------------------------------------------------ points in `while` conditions

#[durable]
async fn while_conditions(limit: u64) -> Result<Vec<u64>, WorkflowError> {
    let mut round = 0u64;
    let mut seen = Vec::new();
    while step!("more", common::effect(format!("more {round}"), round < limit).await)? {
        round += 1;
        seen.push(step!("work", common::effect(format!("work {round}"), round * 10).await)?);
    }
    'inbox: while let Some(item) = wait!("next", event) {
        let item: u64 = item;
        if item == 0 {
            break 'inbox;
        }
        seen.push(item);
    }
    Ok(seen)
}

#[tokio::test]
async fn points_in_while_conditions_are_lowered() {
    // Without the macro: rounds 1 and 2 ([10, 20]), then the events 7 and `null` (None) end the inbox.
    let layout: Layout = &[
        ("more", &["__v", "limit", "round", "seen"]),
        ("work", &["limit", "round", "seen"]),
        ("next:waiting", &["__deadline", "seen"]),
        ("next", &["seen"]),
    ];
    let result = crash_everywhere_with_events(while_conditions, 2, &[("next", "7"), ("next", "null")], layout).await;
    assert_eq!(result, Ok(vec![10, 20, 7]));
}

// ------------------------------------------------------------------ when a local is dropped

thread_local! {
    static EVENTS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn log(event: impl Into<String>) {
    EVENTS.with(|events| events.borrow_mut().push(event.into()));
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Noisy(String);

impl Drop for Noisy {
    fn drop(&mut self) {
        log(format!("drop {}", self.0));
    }
}

async fn logged(what: &str) -> Result<u64, std::io::Error> {
    log(what);
    Ok(1)
}

#[durable]
async fn drops(n: u64) -> Result<u64, WorkflowError> {
    let early = Noisy("early".into());
    let kept = Noisy("kept".into());
    let _ = &early;
    let a = step!("one", logged("one").await)?;
    let b = step!("two", logged("two").await)?;
    Ok(n + a + b + kept.0.len() as u64)
}

#[tokio::test]
async fn a_local_not_needed_after_a_point_is_dropped_at_that_checkpoint() {
    EVENTS.with(|events| events.borrow_mut().clear());
    let mut run = TestRun::start(drops, "drops", 1);
    assert_eq!(run.run_to_end().await.unwrap(), Ok(7));
    let events = EVENTS.with(|events| std::mem::take(&mut *events.borrow_mut()));
    // Plain Rust would drop `early` at the end of the function, after "two"; here it is dropped
    // when the code before the checkpoint of "one" ends (README, "When a local is dropped").
    // `kept` is stored at both checkpoints: at each, the run goes on with the value read back
    // from what was stored, so the value in memory is dropped there, and the last one when the
    // run ends.
    assert_eq!(events, ["one", "drop kept", "drop early", "two", "drop kept", "drop kept"]);
}

// ------------------------------------------------------------------ liveness follows bindings

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Account {
    email: String,
    tier: u64,
}

#[durable]
async fn names_that_reappear(account: Account, orders: Vec<u64>) -> Result<String, WorkflowError> {
    let email = account.email.clone();
    let sent = step!("notify", common::effect("notify", format!("mail {}", account.email)).await)?;
    // `account` and `orders` are moved here; their names reappear below only as other bindings.
    let tier = account.tier;
    drop(account);
    let total: u64 = orders.into_iter().sum();
    let doubled = step!("double", common::effect("double", total * 2).await)?;
    let labels: Vec<String> = [1u64, 2].iter().map(|orders| format!("{orders}")).collect();
    let account = format!("{email}/{tier}");
    let summary = match Some(doubled) {
        Some(orders) => format!("{account} {orders} {sent} {}", labels.join(",")),
        None => String::new(),
    };
    let email = step!("record", common::effect("record", summary.len()).await)?;
    Ok(format!("{summary} {email}"))
}

#[tokio::test]
async fn a_moved_local_whose_name_reappears_is_not_kept() {
    // Without the macro: total 6, doubled 12.
    let layout: Layout = &[
        ("notify", &["account", "email", "orders", "sent"]),
        ("double", &["doubled", "email", "sent", "tier"]),
        ("record", &["email", "summary"]),
    ];
    let account = Account { email: "a@b".into(), tier: 2 };
    let result = crash_everywhere(names_that_reappear, (account, vec![1, 2, 3]), layout).await;
    // The summary "a@b/2 12 mail a@b 1,2" is 21 bytes long.
    assert_eq!(result, Ok("a@b/2 12 mail a@b 1,2 21".to_owned()));
}

// ------------------------------------------------------------------ deferred initialisation

#[durable]
async fn deferred(n: u64) -> Result<u64, WorkflowError> {
    let x: u64;
    let mut y;
    step!("a", common::effect("a", 1u64).await)?;
    x = n + 5;
    y = x * 2;
    step!("b", common::effect("b", 2u64).await)?;
    y += 1;
    Ok(x + y)
}

#[tokio::test]
async fn a_local_declared_without_a_value_is_assigned_after_a_point() {
    // Without the macro: x = 10, y = 21.
    let layout: Layout = &[("a", &["n"]), ("b", &["x", "y"])];
    assert_eq!(crash_everywhere(deferred, 5, layout).await, Ok(31));
}
