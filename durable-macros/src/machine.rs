//! The state machine: one slot per stored local, one boxed `async` block per label, and the
//! loop that runs them.
//!
//! Input: the lowered body (labels, arms with jump placeholders, liveness).
//! Output:
//! ```text
//! let mut __durable_slot_3 = None; ..          // one per stored local, its type inferred
//! let (mut __at, mut __loaded) = match __entry { Start(..) => (fill slots; 0, None), Resume(..) => (MAX, Some(state)) };
//! loop {
//!     let __arm = match __at {
//!         1 => arm(async { <on resume: decode the fields into slots>; let x = take(&mut slot); ..;
//!                          <jump: fill slots, encode and checkpoint>; return goto(2) }),
//!         _ => { __at = <label of the loaded state's key>; continue }
//!     };
//!     match __arm.await { Goto(next) => __at = next, Exit(exit) => return exit, Err(e) => return Err(e) }
//! }
//! ```
//! Why not one enum of states: an enum generic over every local makes rustc's work grow with
//! points x locals (every constructor names every parameter), and one function holding every arm
//! makes its future and, in a debug build, its poll frame grow with the number of points. Slots
//! keep one inference variable per local; boxed arms keep each arm's frame its own. An arm takes
//! out of their slots only the locals its code mentions; the others stay where they are.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::quote_spanned;
use syn::Ident;

use crate::facts::fingerprint;
use crate::lower::{self, BindingId, LabelId, LabelKind, Lowered};
use crate::parse::Signature;

