//! Expansion: the lowered body becomes a unit struct, its `Workflow` impl and the state
//! machine that runs it.
//!
//! Input: `#[durable] pub async fn order(id: String) -> Result<Receipt, Error> { .. }`
//! Output:
//! ```text
//! pub struct order;
//! impl order { const __DURABLE_FACTS: &WorkflowFacts = ..; async fn __durable_run(..) { .. } }
//! impl Workflow for order { type Input = String; .. fn run(..) { __durable_run(..) } }
//! ```

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn};

use crate::errors::Errors;
use crate::lower::{self, LabelId, LabelKind, Lowered};
use crate::parse::{self, Args, Kind, Signature};
use crate::scan;

/// The whole expansion, or the fallback with the errors.
pub(crate) fn durable(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(expanded) => expanded,
        Err(error) => fallback(item, error),
    }
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args: Args = syn::parse2(args)?;
    let item = parse::item(item)?;
    let mut errors = Errors::default();
    let sig = parse::signature(&item, &mut errors);
    scan::misplaced_points(&item.block, &mut errors);
    let Some(sig) = sig else {
        errors.finish()?;
        return Err(syn::Error::new(Span::call_site(), "invalid `#[durable]` function"));
    };
    let patterns: Vec<_> = sig.params.iter().map(|param| param.pat.clone()).collect();
    for key in &args.keys {
        if !sig.params.iter().any(|p| matches!(&p.pat, syn::Pat::Ident(i) if i.ident == *key)) {
            errors.spanned(key, format!("`key = {key}` must name a parameter of the workflow function"));
        }
    }
    let (lowered, mut errors) = lower::lower(&patterns, &item.block, errors);
    if !errors.any() {
        check_borrows(&lowered, &mut errors);
        check_shadowing(&lowered, &mut errors);
    }
    errors.finish()?;
    Ok(render(&args, &item, &sig, &lowered))
}

/// Keeps the workflow's name usable (a struct with a `Workflow` impl whose run is unreachable)
/// so that the user sees the real errors and no cascade.
fn fallback(item: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    let Ok(item) = parse::item(item.clone()) else { return quote!(#error #item) };
    if item.sig.receiver().is_some() {
        // A method: keep it a method, so that the impl it stands in still compiles.
        let ItemFn { attrs, vis, sig, .. } = &item;
        return quote! {
            #error
            #(#attrs)*
            #[allow(unused_variables, unreachable_code)]
            #vis #sig { ::core::unreachable!() }
        };
    }
    let mut ignored = Errors::default();
    let header = header(&item);
    let Some(sig) = parse::signature(&item, &mut ignored) else { return quote!(#error #header) };
    let (impl_generics, ty_generics, where_clause) = item.sig.generics.split_for_impl();
    let name = &item.sig.ident;
    // An input type that cannot be stored was reported already; `()` keeps it from being
    // reported again by the trait's bounds.
    let types = if sig.params.iter().any(|p| matches!(p.ty, syn::Type::Reference(_))) {
        let ok = &sig.ok;
        let err = &sig.err;
        quote!(type Input = (); type Output = #ok; type Error = #err;)
    } else {
        workflow_types(&sig)
    };
    quote! {
        #error
        #header
        impl #impl_generics ::durable_core::Workflow for #name #ty_generics #where_clause {
            #types
            fn facts(&self) -> &'static ::durable_core::WorkflowFacts { ::core::unreachable!() }
            #[allow(unreachable_code)]
            fn run<'__durable>(
                &'__durable self,
                _: &'__durable ::durable_core::Ctx,
                _: &'__durable mut dyn ::durable_core::Host,
                _: ::durable_core::Entry<'__durable, Self::Input>,
            ) -> impl ::core::future::Future<Output = ::durable_core::Exit<::core::result::Result<Self::Output, Self::Error>>> + ::core::marker::Send + '__durable {
                async move { ::core::unreachable!() }
            }
        }
    }
}

/// The struct that names the workflow, with the function's docs and attributes.
fn header(item: &ItemFn) -> TokenStream {
    let attrs = &item.attrs;
    let vis = &item.vis;
    let name = &item.sig.ident;
    let generics = &item.sig.generics;
    if generics.params.is_empty() {
        return quote! {
            #(#attrs)*
            #[allow(non_camel_case_types)]
            #[derive(Clone, Copy, Debug, Default)]
            #vis struct #name;
        };
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let params: Vec<_> = generics.type_params().map(|p| &p.ident).collect();
    let consts: Vec<_> = generics.const_params().map(|p| &p.ident).collect();
    quote! {
        #(#attrs)*
        #[allow(non_camel_case_types)]
        #vis struct #name #generics (::core::marker::PhantomData<fn() -> (#(#params,)*)>) #where_clause;
        impl #impl_generics #name #ty_generics #where_clause {
            /// The workflow, as a value to register and start.
            #vis const fn new() -> Self { let _ = (#(#consts,)*); Self(::core::marker::PhantomData) }
        }
        impl #impl_generics ::core::clone::Clone for #name #ty_generics #where_clause {
            fn clone(&self) -> Self { *self }
        }
        impl #impl_generics ::core::marker::Copy for #name #ty_generics #where_clause {}
        impl #impl_generics ::core::default::Default for #name #ty_generics #where_clause {
            fn default() -> Self { Self::new() }
        }
        impl #impl_generics ::core::fmt::Debug for #name #ty_generics #where_clause {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(::core::stringify!(#name))
            }
        }
    }
}

