//! The engine and its workers, on the in-memory store and on SQLite, with a manual clock: no
//! test sleeps. The modules live in `tests/engine/` (a test crate's root resolves modules next
//! to itself, hence the paths).

#[path = "engine/support.rs"]
mod support;

#[path = "engine/bad_input.rs"]
mod bad_input;
#[path = "engine/basics.rs"]
mod basics;
#[path = "engine/batches.rs"]
mod batches;
#[path = "engine/callbacks.rs"]
mod callbacks;
#[path = "engine/children.rs"]
mod children;
#[path = "engine/events.rs"]
mod events;
#[path = "engine/golden.rs"]
mod golden;
#[path = "engine/group_commit.rs"]
mod group_commit;
#[path = "engine/hooks.rs"]
mod hooks;
#[path = "engine/limits.rs"]
mod limits;
#[path = "engine/panics.rs"]
mod panics;
#[path = "engine/pauses.rs"]
mod pauses;
#[path = "engine/polls.rs"]
mod polls;
#[path = "engine/recovery.rs"]
mod recovery;
#[path = "engine/retries.rs"]
mod retries;
#[path = "engine/telemetry.rs"]
mod telemetry;
#[path = "engine/timers.rs"]
mod timers;
#[path = "engine/worker_loop.rs"]
mod worker_loop;