pub(crate) fn machine(workflow: &str, sig: &Signature, lowered: &Lowered) -> TokenStream {
    let slots = declare_slots(lowered);
    let patterns: Vec<_> = sig.params.iter().map(|param| &param.pat).collect();
    let input_pattern = match patterns.as_slice() {
        [one] => q!(#one),
        many => q!((#(#many,)*)),
    };
    let start = &lowered.labels[lowered.start];
    let start_fill = fill_slots(lowered, &start.live);
    let start_id = label_number(lowered.start);
    let keys = keys(lowered);
    let fingerprint = fingerprint(lowered);
    let ok = &sig.ok;
    let err = &sig.err;
    let mut arms = TokenStream::new();
    for arm in &lowered.arms {
        let label = &lowered.labels[arm.label];
        let number = label_number(arm.label);
        // Only the locals this arm's code mentions leave their slots; the others stay there.
        let held: Vec<BindingId> = label.live.iter().copied().filter(|id| arm.uses.contains(id)).collect();
        let taken = held.iter().map(|&id| {
            let binding = &lowered.bindings[id];
            let ident = &binding.ident;
            let slot = slot_ident(lowered, id);
            let mutable = binding.mutable.then(|| q!(mut));
            q!(#[allow(non_snake_case)] let #mutable #ident = ::durable_core::__private::take(&mut #slot);)
        });
        // A local declared without a value before this label and assigned in this arm.
        let declared = arm.uses.iter().filter(|id| label.pending.contains(id)).filter_map(|&id| {
            let binding = &lowered.bindings[id];
            let annotation = binding.deferred.as_ref()?;
            let ident = &binding.ident;
            let mutable = binding.mutable.then(|| q!(mut));
            Some(q!(let #mutable #ident #annotation;))
        });
        let taken = q!(#(#declared)* #(#taken)*);
        let from = From { live: &label.live, held: &held, uses: &arm.uses };
        let restore = label.kind.persisted().then(|| restore(lowered, arm.label));
        let code = fill_jumps(arm.code.clone(), lowered, &from);
        arms.extend(q! {
            #number => {
                // Checked without an expected type: rustc would otherwise search every pending
                // obligation of the function (one per earlier arm) to deduce this block's output.
                let __arm = async {
                    #restore
                    #taken
                    #code
                };
                ::durable_core::__private::arm::<#ok, #err, _>(__arm)
            }
        });
    }
    let items = &lowered.items;
    q! {
        #(#items)*
        #slots
        // On resume, the state is loaded here; the last arm of the `match` below finds the label
        // of its key, and that label's arm decodes the fields into their slots (so that no
        // function body grows with the number of points times the number of locals).
        let (mut __at, mut __loaded): (u32, _) = match __entry {
            ::durable_core::Entry::Start(__input) => {
                let #input_pattern = __input;
                #start_fill
                (#start_id, ::core::option::Option::None)
            }
            ::durable_core::Entry::Resume(__snapshot) => {
                match ::durable_core::__private::load_fields(__snapshot, #workflow, #fingerprint) {
                    ::core::result::Result::Ok(__loaded) => (u32::MAX, ::core::option::Option::Some(__loaded)),
                    ::core::result::Result::Err(__error) => {
                        return ::core::result::Result::Ok(::durable_core::Exit::BadState(__error));
                    }
                }
            }
        };
        loop {
            let __arm = match __at {
                #arms
                _ => {
                    __at = match ::durable_core::__private::loaded_key(&__loaded) {
                        #keys
                        _ => return ::core::result::Result::Ok(::durable_core::Exit::BadState(
                            ::durable_core::__private::unknown_key(__loaded),
                        )),
                    };
                    continue;
                }
            };
            match __arm.await {
                ::core::result::Result::Ok(::durable_core::__private::Flow::Goto(__label)) => __at = __label,
                ::core::result::Result::Ok(::durable_core::__private::Flow::Exit(__exit)) => {
                    return ::core::result::Result::Ok(__exit);
                }
                ::core::result::Result::Err(__error) => return ::core::result::Result::Err(__error),
            }
        }
    }
}

/// The number of a label in the generated `match`.
fn label_number(label: LabelId) -> TokenStream {
    let number = u32::try_from(label).expect("fewer than 2^32 labels");
    q!(#number)
}

/// The slot of a stored binding. It carries the span of the binding (a user's local: the span of
/// its `let`, so that a type that cannot be stored is reported there and only there).
fn slot_ident(lowered: &Lowered, id: BindingId) -> Ident {
    Ident::new(&format!("__durable_slot_{id}"), error_span(lowered, id))
}

/// Where a type error about binding `id`'s stored value is reported.
fn error_span(lowered: &Lowered, id: BindingId) -> Span {
    let binding = &lowered.bindings[id];
    binding.at.unwrap_or_else(|| binding.ident.span())
}

/// `let mut __durable_slot_N = None;` for every binding some reachable label stores.
fn declare_slots(lowered: &Lowered) -> TokenStream {
    let mut stored: Vec<BindingId> =
        lowered.labels.iter().filter(|l| l.reachable).flat_map(|l| l.live.iter().copied()).collect();
    stored.sort_unstable();
    stored.dedup();
    stored
        .into_iter()
        .map(|id| {
            let slot = slot_ident(lowered, id);
            match &lowered.bindings[id].ty {
                Some(ty) => q!(let mut #slot: ::core::option::Option<#ty> = ::core::option::Option::None;),
                None => q!(let mut #slot = ::core::option::Option::None;),
            }
        })
        .collect()
}

/// Moves the bindings in `live` into their slots.
fn fill_slots(lowered: &Lowered, live: &[BindingId]) -> TokenStream {
    live.iter()
        .map(|&id| {
            let slot = slot_ident(lowered, id);
            let ident = &lowered.bindings[id].ident;
            q!(#slot = ::core::option::Option::Some(#ident);)
        })
        .collect()
}

/// One `match` arm per persisted state: its key, then the number of its label.
fn keys(lowered: &Lowered) -> TokenStream {
    lowered
        .labels
        .iter()
        .enumerate()
        .filter(|(_, l)| l.reachable && l.kind.persisted())
        .map(|(id, label)| {
            let key = &label.serde_name;
            let number = label_number(id);
            q!(#key => #number,)
        })
        .collect()
}

/// At the start of a persisted label's arm, on resume: each field decoded into its slot.
fn restore(lowered: &Lowered, label: LabelId) -> TokenStream {
    let loaded = Ident::new("__loaded", Span::mixed_site());
    let fields = lowered.labels[label].live.iter().map(|&binding| {
        let ident = &lowered.bindings[binding].ident;
        let name = ident.to_string();
        let slot = slot_ident(lowered, binding);
        quote_spanned!(error_span(lowered, binding)=> ::durable_core::__private::restore(&mut #loaded, #name, &mut #slot);)
    });
    q! {
        if let ::core::option::Option::Some(mut __loaded) = ::core::option::Option::take(&mut __loaded) {
            #(#fields)*
            if let ::core::result::Result::Err(__error) = ::durable_core::__private::Loaded::finish(__loaded, true) {
                return ::durable_core::__private::exit(::durable_core::Exit::BadState(__error));
            }
        }
    }
}

/// Replaces each jump placeholder with the code that fills the target's slots and goes there.
/// The arm a jump leaves: what its label stores and which of those its code took out.
struct From<'a> {
    live: &'a [BindingId],
    held: &'a [BindingId],
    /// The bindings the arm's code mentions.
    uses: &'a std::collections::BTreeSet<BindingId>,
}

impl From<'_> {
    /// Whether `id` is still in its slot (stored at the label, not taken by the arm).
    fn in_slot(&self, id: BindingId) -> bool {
        self.live.contains(&id) && !self.held.contains(&id)
    }
}

fn fill_jumps(code: TokenStream, lowered: &Lowered, from: &From<'_>) -> TokenStream {
    code.into_iter()
        .map(|tree| match tree {
            TokenTree::Ident(ident) => match (jump_index(&ident), declaration_index(&ident)) {
                (Some(index), _) => {
                    let jump = jump_code(lowered, index, from);
                    TokenTree::Group(proc_macro2::Group::new(proc_macro2::Delimiter::Brace, jump))
                }
                // Kept only where the arm uses it: unused, rustc could not infer its type.
                (None, Some(id)) if from.uses.contains(&id) => {
                    let declaration = lowered.bindings[id].declaration.clone().unwrap_or_default();
                    TokenTree::Group(proc_macro2::Group::new(proc_macro2::Delimiter::None, declaration))
                }
                (None, Some(_)) => {
                    TokenTree::Group(proc_macro2::Group::new(proc_macro2::Delimiter::None, TokenStream::new()))
                }
                (None, None) => TokenTree::Ident(ident),
            },
            TokenTree::Group(group) => {
                let inner = fill_jumps(group.stream(), lowered, from);
                let mut filled = proc_macro2::Group::new(group.delimiter(), inner);
                filled.set_span(group.span());
                TokenTree::Group(filled)
            }
            other => other,
        })
        .collect()
}

fn declaration_index(ident: &Ident) -> Option<usize> {
    ident.to_string().strip_prefix("__durable_decl_")?.parse().ok()
}

fn jump_index(ident: &Ident) -> Option<usize> {
    ident.to_string().strip_prefix("__durable_jump_")?.parse().ok()
}

fn jump_code(lowered: &Lowered, index: usize, from: &From<'_>) -> TokenStream {
    let jump = &lowered.jumps[index];
    let label = &lowered.labels[jump.target];
    let value = jump.value.as_ref().map(|value| q!(let __v = #value;));
    // Fill what the target stores and is not in its slot already; empty (drop) what stayed in
    // its slot and the target does not store.
    let moved: Vec<BindingId> = label.live.iter().copied().filter(|&id| !from.in_slot(id)).collect();
    let dropped = from.live.iter().filter(|&&id| from.in_slot(id) && !label.live.contains(&id)).map(|&id| {
        let slot = slot_ident(lowered, id);
        q!(#slot = ::core::option::Option::None;)
    });
    let fill = fill_slots(lowered, &moved);
    let fill = q!(#(#dropped)* #fill);
    let number = label_number(jump.target);
    let LabelKind::Point { point, .. } = label.kind else {
        return q!(#value #fill return ::durable_core::__private::goto(#number););
    };
    let key = &label.serde_name;
    let fields = label.live.iter().map(|&id| {
        let ident = &lowered.bindings[id].ident;
        let name = ident.to_string();
        let slot = slot_ident(lowered, id);
        let encoder = Ident::new("__encoder", Span::mixed_site());
        quote_spanned!(error_span(lowered, id)=> ::durable_core::__private::field(&mut #encoder, #name, &#slot);)
    });
    // The run goes on from the state as it reads back, as a resumed run would: each stored
    // local is decoded again from what is about to be stored, into its slot.
    let reloaded = label.live.iter().map(|&id| {
        let name = lowered.bindings[id].ident.to_string();
        let slot = slot_ident(lowered, id);
        let reloaded = Ident::new("__reloaded", Span::mixed_site());
        quote_spanned!(error_span(lowered, id)=> ::durable_core::__private::restore(&mut #reloaded, #name, &mut #slot);)
    });
    let facts = lower::point_ref(point);
    q! {
        #value
        #fill
        // Encoded before the await: no reference to a local is held across it.
        let mut __encoder = ::durable_core::__private::Encoder::new(#key);
        #(#fields)*
        let __json = ::durable_core::__private::Encoder::finish(__encoder);
        if let ::core::option::Option::Some(mut __reloaded) = ::durable_core::__private::reload(&__json) {
            #(#reloaded)*
            if let ::core::result::Result::Err(__error) =
                ::durable_core::__private::Loaded::read_back(__reloaded, Self::__DURABLE_FACTS.name, #facts)
            {
                return ::durable_core::__private::exit(::durable_core::Exit::BadState(__error));
            }
        }
        if let ::core::result::Result::Err(__exit) =
            ::durable_core::__private::checkpoint_fields(__host, Self::__DURABLE_FACTS.name, #facts, __json).await
        {
            return ::durable_core::__private::exit(__exit);
        }
        return ::durable_core::__private::goto(#number);
    }
}
