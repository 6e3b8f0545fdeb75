//! The `#[durable]` attribute: an `async fn` becomes a resumable state machine.
//!
//! Use it through `durable_core`, which re-exports it with `step!` and `wait!`; this crate is an
//! implementation detail. How the lowering works is described in the project's DESIGN.md
//! (section 3): one persisted state per suspension point, holding the locals still needed after
//! it, with types inferred by rustc.

/// `quote!` with mixed-site hygiene: the locals and labels the macro generates (`__next`,
/// `__r`, `'__durable`) cannot collide with the user's, while the user's own tokens keep their
/// spans.
macro_rules! q {
    ($($tokens:tt)*) => {
        ::quote::quote_spanned!(::proc_macro2::Span::mixed_site()=> $($tokens)*)
    };
}

mod check;
mod errors;
mod expand;
mod facts;
mod lower;
mod machine;
mod parse;
mod scan;

use proc_macro::TokenStream;

/// Implemented in the `durable-macros` crate: use it through `durable_core::durable`, which
/// re-exports it beside `step!` and `wait!` and documents every option, with examples.
#[proc_macro_attribute]
pub fn durable(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::durable(args.into(), item.into()).into()
}
