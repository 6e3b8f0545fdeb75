//! Generated code uses absolute paths only: user items named like std's or durable's modules,
//! types and macros do not break it.
#![allow(dead_code, non_camel_case_types)]

mod core {}
mod std {}
mod serde {}
mod durable_core_private {}
struct Option;
struct Some;
struct Ok;
struct Err;
struct Vec;
struct String;
struct Next;
struct At;
#[allow(unused_macros)]
macro_rules! unreachable {
    () => {};
}

#[::durable_core::durable]
async fn hygienic(n: u64) -> ::core::result::Result<u64, ::durable_core::WorkflowError> {
    let __next = 1u64;
    let doubled = ::durable_core::step!("double", ::core::result::Result::<u64, ::durable_core::StepError>::Ok(n * 2))?;
    ::core::result::Result::Ok(doubled + __next)
}

fn main() {}
