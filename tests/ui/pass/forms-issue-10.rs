//! Forms once refused or miscompiled: `#[cfg]` on points, an unbounded range, items in the
//! body, names that convert alike, uppercase and `__v` locals, a body ending in `!`.

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

fn main() {
    let _ = forms;
}
