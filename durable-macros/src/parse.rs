//! Parsing: the attribute's arguments, the function's signature, and `step!`/`wait!` calls.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, GenericArgument, Ident, ItemFn, LitStr, Macro, Pat, PathArguments, ReturnType, Token, Type};

use crate::errors::Errors;

/// `#[durable(name = "...", key = param, ...)]`.
#[derive(Default)]
pub(crate) struct Args {
    /// The workflow's registered name, if not the function's.
    pub(crate) name: Option<LitStr>,
    /// Parameters that identify an execution in business terms (`key = order_id`).
    pub(crate) keys: Vec<Ident>,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "name" => args.name = Some(input.parse()?),
                "key" => args.keys.push(input.parse()?),
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown `#[durable]` option `{key}`; the options are `name = \"...\"` and \
                             `key = parameter` (repeatable)"
                        ),
                    ));
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}

/// One input of the workflow.
pub(crate) struct Param {
    pub(crate) pat: Pat,
    pub(crate) ty: Type,
}

/// What the signature says, checked.
pub(crate) struct Signature {
    /// The `ctx: &Ctx` parameter's pattern, if declared.
    pub(crate) ctx: Option<Pat>,
    pub(crate) params: Vec<Param>,
    pub(crate) ok: Type,
    pub(crate) err: Type,
}

/// Checks that `item` is an `async fn` the macro can rewrite.
pub(crate) fn signature(item: &ItemFn, errors: &mut Errors) -> Option<Signature> {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        errors.spanned(sig.fn_token, "`#[durable]` works on `async fn` only: add `async` (steps await their bodies)");
    }
    if let Some(constness) = &sig.constness {
        errors.spanned(constness, "a `#[durable]` function cannot be `const`");
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, "a `#[durable]` function cannot be variadic");
    }
    for param in sig.generics.lifetimes() {
        errors.spanned(
            param,
            "a `#[durable]` function cannot have lifetime parameters: its inputs are stored, so they must be owned",
        );
    }
    let mut ctx = None;
    let mut params = Vec::new();
    for (index, input) in sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(receiver) => errors.spanned(
                receiver,
                "`#[durable]` cannot be used on a method with `self`: a workflow is a free `async fn`; \
                 pass what it needs as parameters",
            ),
            FnArg::Typed(typed) if index == 0 && is_ctx(&typed.ty) => ctx = Some((*typed.pat).clone()),
            FnArg::Typed(typed) if is_ctx(&typed.ty) => {
                errors.spanned(&typed.ty, "the execution context must be the first parameter: `ctx: &Ctx`")
            }
            FnArg::Typed(typed) => {
                if let Type::Reference(reference) = &*typed.ty {
                    errors.spanned(
                        reference,
                        "a workflow's inputs are stored with the execution, so they must be owned: \
                         take `String` instead of `&str`, `T` instead of `&T` (only the first \
                         parameter may borrow, as `ctx: &Ctx`)",
                    );
                }
                params.push(Param { pat: (*typed.pat).clone(), ty: (*typed.ty).clone() });
            }
        }
    }
    let (ok, err) = match result_types(&sig.output) {
        Some(types) => types,
        None => {
            let span = match &sig.output {
                ReturnType::Default => sig.paren_token.span.close(),
                ReturnType::Type(_, ty) => ty.span(),
            };
            errors.at(
                span,
                "a `#[durable]` function must return `Result<T, E>` (T and E serializable; \
                 `durable_core::WorkflowError` is a ready-made E)",
            );
            return None;
        }
    };
    Some(Signature { ctx, params, ok, err })
}

/// Whether `ty` is `&Ctx` (any path ending in `Ctx`).
fn is_ctx(ty: &Type) -> bool {
    let Type::Reference(reference) = ty else { return false };
    let Type::Path(path) = &*reference.elem else { return false };
    path.path.segments.last().is_some_and(|segment| segment.ident == "Ctx")
}

/// `T` and `E` of `-> Result<T, E>`.
fn result_types(output: &ReturnType) -> Option<(Type, Type)> {
    let ReturnType::Type(_, ty) = output else { return None };
    let Type::Path(path) = &**ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    });
    let ok = types.next()?;
    let err = types.next()?;
    types.next().is_none().then_some((ok, err))
}

/// The kind of a suspension point macro.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Step,
    Sleep,
    Event,
    /// `call!`, or `wait!(name, child = handle)`: waits for a child workflow's end.
    Child,
    /// `start!`: starts a child workflow.
    Spawn,
    /// `wait!(name, callback = |token| submit, ..)`.
    Callback,
    /// `map!`/`parallel!`.
    Map,
    /// `wait!(name, until = |state| check, ..)`.
    Poll,
}

