//! Every supported position of a point, with no type annotations.
use durable_core::prelude::*;
use std::collections::VecDeque;
use std::time::Duration;

async fn fetch(n: u64) -> Result<u64, std::io::Error> {
    Ok(n)
}

#[durable]
async fn all_forms(start: u64, names: Vec<String>) -> Result<u64, WorkflowError> {
    step!("first", fetch(start).await)?;
    let (a, b) = step!("pair", Ok::<_, StepError>((start, start + 1)))?;
    let mut total = a + b;
    total += step!("add", fetch(1).await)?;
    let branch = if total > 10 {
        step!("big", fetch(total).await)?
    } else if total > 5 {
        let x = step!("medium", fetch(5).await)?;
        x + 1
    } else {
        0
    };
    let matched = match branch {
        0 => step!("zero", fetch(0).await)?,
        n if n % 2 == 0 => {
            wait!("even_pause", Duration::from_secs(1));
            n
        }
        n => n,
    };
    let mut list = Vec::new();
    for name in names {
        if name.is_empty() {
            continue;
        }
        let len = step!("measure", fetch(name.len() as u64).await)?;
        list.push(len);
    }
    let mut queue: VecDeque<u64> = list.into_iter().collect();
    while let Some(next) = queue.pop_front() {
        step!("drain", fetch(next).await)?;
    }
    let mut i = 0;
    while i < 2 {
        i += step!("count", fetch(1).await)?;
    }
    let found = loop {
        let v = step!("probe", fetch(i).await)?;
        if v > 0 {
            break v;
        }
    };
    let block = {
        let inner = step!("inner", fetch(found).await)?;
        inner * 2
    };
    if step!("check", fetch(block).await)? > 1000 {
        return Ok(0);
    }
    let event: u64 = wait!("signal", event);
    let timed = wait!("maybe", event, timeout = Duration::from_secs(5)).unwrap_or(0u64);
    Ok(matched + block + event + timed)
}

fn main() {
    let _ = all_forms.facts();
}
