//! The state machine: the two state enums, the loop that checkpoints, and the arms with their
//! jumps filled in.

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote_spanned};
use syn::Ident;

use crate::facts::fingerprint;
use crate::lower::{self, LabelId, LabelKind, Lowered};
use crate::parse::Signature;

pub(crate) fn machine(workflow: &str, sig: &Signature, lowered: &Lowered) -> TokenStream {
    let names = TypeParams::new(lowered);
    let state_enum = state_enum(lowered, &names);
    let label_enum = label_enum(lowered, &names);
    let state_holes = names.state.iter().map(|_| q!(_));
    let label_holes = names.label.iter().map(|_| q!(_));
    let patterns: Vec<_> = sig.params.iter().map(|param| &param.pat).collect();
    let input_pattern = match patterns.as_slice() {
        [one] => q!(#one),
        many => q!((#(#many,)*)),
    };
    let start = &lowered.labels[lowered.start];
    let start_fields = fields(lowered, start.live.iter().copied());
    let fingerprint = fingerprint(lowered);
    let mut arms = TokenStream::new();
    let mut asserted = HashSet::new();
    for arm in &lowered.arms {
        let label = &lowered.labels[arm.label];
        let variant = &label.variant;
        let bound = label.live.iter().map(|&id| {
            let binding = &lowered.bindings[id];
            let ident = &binding.ident;
            if binding.mutable { q!(mut #ident) } else { q!(#ident) }
        });
        let code = fill_jumps(arm.code.clone(), lowered, &mut asserted);
        let path = if label.kind.persisted() {
            q!(::durable_core::__private::At::State(__State::#variant { #(#bound),* }))
        } else {
            q!(::durable_core::__private::At::Label(__Label::#variant { #(#bound),* }))
        };
        arms.extend(q!(#path => { #code }));
    }
    if !lowered.labels.iter().any(|l| l.reachable && l.kind.persisted()) {
        arms.extend(q!(::durable_core::__private::At::State(__state) => match __state {},));
    }
    q! {
        #state_enum
        #label_enum
        let mut __next: ::durable_core::__private::Next<__State<#(#state_holes),*>, __Label<#(#label_holes),*>> = match __entry {
            ::durable_core::Entry::Start(__input) => {
                let #input_pattern = __input;
                ::durable_core::__private::Next::Label(__Label::__Start { #start_fields })
            }
            ::durable_core::Entry::Resume(__snapshot) => {
                match ::durable_core::__private::load(__snapshot, #workflow, #fingerprint) {
                    ::core::result::Result::Ok(__state) => ::durable_core::__private::Next::Resume(__state),
                    ::core::result::Result::Err(__error) => {
                        return ::core::result::Result::Ok(::durable_core::Exit::BadState(__error));
                    }
                }
            }
        };
        '__durable: loop {
            let __at = match __next {
                ::durable_core::__private::Next::Label(__label) => ::durable_core::__private::At::Label(__label),
                ::durable_core::__private::Next::Resume(__state) => ::durable_core::__private::At::State(__state),
                ::durable_core::__private::Next::Checkpoint(__point, __state) => {
                    // The run goes on from the state as decoded from what was stored, as a
                    // resumed run would.
                    match ::durable_core::__private::checkpoint(__host, #workflow, __point, __state).await {
                        ::core::result::Result::Ok(__state) => ::durable_core::__private::At::State(__state),
                        ::core::result::Result::Err(__exit) => return ::core::result::Result::Ok(__exit),
                    }
                }
            };
            match __at {
                #arms
            }
        }
    }
}

/// One type parameter per stored binding, named after it, separately for each enum.
struct TypeParams {
    state: Vec<(usize, Ident)>,
    label: Vec<(usize, Ident)>,
}

impl TypeParams {
    fn new(lowered: &Lowered) -> Self {
        let mut state = Vec::new();
        let mut label = Vec::new();
        for l in lowered.labels.iter().filter(|l| l.reachable) {
            let list = if l.kind.persisted() { &mut state } else { &mut label };
            for &id in &l.live {
                if lowered.bindings[id].ty.is_none() && !list.iter().any(|(b, _)| *b == id) {
                    list.push((id, Ident::new("_", Span::call_site())));
                }
            }
        }
        for list in [&mut state, &mut label] {
            list.sort_by_key(|(id, _)| *id);
            let mut used = HashSet::new();
            for (id, ident) in list.iter_mut() {
                let base = lowered.bindings[*id].ident.to_string().trim_start_matches('_').to_owned();
                let base = if base.is_empty() { "v".to_owned() } else { base };
                let mut name = base.clone();
                let mut n = 1;
                while !used.insert(name.clone()) {
                    n += 1;
                    name = format!("{base}_{n}");
                }
                *ident = format_ident!("{}", name);
            }
        }
        TypeParams { state, label }
    }

    fn of(&self, persisted: bool, id: usize) -> Option<&Ident> {
        let list = if persisted { &self.state } else { &self.label };
        list.iter().find(|(b, _)| *b == id).map(|(_, ident)| ident)
    }
}

fn variant_fields(lowered: &Lowered, names: &TypeParams, label: LabelId) -> TokenStream {
    let l = &lowered.labels[label];
    let fields = l.live.iter().map(|&id| {
        let binding = &lowered.bindings[id];
        let ident = &binding.ident;
        match &binding.ty {
            Some(ty) => q!(#ident: #ty),
            None => {
                let param = names.of(l.kind.persisted(), id).expect("a type parameter per stored binding");
                q!(#ident: #param)
            }
        }
    });
    q!({ #(#fields),* })
}

fn state_enum(lowered: &Lowered, names: &TypeParams) -> TokenStream {
    let params = names.state.iter().map(|(_, ident)| ident);
    let variants =
        lowered.labels.iter().enumerate().filter(|(_, l)| l.reachable && l.kind.persisted()).map(|(id, l)| {
            let variant = &l.variant;
            let doc = &l.doc;
            let rename = &l.serde_name;
            let fields = variant_fields(lowered, names, id);
            q!(#[doc = #doc] #[serde(rename = #rename)] #variant #fields)
        });
    q! {
        /// The persisted states: one per suspension point, holding the locals still needed after it.
        #[allow(non_camel_case_types, dead_code)]
        #[derive(::durable_core::__private::serde::Serialize, ::durable_core::__private::serde::Deserialize)]
        #[serde(crate = "::durable_core::__private::serde")]
        enum __State<#(#params),*> { #(#variants,)* }
    }
}

fn label_enum(lowered: &Lowered, names: &TypeParams) -> TokenStream {
    let params = names.label.iter().map(|(_, ident)| ident);
    let variants =
        lowered.labels.iter().enumerate().filter(|(_, l)| l.reachable && !l.kind.persisted()).map(|(id, l)| {
            let variant = &l.variant;
            let doc = &l.doc;
            let fields = variant_fields(lowered, names, id);
            q!(#[doc = #doc] #variant #fields)
        });
    q! {
        /// Transient labels (the start, loop heads, joins): never persisted.
        #[allow(non_camel_case_types, dead_code)]
        enum __Label<#(#params),*> { #(#variants,)* }
    }
}

fn fields(lowered: &Lowered, ids: impl Iterator<Item = usize>) -> TokenStream {
    let idents = ids.map(|id| &lowered.bindings[id].ident);
    q!(#(#idents),*)
}

/// Replaces each jump placeholder with the code that builds the target's variant.
fn fill_jumps(code: TokenStream, lowered: &Lowered, asserted: &mut HashSet<usize>) -> TokenStream {
    code.into_iter()
        .map(|tree| match tree {
            TokenTree::Ident(ident) => match jump_index(&ident) {
                Some(index) => {
                    let jump = jump_code(lowered, index, asserted);
                    TokenTree::Group(proc_macro2::Group::new(proc_macro2::Delimiter::Brace, jump))
                }
                None => TokenTree::Ident(ident),
            },
            TokenTree::Group(group) => {
                let inner = fill_jumps(group.stream(), lowered, asserted);
                let mut filled = proc_macro2::Group::new(group.delimiter(), inner);
                filled.set_span(group.span());
                TokenTree::Group(filled)
            }
            other => other,
        })
        .collect()
}

fn jump_index(ident: &Ident) -> Option<usize> {
    ident.to_string().strip_prefix("__durable_jump_")?.parse().ok()
}

fn jump_code(lowered: &Lowered, index: usize, asserted: &mut HashSet<usize>) -> TokenStream {
    let jump = &lowered.jumps[index];
    let label = &lowered.labels[jump.target];
    let variant = &label.variant;
    let value = jump.value.as_ref().map(|value| q!(let __v = #value;));
    let fields = fields(lowered, label.live.iter().copied());
    let (asserts, constructor) = match label.kind {
        LabelKind::Point { point, .. } => {
            let asserts: Vec<_> = label
                .live
                .iter()
                .filter(|&&id| lowered.bindings[id].ty.is_none() && asserted.insert(id))
                .map(|&id| {
                    let ident = &lowered.bindings[id].ident;
                    quote_spanned!(ident.span()=> ::durable_core::__private::assert_persist(&#ident);)
                })
                .collect();
            let facts = lower::point_ref(point);
            (asserts, q!(::durable_core::__private::Next::Checkpoint(#facts, __State::#variant { #fields })))
        }
        _ => (Vec::new(), q!(::durable_core::__private::Next::Label(__Label::#variant { #fields }))),
    };
    q! {
        #value
        #(#asserts)*
        __next = #constructor;
        continue '__durable;
    }
}