/// The macros that are suspension points.
pub(crate) const POINT_MACROS: [&str; 6] = ["step", "wait", "call", "start", "map", "parallel"];

/// Whether `ident` names a suspension point macro.
pub(crate) fn is_point_name(ident: &Ident) -> bool {
    POINT_MACROS.iter().any(|name| ident == name)
}

/// `step!`, `wait!`, `call!` or `start!`, by the last segment of the macro's path.
pub(crate) fn point_macro(mac: &Macro) -> Option<&'static str> {
    let last = mac.path.segments.last()?;
    POINT_MACROS.into_iter().find(|name| last.ident == name)
}

/// A parsed `step!`/`wait!` call.
#[derive(Clone)]
pub(crate) struct PointCall {
    pub(crate) kind: Kind,
    pub(crate) name: LitStr,
    /// The whole macro call, for spans.
    pub(crate) span: Span,
    pub(crate) retry: Option<Expr>,
    pub(crate) semantics: Option<Expr>,
    /// The step's body.
    pub(crate) body: Option<Expr>,
    /// The timer's duration.
    pub(crate) duration: Option<Expr>,
    /// The event wait's timeout.
    pub(crate) timeout: Option<Expr>,
    /// The child workflow of a `call!`/`start!`.
    pub(crate) workflow: Option<Expr>,
    /// The child's input.
    pub(crate) input: Option<Expr>,
    /// What tells apart the children one point starts.
    pub(crate) key: Option<Expr>,
    /// The handle a `wait!(name, child = handle)` waits for.
    pub(crate) handle: Option<Expr>,
    /// A callback's submitter: the token's pattern and the step body that hands it out.
    pub(crate) submit: Option<(syn::Pat, Expr)>,
    /// A callback's heartbeat window.
    pub(crate) heartbeat: Option<Expr>,
    /// A `map!`'s items (for `parallel!`, the number of branches as a range).
    pub(crate) items: Option<Expr>,
    /// A `map!`'s item pattern and body (for `parallel!`, a `match` on the branch index).
    pub(crate) branch: Option<(syn::Pat, Expr)>,
    /// A batch's concurrency limit.
    pub(crate) max_concurrency: Option<Expr>,
    /// A batch's completion policy.
    pub(crate) completion: Option<Expr>,
    /// A wait for a condition: the state's pattern and the check.
    pub(crate) until: Option<(syn::Pat, Expr)>,
    /// Its first state.
    pub(crate) state: Option<Expr>,
    /// How many polls and how far apart.
    pub(crate) schedule: Option<Expr>,
}

/// Parses the arguments of a `step!`/`wait!` call.
pub(crate) fn point_call(mac: &Macro) -> syn::Result<PointCall> {
    let which = point_macro(mac).unwrap_or("step");
    let span = mac.span();
    let args = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)?;
    let mut args = args.into_iter();
    let usage = match which {
        "step" => "`step!(\"name\", [retry = ..,] [semantics = ..,] body)`",
        "call" => "`call!(\"name\", workflow, input [, key = value])`",
        "start" => "`start!(\"name\", workflow, input [, key = value])`",
        "map" => {
            "`map!(\"name\", items, |item| body [, max_concurrency = n] [, completion = Completion::..])` or \
             `map!(\"name\", items, child = workflow [, ..])`"
        }
        "parallel" => "`parallel!(\"name\", [body, body, ..] [, max_concurrency = n] [, completion = Completion::..])`",
        _ => {
            "`wait!(\"name\", duration)`, `wait!(\"name\", event [, timeout = duration])`, \
             `wait!(\"name\", child = handle)`, `wait!(\"name\", callback = |token| submit [, retry = ..] \
             [, timeout = duration] [, heartbeat = duration])` or `wait!(\"name\", until = |state| check, \
             state = first, schedule = Retry::..)`"
        }
    };
    let name = match args.next() {
        Some(Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(name), .. })) => name,
        Some(other) => {
            return Err(syn::Error::new(
                other.span(),
                format!("the first argument must be the point's name as a string literal: {usage}"),
            ));
        }
        None => return Err(syn::Error::new(span, format!("expected a name and arguments: {usage}"))),
    };
    if name.value().trim().is_empty() {
        return Err(syn::Error::new(name.span(), "a point's name cannot be empty"));
    }
    let rest: Vec<Expr> = args.collect();
    let mut call = PointCall {
        kind: Kind::Step,
        name,
        span,
        retry: None,
        semantics: None,
        body: None,
        duration: None,
        timeout: None,
        workflow: None,
        input: None,
        key: None,
        handle: None,
        submit: None,
        heartbeat: None,
        items: None,
        branch: None,
        max_concurrency: None,
        completion: None,
        until: None,
        state: None,
        schedule: None,
    };
    match which {
        "step" => step_args(&mut call, rest, usage)?,
        "call" | "start" => child_args(&mut call, which, rest, usage)?,
        "map" | "parallel" => batch_args(&mut call, which, rest, usage)?,
        _ => wait_args(&mut call, rest, usage)?,
    }
    Ok(call)
}

