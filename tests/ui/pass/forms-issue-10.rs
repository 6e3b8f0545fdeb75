//! Forms once refused or miscompiled: `#[cfg]` on points, an unbounded range, items in the
//! body, names that convert alike, uppercase and `__v` locals, a body ending in `!`, several
//! points in one expression.

use durable_core::prelude::*;

fn never(n: u64) -> ! {
    panic!("{n}")
}

#[durable]
async fn forms(n: u64) -> Result<u64, WorkflowError> {
    use std::collections::BTreeMap;
    const K: u64 = 2;
    fn twice(x: u64) -> u64 {
        x * K
    }
    #[cfg(any())]
    let skipped = step!("skipped", Ok::<_, StepError>(1u64))?;
    let a = step!("fetch_user", Ok::<_, StepError>(n))?;
    let b = step!("fetchUser", Ok::<_, StepError>(twice(a)))?;
    let __v = a + b;
    #[allow(non_snake_case)]
    let N = step!("pay waiting", Ok::<_, StepError>(3u64))?;
    let paid: u64 = wait!("pay", event);
    let mut map = BTreeMap::new();
    map.insert(1, __v + N + paid);
    for i in 0u64.. {
        if step!("probe", Ok::<_, StepError>(i))? >= map[&1] {
            return Ok(i);
        }
    }
    never(n)
}

#[durable]
async fn two_points(flag: bool) -> Result<Vec<u64>, WorkflowError> {
    let sum = step!("l", Ok::<_, StepError>(1u64))? + step!("r", Ok::<_, StepError>(2u64))?;
    let both = (step!("t1", Ok::<_, StepError>(3u64))?, step!("t2", Ok::<_, StepError>(4u64))?);
    let mut x = 0;
    x += if flag { step!("then", Ok::<_, StepError>(5u64))? } else { 6 };
    let mut v = vec![sum];
    v[0] += step!("index", Ok::<_, StepError>(7u64))?;
    v.push(step!("push", Ok::<_, StepError>(both.0 + both.1 + x))?);
    Ok(v)
}

fn main() {
    let _ = (forms, two_points);
}

#[durable]
async fn deferred(n: u64) -> Result<u64, WorkflowError> {
    let x: u64;
    step!("a", Ok::<_, StepError>(1u64))?;
    x = n + 5;
    step!("b", Ok::<_, StepError>(2u64))?;
    Ok(x)
}

#[allow(dead_code)]
fn also() {
    let _ = deferred;
}