fn workflow_types(sig: &Signature) -> TokenStream {
    let input = input_type(sig);
    let ok = &sig.ok;
    let err = &sig.err;
    quote! {
        type Input = #input;
        type Output = #ok;
        type Error = #err;
    }
}

fn input_type(sig: &Signature) -> TokenStream {
    let types: Vec<_> = sig.params.iter().map(|p| &p.ty).collect();
    match types.as_slice() {
        [one] => quote!(#one),
        many => quote!((#(#many,)*)),
    }
}

fn render(args: &Args, item: &ItemFn, sig: &Signature, lowered: &Lowered) -> TokenStream {
    let name = &item.sig.ident;
    let workflow = args.name.as_ref().map_or_else(|| name.to_string(), |n| n.value());
    let (impl_generics, ty_generics, where_clause) = item.sig.generics.split_for_impl();
    let header = header(item);
    let types = workflow_types(sig);
    let facts = facts(&workflow, args, item, sig, lowered);
    let machine = machine(&workflow, sig, lowered);
    let input = input_type(sig);
    let ok = &sig.ok;
    let err = &sig.err;
    let ctx = sig.ctx.as_ref().map_or_else(|| q!(_), |pat| q!(#pat));
    let asserts = sig.params.iter().map(|param| {
        let ty = &param.ty;
        quote_spanned!(ty.span()=> ::durable_core::__private::assert_input::<#ty>();)
    });
    q! {
        #header

        impl #impl_generics #name #ty_generics #where_clause {
            #[doc(hidden)]
            pub const __DURABLE_FACTS: &'static ::durable_core::WorkflowFacts = #facts;

            #[allow(unused_mut, unreachable_code, clippy::diverging_sub_expression, clippy::let_unit_value, clippy::no_effect, clippy::unit_arg, clippy::needless_return, clippy::never_loop)]
            async fn __durable_run(
                #ctx: &::durable_core::Ctx,
                __host: &mut dyn ::durable_core::Host,
                __entry: ::durable_core::Entry<'_, #input>,
            ) -> ::core::result::Result<::durable_core::Exit<#ok>, #err> {
                #(#asserts)*
                #machine
            }
        }

        impl #impl_generics ::durable_core::Workflow for #name #ty_generics #where_clause {
            #types

            fn facts(&self) -> &'static ::durable_core::WorkflowFacts {
                Self::__DURABLE_FACTS
            }

            fn run<'__durable>(
                &'__durable self,
                ctx: &'__durable ::durable_core::Ctx,
                host: &'__durable mut dyn ::durable_core::Host,
                entry: ::durable_core::Entry<'__durable, Self::Input>,
            ) -> impl ::core::future::Future<Output = ::durable_core::Exit<::core::result::Result<Self::Output, Self::Error>>> + ::core::marker::Send + '__durable {
                async move { ::durable_core::__private::finish(Self::__durable_run(ctx, host, entry).await) }
            }
        }
    }
}