fn step_args(call: &mut PointCall, mut rest: Vec<Expr>, usage: &str) -> syn::Result<()> {
    let body = rest.pop().ok_or_else(|| syn::Error::new(call.span, format!("`step!` needs a body: {usage}")))?;
    for option in rest {
        let (key, value) = option_pair(&option).ok_or_else(|| {
            syn::Error::new(
                option.span(),
                format!("expected `retry = ..` or `semantics = ..` before the body: {usage}"),
            )
        })?;
        match key.to_string().as_str() {
            "retry" => call.retry = Some(value),
            "semantics" => call.semantics = Some(value),
            _ => {
                return Err(syn::Error::new(
                    key.span(),
                    format!("unknown `step!` option `{key}`; the options are `retry` and `semantics`"),
                ));
            }
        }
    }
    call.body = Some(body);
    Ok(())
}

fn child_args(call: &mut PointCall, which: &str, rest: Vec<Expr>, usage: &str) -> syn::Result<()> {
    call.kind = if which == "call" { Kind::Child } else { Kind::Spawn };
    let mut rest = rest.into_iter();
    let workflow = rest
        .next()
        .ok_or_else(|| syn::Error::new(call.span, format!("`{which}!` needs a workflow and its input: {usage}")))?;
    if option_pair(&workflow).is_some() {
        return Err(syn::Error::new(workflow.span(), format!("expected the child workflow here: {usage}")));
    }
    let input = rest
        .next()
        .ok_or_else(|| syn::Error::new(workflow.span(), format!("`{which}!` needs the child's input: {usage}")))?;
    call.workflow = Some(workflow);
    call.input = Some(input);
    for option in rest {
        match option_pair(&option) {
            Some((key, value)) if key == "key" => call.key = Some(value),
            _ => return Err(syn::Error::new(option.span(), format!("expected `key = value`: {usage}"))),
        }
    }
    Ok(())
}

