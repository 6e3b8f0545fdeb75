//! What `AnyStore` adds to one store call: `load` of a missing id on a `MemoryStore` (the
//! cheapest call there is, a lock and a hash lookup), called directly and through `AnyStore`
//! in alternating rounds; the fastest round of each is kept, since on a shared machine other
//! processes only ever make a round slower.
//!
//! ```text
//! cargo run --release -p durable-bench --example any_overhead
//! ```

use std::hint::black_box;
use std::time::Instant;

use durable_core::store::{AnyStore, MemoryStore, Store};

const CALLS: u32 = 1_000_000;
const ROUNDS: usize = 15;

/// Nanoseconds per `load` on `store`, over one round.
async fn round<S: Store>(store: &S) -> f64 {
    let start = Instant::now();
    for _ in 0..CALLS {
        black_box(store.load(black_box("missing")).await.ok());
    }
    start.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let direct = MemoryStore::new();
    let any = AnyStore::from(direct.clone());
    let (mut best_direct, mut best_any) = (f64::MAX, f64::MAX);
    runtime.block_on(async {
        for i in 0..ROUNDS {
            // Alternate which goes first, so that neither always runs on a warmed-up core.
            let (a, b) = if i % 2 == 0 {
                (round(&direct).await, round(&any).await)
            } else {
                let b = round(&any).await;
                (round(&direct).await, b)
            };
            best_direct = best_direct.min(a);
            best_any = best_any.min(b);
        }
    });
    println!("MemoryStore::load, best of {ROUNDS} rounds of {CALLS} calls:");
    println!("  direct:   {best_direct:.2} ns per call");
    println!("  AnyStore: {best_any:.2} ns per call ({:+.2} ns)", best_any - best_direct);
}
