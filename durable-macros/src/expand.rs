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

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ItemFn;
use syn::spanned::Spanned;

use crate::errors::Errors;
use crate::lower::{self, Lowered};
use crate::parse::{self, Args, Signature};
use crate::{check, facts, machine, scan};

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
        check::check_borrows(&lowered, &mut errors);
        check::check_shadowing(&lowered, &mut errors);
    }
    errors.finish()?;
    Ok(render(&args, &item, &sig, &lowered))
}

/// Keeps the workflow's name usable (a struct with a `Workflow` impl whose run is unreachable)
/// so that the user sees the real errors and no cascade.
fn fallback(item: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    let Ok(mut item) = parse::item(item.clone()) else { return quote!(#error #item) };
    // A lifetime parameter was reported; kept, it would make the stand-in impl fail again.
    item.sig.generics.params = item
        .sig
        .generics
        .params
        .iter()
        .filter(|param| !matches!(param, syn::GenericParam::Lifetime(_)))
        .cloned()
        .collect();
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
    let facts = facts::facts(&workflow, args, item, sig, lowered);
    let machine = machine::machine(&workflow, sig, lowered);
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

            #[allow(unused_mut, unreachable_code, clippy::diverging_sub_expression, clippy::let_unit_value, clippy::no_effect, clippy::unit_arg, clippy::needless_return, clippy::never_loop, clippy::needless_late_init)]
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