fn batch_args(call: &mut PointCall, which: &str, rest: Vec<Expr>, usage: &str) -> syn::Result<()> {
    call.kind = Kind::Map;
    let mut rest = rest.into_iter();
    let missing = |what: &str| syn::Error::new(call.span, format!("`{which}!` needs {what}: {usage}"));
    if which == "map" {
        let items = rest.next().ok_or_else(|| missing("the items"))?;
        let body = rest.next().ok_or_else(|| missing("the branch body"))?;
        if let Some((_, workflow)) = option_pair(&body).filter(|(key, _)| key == "child") {
            call.items = Some(items);
            call.workflow = Some(workflow);
            return batch_options(call, rest, usage);
        }
        let Expr::Closure(closure) = body else {
            return Err(syn::Error::new(body.span(), format!("the branch body is written `|item| body`: {usage}")));
        };
        if closure.inputs.len() != 1 || closure.asyncness.is_some() {
            return Err(syn::Error::new(
                closure.span(),
                format!("the branch takes one item and nothing else (`|item| body`): {usage}"),
            ));
        }
        call.items = Some(items);
        call.branch = Some((closure.inputs[0].clone(), *closure.body));
    } else {
        let branches = rest.next().ok_or_else(|| missing("its branches"))?;
        let Expr::Array(array) = branches else {
            return Err(syn::Error::new(
                branches.span(),
                format!("the branches are written as a list `[body, body, ..]`: {usage}"),
            ));
        };
        let count = array.elems.len();
        // Each branch's error becomes a `StepError`, so branches may fail with errors of their own.
        let arms = array
            .elems
            .iter()
            .enumerate()
            .map(|(index, body)| quote::quote!(#index => ::durable_core::__private::step_output(#body),));
        call.items = Some(syn::parse_quote!(0..#count));
        let pat: syn::Pat = syn::parse_quote!(__branch);
        // Every index is below the count: the last arm is never taken.
        let body: Expr = syn::parse_quote!(match __branch {
            #(#arms)*
            _ => ::core::result::Result::Err(::durable_core::StepError::terminal("no such branch")),
        });
        call.branch = Some((pat, body));
    }
    batch_options(call, rest, usage)
}

fn batch_options(call: &mut PointCall, rest: impl Iterator<Item = Expr>, usage: &str) -> syn::Result<()> {
    for option in rest {
        match option_pair(&option) {
            Some((key, value)) if key == "max_concurrency" => call.max_concurrency = Some(value),
            Some((key, value)) if key == "completion" => call.completion = Some(value),
            _ => {
                return Err(syn::Error::new(
                    option.span(),
                    format!("expected `max_concurrency = n` or `completion = ..`: {usage}"),
                ));
            }
        }
    }
    Ok(())
}

fn wait_args(call: &mut PointCall, rest: Vec<Expr>, usage: &str) -> syn::Result<()> {
    let mut rest = rest.into_iter();
    let what = rest
        .next()
        .ok_or_else(|| syn::Error::new(call.span, format!("`wait!` needs a duration or `event`: {usage}")))?;
    if let Some((_, handle)) = option_pair(&what).filter(|(key, _)| key == "child") {
        call.kind = Kind::Child;
        call.handle = Some(handle);
    } else if let Some((_, until)) = option_pair(&what).filter(|(key, _)| key == "until") {
        call.kind = Kind::Poll;
        let Expr::Closure(closure) = until else {
            return Err(syn::Error::new(
                until.span(),
                format!("`until = ..` takes the check as `|state| body`: {usage}"),
            ));
        };
        if closure.inputs.len() != 1 || closure.asyncness.is_some() {
            return Err(syn::Error::new(
                closure.span(),
                format!("the check takes the state and nothing else (`|state| body`): {usage}"),
            ));
        }
        call.until = Some((closure.inputs[0].clone(), *closure.body));
        for option in rest {
            match option_pair(&option) {
                Some((key, value)) if key == "state" => call.state = Some(value),
                Some((key, value)) if key == "schedule" => call.schedule = Some(value),
                _ => {
                    return Err(syn::Error::new(
                        option.span(),
                        format!("expected `state = ..` or `schedule = ..`: {usage}"),
                    ));
                }
            }
        }
        if call.schedule.is_none() {
            return Err(syn::Error::new(
                call.span,
                format!("a wait for a condition needs `schedule = ..` (how many polls, how far apart): {usage}"),
            ));
        }
        return Ok(());
    } else if let Some((_, submit)) = option_pair(&what).filter(|(key, _)| key == "callback") {
        call.kind = Kind::Callback;
        let Expr::Closure(closure) = submit else {
            return Err(syn::Error::new(
                submit.span(),
                format!("`callback = ..` takes the submitter as `|token| body`: {usage}"),
            ));
        };
        if closure.inputs.len() != 1 || closure.asyncness.is_some() {
            return Err(syn::Error::new(
                closure.span(),
                format!("the submitter takes the token and nothing else (`|token| body`): {usage}"),
            ));
        }
        call.submit = Some((closure.inputs[0].clone(), *closure.body));
        for option in rest {
            match option_pair(&option) {
                Some((key, value)) if key == "timeout" => call.timeout = Some(value),
                Some((key, value)) if key == "heartbeat" => call.heartbeat = Some(value),
                Some((key, value)) if key == "retry" => call.retry = Some(value),
                _ => {
                    return Err(syn::Error::new(
                        option.span(),
                        format!("expected `retry = ..`, `timeout = ..` or `heartbeat = ..`: {usage}"),
                    ));
                }
            }
        }
        return Ok(());
    } else if matches!(&what, Expr::Path(path) if path.path.is_ident("event")) {
        call.kind = Kind::Event;
        if let Some(option) = rest.next() {
            match option_pair(&option) {
                Some((key, value)) if key == "timeout" => call.timeout = Some(value),
                _ => return Err(syn::Error::new(option.span(), format!("expected `timeout = duration`: {usage}"))),
            }
        }
    } else {
        call.kind = Kind::Sleep;
        call.duration = Some(what);
    }
    if let Some(extra) = rest.next() {
        return Err(syn::Error::new(extra.span(), format!("unexpected argument: {usage}")));
    }
    Ok(())
}

/// `key = value`.
fn option_pair(expr: &Expr) -> Option<(Ident, Expr)> {
    let Expr::Assign(assign) = expr else { return None };
    let Expr::Path(path) = &*assign.left else { return None };
    let key = path.path.get_ident()?.clone();
    Some((key, (*assign.right).clone()))
}

/// The unparsed item, for the fallback expansion.
pub(crate) fn item(tokens: TokenStream) -> syn::Result<ItemFn> {
    syn::parse2(tokens)
}
