//! Suspension points: the code that runs a `step!`/`wait!` and the checkpoint after it.

use proc_macro2::TokenStream;
use syn::{Expr, Ident, Stmt};

use super::rewrite::{name_value, take_first_point};
use super::{BindingId, Cont, Form, LabelId, LabelKind, Lowerer, Point, Then, point_ref};
use crate::parse::{self, Kind, PointCall};
use crate::scan::{self, has_point};

impl Lowerer {
    // ---------------------------------------------------------------- points

    /// Lowers `expr`, which holds a point in a position evaluated before anything else in it.
    pub(super) fn point_in<'a>(&mut self, expr: &Expr, form: Form, rest: &'a [Stmt], k: Cont) -> TokenStream {
        let mut remainder = expr.clone();
        let Some(mac) = take_first_point(&mut remainder) else { return self.unsupported(expr) };
        let call = match parse::point_call(&mac) {
            Ok(call) => call,
            Err(error) => {
                self.errors.push(error);
                return q!(::core::unreachable!());
            }
        };
        let kind = call.kind;
        let point = self.new_point(call);
        let then: Then<'a> = Box::new(move |this: &mut Lowerer| {
            if has_point(&remainder) {
                // More points follow in the same expression: keep the value across a checkpoint,
                // under a name of its own (the next point's value is `__r` again).
                let ident = Ident::new(&format!("__durable_p{point}"), proc_macro2::Span::mixed_site());
                let mut remainder = remainder;
                // `step!(..)?` applies its `?` before the checkpoint, as plain Rust would before
                // evaluating what follows.
                let carry = if name_value(&mut remainder, &ident) { q!(__r?) } else { q!(__r) };
                return this.checkpoint_then(point, kind, Some(carry), move |this| {
                    this.bind_hidden(&ident.to_string(), false, None);
                    let code = this.resume_form(&remainder, form, rest, k);
                    q!(let #ident = __v; #code)
                });
            }
            match form {
                Form::Let(mut local) => {
                    let init = local.init.as_mut().expect("a let with a point has an initializer");
                    *init.expr = remainder;
                    let stmt = this.plain_stmt(&Stmt::Local(*local));
                    let next = this.checkpoint_then(point, kind, None, move |this| this.stmts(rest, k));
                    q!(#stmt #next)
                }
                Form::Stmt => {
                    let stmt = this.plain_expr(&remainder);
                    let next = this.checkpoint_then(point, kind, None, move |this| this.stmts(rest, k));
                    q!(#stmt; #next)
                }
                Form::Value(k) => {
                    let value = this.plain_expr(&remainder);
                    let carry = this.wants_value(k).then(|| q!(__v));
                    let next = this.checkpoint_then(point, kind, carry, move |this| {
                        let value = this.wants_value(k).then(|| q!(__v));
                        this.apply(k, value)
                    });
                    q!(let __v = #value; #next)
                }
            }
        });
        self.point_code(point, then)
    }

    pub(super) fn resume_form(&mut self, remainder: &Expr, form: Form, rest: &[Stmt], k: Cont) -> TokenStream {
        match form {
            Form::Let(mut local) => {
                let init = local.init.as_mut().expect("a let with a point has an initializer");
                *init.expr = remainder.clone();
                self.stmts(&[&[Stmt::Local(*local)], rest].concat(), k)
            }
            Form::Stmt => {
                let stmt = Stmt::Expr(remainder.clone(), Some(Default::default()));
                self.stmts(&[&[stmt], rest].concat(), k)
            }
            Form::Value(k) => self.value(remainder, k),
        }
    }

    /// Checkpoints after `point` (a timer needs none: its waiting state is its checkpoint) and
    /// continues with `next` in the checkpoint's arm. `carry` is a value kept across it as `__v`.
    pub(super) fn checkpoint_then(
        &mut self,
        point: usize,
        kind: Kind,
        carry: Option<TokenStream>,
        next: impl FnOnce(&mut Self) -> TokenStream,
    ) -> TokenStream {
        if kind == Kind::Sleep {
            let value = carry.map(|value| q!(let __v = #value;));
            let next = next(self);
            return q!(#value #next);
        }
        let name = self.points[point].call.name.value();
        self.scope.push(Vec::new());
        let value = carry.is_some().then(|| self.bind_hidden("__v", false, None));
        let label = self.new_label(LabelKind::Point { point, waiting: false }, name.clone());
        self.labels[label].value = value;
        self.points[point].after = Some(label);
        let code = self.jump(label, carry);
        self.arm_for(label, |this| {
            if let Some(value) = value {
                this.arms[this.arm].uses.insert(value);
            }
            next(this)
        });
        self.scope.pop();
        code
    }

    pub(super) fn new_point(&mut self, call: PointCall) -> usize {
        let name = call.name.value();
        if let Some(first) = self.names.get(&name) {
            let _ = first;
            self.errors.at(
                call.name.span(),
                format!(
                    "the name \"{name}\" is used by another point of this workflow; names identify \
                     points in the history and the stored state, so give each `step!`/`wait!` its \
                     own name (a point inside a loop is one point: its name is not repeated)"
                ),
            );
        } else {
            self.names.insert(name, call.name.span());
        }
        self.points.push(Point { call, after: None });
        self.points.len() - 1
    }

    /// The code that runs point `point` and leaves its value in `__r`, then `then`.
    pub(super) fn point_code(&mut self, point: usize, then: Then<'_>) -> TokenStream {
        let call = self.points[point].call.clone();
        let facts = point_ref(point);
        match call.kind {
            Kind::Step => {
                let retry = call.retry.as_ref().map(|e| self.plain_expr(e));
                let semantics = call.semantics.as_ref().map(|e| self.plain_expr(e));
                let policy = match (retry, semantics) {
                    (None, None) => q!(::durable_core::__private::default_policy()),
                    (retry, semantics) => {
                        let retry = retry.unwrap_or_else(|| q!(::core::default::Default::default()));
                        let semantics = semantics.unwrap_or_else(|| q!(::core::default::Default::default()));
                        q!(::durable_core::StepPolicy { retry: #retry, semantics: #semantics })
                    }
                };
                let body = self.plain_expr(call.body.as_ref().expect("a step has a body"));
                let then = then(self);
                step_tokens(&facts, &policy, &body, then)
            }
            Kind::Sleep => {
                let duration = self.plain_expr(call.duration.as_ref().expect("a timer has a duration"));
                let ty = Some(q!(::durable_core::Timestamp));
                let (start, label, wake) = self.waiting(
                    point,
                    "__wake_at",
                    ty,
                    |wake| q!(let #wake = ::durable_core::__private::sleep_start(__host, #facts, #duration);),
                );
                self.points[point].after = Some(label);
                self.arm_for(label, |this| {
                    this.arms[this.arm].uses.insert(wake);
                    let then = then(this);
                    sleep_tokens(&facts, then)
                });
                start
            }
            Kind::Event => {
                let timeout = self.optional(&call.timeout);
                let with_timeout = call.timeout.is_some();
                let ty = Some(q!(::core::option::Option<::durable_core::Timestamp>));
                let (start, label, deadline) = self.waiting(
                    point,
                    "__deadline",
                    ty,
                    |deadline| q!(let #deadline = ::durable_core::__private::event_start(__host, #facts, #timeout);),
                );
                self.arm_for(label, |this| {
                    this.arms[this.arm].uses.insert(deadline);
                    let then = then(this);
                    event_tokens(&facts, with_timeout, then)
                });
                start
            }
            Kind::Callback => {
                let timeout = self.optional(&call.timeout);
                let heartbeat = self.optional(&call.heartbeat);
                let policy = match call.retry.as_ref().map(|e| self.plain_expr(e)) {
                    None => q!(::durable_core::__private::default_policy()),
                    Some(retry) => {
                        q!(::durable_core::StepPolicy { retry: #retry, ..::core::default::Default::default() })
                    }
                };
                let (pat, body) = call.submit.clone().expect("a callback has a submitter");
                let name = call.name.value();
                // The token is stored (a checkpoint of its own) before the submitter hands it out.
                let (start, token_label, wait) = self.waiting(point, "__callback", None, |wait| {
                    q!(let #wait = ::durable_core::__private::callback_start(__host, #facts, #timeout, #heartbeat);)
                });
                self.labels[token_label].serde_name = format!("{name}:token");
                self.scope.push(Vec::new());
                let wait_label = self.new_label(LabelKind::Point { point, waiting: true }, format!("{name}:waiting"));
                self.scope.pop();
                self.arm_for(token_label, |this| {
                    this.arms[this.arm].uses.insert(wait);
                    let wait_ident = this.bindings[wait].ident.clone();
                    let body = this.plain_expr(&syn::parse_quote!({
                        let #pat: ::std::string::String = ::durable_core::__private::callback_token(&#wait_ident);
                        #body
                    }));
                    let jump = this.jump(wait_label, None);
                    let then = q! {
                        let __callback = ::durable_core::__private::callback_submitted(__callback, __r);
                        #jump
                    };
                    step_tokens(&facts, &policy, &body, then)
                });
                self.arm_for(wait_label, |this| {
                    this.arms[this.arm].uses.insert(wait);
                    let then = then(this);
                    waited_tokens(q!(::durable_core::__private::callback_poll(__host, #facts, &__callback)), then)
                });
                start
            }
            Kind::Map if call.workflow.is_some() => {
                let items = self.plain_expr(call.items.as_ref().expect("a batch has items"));
                let max_concurrency = self.optional(&call.max_concurrency);
                let completion = self.optional(&call.completion);
                let workflow = call.workflow.clone().expect("a child batch has a workflow");
                let start_workflow = self.plain_expr(&workflow);
                let name = call.name.value();
                let (start, label, batch) = self.waiting(point, "__batch", None, |batch| {
                    q! {
                        let #batch = ::durable_core::__private::child_batch_start(
                            __host,
                            #facts,
                            &#start_workflow,
                            #items,
                            ::durable_core::__private::batch_options(#max_concurrency, #completion),
                        );
                    }
                });
                self.labels[label].serde_name = format!("{name}:batch");
                self.arm_for(label, |this| {
                    this.arms[this.arm].uses.insert(batch);
                    let batch = this.bindings[batch].ident.clone();
                    let workflow = this.plain_expr(&workflow);
                    let again = this.jump(label, None);
                    let then = then(this);
                    q! {
                        let __r = match ::durable_core::__private::child_batch_step(__host, #facts, &#workflow, #batch) {
                            ::durable_core::__private::ChildBatchNext::Changed(#batch) => { #again }
                            ::durable_core::__private::ChildBatchNext::Wait => {
                                return ::durable_core::__private::exit(::durable_core::Exit::Suspended);
                            }
                            ::durable_core::__private::ChildBatchNext::Done(__r) => __r,
                        };
                        #then
                    }
                });
                start
            }
            Kind::Map => {
                let items = self.plain_expr(call.items.as_ref().expect("a batch has items"));
                let max_concurrency = self.optional(&call.max_concurrency);
                let completion = self.optional(&call.completion);
                let (pat, body) = call.branch.clone().expect("a batch has a branch body");
                let name = call.name.value();
                // The items are stored (a checkpoint of their own) before any branch runs.
                let (start, label, batch) = self.waiting(point, "__batch", None, |batch| {
                    q! {
                        let #batch = ::durable_core::__private::batch_start(
                            __host,
                            #facts,
                            #items,
                            ::durable_core::__private::batch_options(#max_concurrency, #completion),
                        );
                    }
                });
                self.labels[label].serde_name = format!("{name}:batch");
                self.arm_for(label, |this| {
                    this.arms[this.arm].uses.insert(batch);
                    let batch = this.bindings[batch].ident.clone();
                    // Each branch owns its item and borrows the workflow's locals: they are shadowed
                    // by references, which the branches' futures share.
                    let shadows = this.borrowed_by(&pat, &body);
                    // The user's `&local` is now a reference to a reference: not their doing.
                    // `branch_for` gives the closure its item's type, from the stored items.
                    let branch: Expr = syn::parse_quote!({
                        #(let #shadows = &#shadows;)*
                        #[allow(clippy::needless_borrow, clippy::needless_borrows_for_generic_args)]
                        let __branch = ::durable_core::__private::branch_for(
                            &#batch,
                            move |#pat| ::durable_core::__private::branch(async move { #body }),
                        );
                        __branch
                    });
                    let branch = this.plain_expr(&branch);
                    let then = then(this);
                    q! {
                        let __branch = #branch;
                        let __r = match ::durable_core::__private::batch_run(__host, #facts, #batch, __branch).await {
                            ::core::result::Result::Ok(__r) => __r,
                            ::core::result::Result::Err(__p) => {
                                return ::durable_core::__private::exit(::durable_core::__private::pause(__p));
                            }
                        };
                        #then
                    }
                });
                start
            }
            Kind::Poll => {
                let first = match &call.state {
                    Some(state) => self.plain_expr(state),
                    None => q!(()),
                };
                let schedule = call.schedule.clone().expect("a poll has a schedule");
                let (pat, body) = call.until.clone().expect("a poll has a check");
                let name = call.name.value();
                let (start, label, poll) = self.waiting(
                    point,
                    "__poll",
                    None,
                    |poll| q!(let #poll = ::durable_core::__private::poll_start(#first);),
                );
                self.labels[label].serde_name = format!("{name}:polling");
                self.arm_for(label, |this| {
                    this.arms[this.arm].uses.insert(poll);
                    let poll = this.bindings[poll].ident.clone();
                    let checked: Expr = syn::parse_quote!({
                        let #pat = #poll.state;
                        #body
                    });
                    let checked = this.plain_expr(&checked);
                    // Evaluated at every poll, in the poll's own arm.
                    let schedule = this.plain_expr(&schedule);
                    let again = this.jump(label, None);
                    let then = then(this);
                    q! {
                        if !::durable_core::__private::poll_due(__host, #facts, &#poll) {
                            return ::durable_core::__private::exit(::durable_core::Exit::Suspended);
                        }
                        let __polls = #poll.polls;
                        let __checked = #checked;
                        let __r = match ::durable_core::__private::poll_after(__host, #facts, __polls, __checked, &#schedule) {
                            ::durable_core::__private::PollNext::Again(#poll) => { #again }
                            ::durable_core::__private::PollNext::Done(__r) => __r,
                        };
                        #then
                    }
                });
                start
            }
            Kind::Spawn => {
                let begin = self.child_begin(point, &call);
                let then = then(self);
                q! {
                    // Start `name`: the child is created with the checkpoint after this point.
                    let __r = #begin;
                    #then
                }
            }
            Kind::Child => {
                let begin = match &call.handle {
                    Some(handle) => {
                        let handle = self.plain_expr(handle);
                        q!(::durable_core::__private::child_wait(__host, #facts, #handle))
                    }
                    None => self.child_begin(point, &call),
                };
                let (start, label, child) = self.waiting(point, "__child", None, |child| q!(let #child = #begin;));
                self.arm_for(label, |this| {
                    this.arms[this.arm].uses.insert(child);
                    let then = then(this);
                    waited_tokens(q!(::durable_core::__private::child_poll(__host, #facts, &__child)), then)
                });
                start
            }
        }
    }

    /// The workflow's locals that `body` uses, other than the bindings of `pat`.
    fn borrowed_by(&self, pat: &syn::Pat, body: &Expr) -> Vec<Ident> {
        struct Bound(Vec<Ident>);
        impl<'a> syn::visit::Visit<'a> for Bound {
            fn visit_pat_ident(&mut self, pat: &'a syn::PatIdent) {
                self.0.push(pat.ident.clone());
                syn::visit::visit_pat_ident(self, pat);
            }
        }
        let mut bound = Bound(Vec::new());
        syn::visit::Visit::visit_pat(&mut bound, pat);
        let mut used = Vec::new();
        scan::uses(body, &mut used);
        let mut locals: Vec<Ident> = used
            .into_iter()
            .filter(|ident| !bound.0.contains(ident))
            .filter(|ident| self.resolve(ident).is_some_and(|id| !self.bindings[id].hidden))
            .collect();
        locals.sort();
        locals.dedup();
        locals
    }

    /// `Some(expr)` lowered, or `None`, as an `Option` expression.
    fn optional(&mut self, expr: &Option<Expr>) -> TokenStream {
        match expr {
            Some(expr) => {
                let expr = self.plain_expr(expr);
                q!(::core::option::Option::Some(#expr))
            }
            None => q!(::core::option::Option::None),
        }
    }

    /// The code that starts the child of a `call!`/`start!` and evaluates to its handle.
    fn child_begin(&mut self, point: usize, call: &PointCall) -> TokenStream {
        let facts = point_ref(point);
        if call.key.is_none() && !self.loops.is_empty() {
            let which = if call.kind == Kind::Spawn { "start" } else { "call" };
            self.errors.at(
                call.name.span(),
                format!(
                    "a `{which}!` inside a loop starts a child workflow in every round, and each child \
                     needs an id of its own: add `key = ..` with a value that differs between rounds \
                     (`{which}!(\"{}\", workflow, input, key = i)`); the child's id is the parent's id, \
                     the point's name and the key",
                    call.name.value()
                ),
            );
        }
        let workflow = self.plain_expr(call.workflow.as_ref().expect("a child point has a workflow"));
        let input = self.plain_expr(call.input.as_ref().expect("a child point has an input"));
        let key = match &call.key {
            Some(key) => {
                let key = self.plain_expr(key);
                q!(::core::option::Option::Some(::std::string::ToString::to_string(&(#key))))
            }
            None => q!(::core::option::Option::None),
        };
        q! {
            match ::durable_core::__private::child_start(__host, #facts, &#workflow, #input, #key) {
                ::core::result::Result::Ok(__child) => __child,
                ::core::result::Result::Err(__e) => {
                    return ::durable_core::__private::exit(::durable_core::Exit::BadState(__e));
                }
            }
        }
    }

    /// The persisted state a timer or event wait keeps while waiting, with its hidden field.
    pub(super) fn waiting(
        &mut self,
        point: usize,
        field: &str,
        ty: Option<TokenStream>,
        init: impl FnOnce(&Ident) -> TokenStream,
    ) -> (TokenStream, LabelId, BindingId) {
        let name = self.points[point].call.name.value();
        let id = self.bind_hidden(field, false, ty);
        let mut code = init(&self.bindings[id].ident.clone());
        let is_event =
            matches!(self.points[point].call.kind, Kind::Event | Kind::Child | Kind::Callback | Kind::Map | Kind::Poll);
        let key = if is_event { format!("{name}:waiting") } else { name };
        let label = self.new_label(LabelKind::Point { point, waiting: true }, key);
        code.extend(self.jump(label, None));
        (code, label, id)
    }

    pub(super) fn unsupported(&mut self, node: &dyn quote::ToTokens) -> TokenStream {
        let tokens = node.to_token_stream();
        let call = scan::first_point_call(tokens.clone()).unwrap_or(tokens);
        self.errors.spanned(
            call,
            "`step!`/`wait!` cannot be used in this position. A point may stand as a statement \
             (`step!(..)?;`), as a `let` initializer (`let x = step!(..)?;`), on the right of an \
             assignment, as the value of a block, `if`/`match` arm, `loop` or `break`, as the operand \
             of `return`, or as the condition of `if`, the scrutinee of `match` or the iterable of \
             `for`, optionally followed by `?`, `.await`, field accesses and method calls. Bind the \
             point's result with `let` first and use the variable here",
        );
        q!(::core::unreachable!())
    }
}

// The code of each kind of point is built apart from the lowering that recurses through it: in
// a debug build of this crate, a function holding these `quote!`s has a large frame, and the
// lowering of a straight-line body goes one level deeper per point (rustc's stack overflowed at
// 400 points when the frames were one).

#[inline(never)]
fn step_tokens(facts: &TokenStream, policy: &TokenStream, body: &TokenStream, then: TokenStream) -> TokenStream {
    q! {
        // Step `name`: ask the host, run the body, report its outcome.
        let __policy = #policy;
        let __r = match ::durable_core::__private::step_begin(__host, #facts, &__policy).await {
            ::core::result::Result::Ok(::core::option::Option::None) => {
                let __out = ::durable_core::__private::step_output(#body);
                ::durable_core::__private::step_end(__host, #facts, &__policy, __out).await
            }
            ::core::result::Result::Ok(::core::option::Option::Some(__e)) => {
                ::core::result::Result::Ok(::core::result::Result::Err(__e))
            }
            ::core::result::Result::Err(__p) => ::core::result::Result::Err(__p),
        };
        let __r = match __r {
            ::core::result::Result::Ok(__r) => __r,
            ::core::result::Result::Err(__p) => {
                return ::durable_core::__private::exit(::durable_core::__private::pause(__p));
            }
        };
        #then
    }
}

#[inline(never)]
fn sleep_tokens(facts: &TokenStream, then: TokenStream) -> TokenStream {
    q! {
        if !::durable_core::__private::sleep_due(__host, #facts, __wake_at) {
            return ::durable_core::__private::exit(::durable_core::Exit::Suspended);
        }
        let __r = ();
        #then
    }
}

/// A wait that `poll` answers: its value (`Some`) goes on as `__r`, `None` suspends the run.
#[inline(never)]
fn waited_tokens(poll: TokenStream, then: TokenStream) -> TokenStream {
    q! {
        let __r = match #poll {
            ::core::option::Option::Some(__r) => __r,
            ::core::option::Option::None => return ::durable_core::__private::exit(::durable_core::Exit::Suspended),
        };
        #then
    }
}

#[inline(never)]
fn event_tokens(facts: &TokenStream, with_timeout: bool, then: TokenStream) -> TokenStream {
    let received = if with_timeout {
        q!(::core::option::Option::Some(__r) => __r,)
    } else {
        q!(::core::option::Option::Some(::core::result::Result::Ok(__r)) => __r,)
    };
    q! {
        let __r = match ::durable_core::__private::event_poll(__host, #facts, __deadline) {
            #received
            _ => return ::durable_core::__private::exit(::durable_core::Exit::Suspended),
        };
        #then
    }
}