// -------------------------------------------------------------------- the state machine

fn machine(workflow: &str, sig: &Signature, lowered: &Lowered) -> TokenStream {
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
                    if let ::core::result::Result::Err(__exit) =
                        ::durable_core::__private::checkpoint(__host, #workflow, __point, &__state).await
                    {
                        return ::core::result::Result::Ok(__exit);
                    }
                    ::durable_core::__private::At::State(__state)
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

/// Refuses a stored local whose initializer visibly borrows, with a message that says why.
fn check_borrows(lowered: &Lowered, errors: &mut Errors) {
    let mut reported = HashSet::new();
    for label in lowered.labels.iter().filter(|l| l.reachable && l.kind.persisted()) {
        for &id in &label.live {
            let binding = &lowered.bindings[id];
            let Some(borrows) = &binding.borrows else { continue };
            if reported.insert(id) {
                let ident = &binding.ident;
                errors.spanned(
                    ident,
                    format!(
                        "`{ident}` {borrows}, and it is still needed after a suspension point \
                         (`step!`/`wait!`): a workflow's state is stored and loaded again, so it \
                         cannot keep borrowed data. Store an owned value instead (`String::from(..)`, \
                         `.to_owned()`, `.clone()`), or compute it again after the point"
                    ),
                );
            }
        }
    }
}

/// Refuses a shadowed local whose outer binding is still needed: the generated code could not
/// tell the two apart.
fn check_shadowing(lowered: &Lowered, errors: &mut Errors) {
    for label in lowered.labels.iter().filter(|l| l.reachable) {
        let mut seen: Vec<&Ident> = Vec::new();
        for &id in &label.live {
            let ident = &lowered.bindings[id].ident;
            if let Some(first) = seen.iter().find(|seen| *seen == &ident) {
                let _ = first;
                errors.spanned(ident, shadow_message(ident));
            }
            seen.push(ident);
        }
    }
    for arm in &lowered.arms {
        for &index in &arm.jumps {
            let jump = &lowered.jumps[index];
            let target = &lowered.labels[jump.target];
            // The carried value is bound by the jump itself.
            for &id in target.live.iter().filter(|&&id| Some(id) != target.value) {
                let ident = &lowered.bindings[id].ident;
                let innermost = jump.scope.iter().rev().find(|&&b| lowered.bindings[b].ident == *ident);
                if let Some(&shadow) = innermost.filter(|&&b| b != id) {
                    errors.spanned(&lowered.bindings[shadow].ident, shadow_message(ident));
                }
            }
        }
    }
}

fn shadow_message(ident: &Ident) -> String {
    format!(
        "this `{ident}` shadows another `{ident}` that the workflow still needs after a suspension \
         point; both would be stored under one name: rename one of them"
    )
}

// -------------------------------------------------------------------- static facts

fn facts(workflow: &str, args: &Args, item: &ItemFn, sig: &Signature, lowered: &Lowered) -> TokenStream {
    let line = item.sig.fn_token.span().start().line as u32;
    let params: Vec<String> = sig.params.iter().map(|p| p.pat.to_token_stream().to_string()).collect();
    let keys: Vec<String> = args.keys.iter().map(ToString::to_string).collect();
    let points = lowered.points.iter().enumerate().map(|(index, point)| {
        let name = point.call.name.value();
        let kind = match point.call.kind {
            Kind::Step => q!(Step),
            Kind::Sleep => q!(Sleep),
            Kind::Event => q!(Event),
        };
        let start = point.call.span.start();
        let (line, column) = (start.line as u32, start.column as u32 + 1);
        let stored: Vec<String> = point
            .after
            .filter(|&label| lowered.labels[label].reachable)
            .map(|label| stored_names(lowered, label))
            .unwrap_or_default();
        q! {
            ::durable_core::PointFacts {
                index: #index,
                name: #name,
                kind: ::durable_core::PointKind::#kind,
                file: ::core::file!(),
                line: #line,
                column: #column,
                stored: &[#(#stored),*],
            }
        }
    });
    let edges = edges(lowered).into_iter().map(|(from, to)| {
        let from = node(from);
        let to = node(to);
        q!(::durable_core::Edge { from: #from, to: #to })
    });
    let fingerprint = fingerprint(lowered);
    q! {
        &::durable_core::WorkflowFacts {
            name: #workflow,
            file: ::core::file!(),
            line: #line,
            params: &[#(#params),*],
            keys: &[#(#keys),*],
            points: &[#(#points),*],
            edges: &[#(#edges),*],
            fingerprint: #fingerprint,
        }
    }
}

fn stored_names(lowered: &Lowered, label: LabelId) -> Vec<String> {
    lowered.labels[label]
        .live
        .iter()
        .map(|&id| &lowered.bindings[id])
        .filter(|binding| !binding.hidden)
        .map(|binding| binding.ident.to_string())
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    Start,
    Point(usize),
    End,
}

fn node(node: Node) -> TokenStream {
    match node {
        Node::Start => q!(::durable_core::Node::Start),
        Node::Point(index) => q!(::durable_core::Node::Point(#index)),
        Node::End => q!(::durable_core::Node::End),
    }
}

fn node_of(lowered: &Lowered, label: LabelId) -> Option<Node> {
    match lowered.labels[label].kind {
        LabelKind::Start => Some(Node::Start),
        LabelKind::Point { point, .. } => Some(Node::Point(point)),
        _ => None,
    }
}

/// Which point can follow which, through transient labels.
fn edges(lowered: &Lowered) -> Vec<(Node, Node)> {
    let arm_of = |label: LabelId| lowered.arms.iter().find(|arm| arm.label == label);
    let mut edges = std::collections::BTreeSet::new();
    for arm in &lowered.arms {
        let Some(from) = node_of(lowered, arm.label) else { continue };
        let mut stack = vec![arm];
        let mut seen = HashSet::new();
        while let Some(arm) = stack.pop() {
            if arm.returns {
                edges.insert((from, Node::End));
            }
            for &jump in &arm.jumps {
                let target = lowered.jumps[jump].target;
                match node_of(lowered, target) {
                    Some(to) if to != from => {
                        edges.insert((from, to));
                    }
                    Some(_) => {}
                    None => {
                        if seen.insert(target) {
                            stack.extend(arm_of(target));
                        }
                    }
                }
            }
        }
    }
    edges.into_iter().collect()
}

/// FNV-1a of the persisted layout: each state's key and the names of its fields.
fn fingerprint(lowered: &Lowered) -> String {
    let mut layout = String::new();
    for label in lowered.labels.iter().filter(|l| l.reachable && l.kind.persisted()) {
        let names: Vec<String> = label.live.iter().map(|&id| lowered.bindings[id].ident.to_string()).collect();
        layout.push_str(&format!("{}{{{}}};", label.serde_name, names.join(",")));
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in layout.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use quote::quote;

    fn pretty(tokens: proc_macro2::TokenStream) -> String {
        prettyplease::unparse(&syn::parse2(tokens).expect("the expansion parses as a file"))
    }

    fn expand(item: proc_macro2::TokenStream) -> String {
        pretty(super::durable(proc_macro2::TokenStream::new(), item))
    }

    #[test]
    fn straight_line() {
        insta::assert_snapshot!(expand(quote! {
            pub async fn charge(order_id: String) -> Result<String, WorkflowError> {
                let total = step!("price", price(&order_id).await)?;
                let receipt = step!("charge", retry = Retry::exponential(3), pay(total).await)?;
                Ok(format!("{order_id}: {receipt}"))
            }
        }));
    }

    #[test]
    fn loop_timer_and_event() {
        insta::assert_snapshot!(expand(quote! {
            async fn approval(items: Vec<u64>) -> Result<u64, WorkflowError> {
                let mut total = 0;
                for item in items {
                    total += step!("price", price(item).await)?;
                }
                if total > 100 {
                    wait!("cool_off", Duration::from_secs(60));
                }
                let approved: bool = wait!("approval", event, timeout = Duration::from_secs(3600))?;
                Ok(if approved { total } else { 0 })
            }
        }));
    }
}
