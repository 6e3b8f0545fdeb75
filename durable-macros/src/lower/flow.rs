//! Statements and values: sequences, `if`, `match`, blocks and loops, lowered into arms.

use proc_macro2::TokenStream;
use syn::visit_mut::VisitMut;
use syn::{Expr, Ident, Lifetime, Local, Pat, Stmt};

use super::attrs;
use super::rewrite::{Rewriter, is_compound, normalize};
use super::{Cont, Form, LabelId, LabelKind, LoopCtx, Lowerer};
use crate::scan::{self, has_point};

impl Lowerer {
    // ---------------------------------------------------------------- statements

    pub(super) fn stmts(&mut self, stmts: &[Stmt], k: Cont) -> TokenStream {
        let mut out = TokenStream::new();
        for (index, stmt) in stmts.iter().enumerate() {
            let rest = &stmts[index + 1..];
            let stmt = normalize(stmt);
            if let Stmt::Item(item) = &stmt {
                // Items see no locals: hoisted before the machine, they are visible in every arm,
                // as they were in the whole block.
                self.items.push(item.clone());
                if rest.is_empty() {
                    out.extend(self.apply(k, None));
                }
                continue;
            }
            if let Stmt::Expr(expr, None) = &stmt
                && rest.is_empty()
            {
                out.extend(self.value(expr, k));
                return out;
            }
            let stmt = if has_point(&stmt) {
                match attrs::cfg(&stmt) {
                    attrs::Cfg::Keep(stmt) => stmt,
                    attrs::Cfg::Drop => {
                        if rest.is_empty() {
                            out.extend(self.apply(k, None));
                        }
                        continue;
                    }
                    attrs::Cfg::Unknown(attr) => {
                        self.errors.spanned(
                            attr,
                            "`#[durable]` cannot decide this `#[cfg]`, and the statement holds a `step!`/`wait!` \
                             that must exist or not: write `if cfg!(..) { .. }` around the statement \
                             instead",
                        );
                        stmt
                    }
                }
            } else {
                stmt
            };
            if !has_point(&stmt) {
                out.extend(self.plain_stmt(&stmt));
                if rest.is_empty() && scan::diverges(&stmt) {
                    return out;
                }
                continue;
            }
            let code = match &stmt {
                Stmt::Local(local) => self.let_stmt(local, rest, k),
                Stmt::Expr(expr, _) => self.expr_stmt(expr, rest, k),
                _ => self.unsupported(&stmt),
            };
            out.extend(code);
            return out;
        }
        out.extend(self.apply(k, None));
        out
    }

    pub(super) fn plain_stmt(&mut self, stmt: &Stmt) -> TokenStream {
        let mut idents = Vec::new();
        scan::uses(stmt, &mut idents);
        self.note_uses(idents);
        self.note_assignment(stmt);
        let mut stmt = stmt.clone();
        Rewriter { lowerer: self, plain_loops: Vec::new() }.visit_stmt_mut(&mut stmt);
        if let Stmt::Local(local) = &stmt {
            let borrows = local.init.as_ref().and_then(|init| scan::borrows(&init.expr));
            let single = matches!(&local.pat, Pat::Ident(_) | Pat::Type(_));
            let deferred = match (&local.init, &local.pat) {
                (None, Pat::Type(typed)) => {
                    let ty = &typed.ty;
                    Some(q!(: #ty))
                }
                (None, _) => Some(TokenStream::new()),
                _ => None,
            };
            let mut declared = None;
            for (ident, mutable) in scan::let_bindings(&local.pat) {
                let id = self.bind(ident, mutable);
                if single {
                    self.bindings[id].borrows.clone_from(&borrows);
                    self.bindings[id].unassigned = deferred.is_some();
                    self.bindings[id].deferred.clone_from(&deferred);
                    declared = Some(id);
                }
            }
            if let (Some(id), Some(_)) = (declared, &deferred) {
                // Declared here only if this arm uses it; an arm after a point that assigns it
                // declares it again (see `machine.rs`).
                self.bindings[id].declaration = Some(q!(#stmt));
                let placeholder = super::declaration_placeholder(id);
                return q!(#placeholder);
            }
        }
        q!(#stmt)
    }

    /// `x = ..;` of a local declared without a value: stored from here on.
    fn note_assignment(&mut self, stmt: &Stmt) {
        let Stmt::Expr(Expr::Assign(assign), _) = stmt else { return };
        let Expr::Path(path) = &*assign.left else { return };
        let Some(ident) = path.path.get_ident() else { return };
        if let Some(id) = self.resolve(ident) {
            self.bindings[id].unassigned = false;
        }
    }

    pub(super) fn plain_expr(&mut self, expr: &Expr) -> TokenStream {
        self.note_expr(expr);
        let mut expr = expr.clone();
        Rewriter { lowerer: self, plain_loops: Vec::new() }.visit_expr_mut(&mut expr);
        q!(#expr)
    }

    pub(super) fn let_stmt<'a>(&mut self, local: &'a Local, rest: &'a [Stmt], k: Cont) -> TokenStream {
        let Some(init) = &local.init else { return self.unsupported(local) };
        if let Some((_, diverge)) = &init.diverge
            && has_point(&**diverge)
        {
            return self.unsupported(&**diverge);
        }
        if is_compound(&init.expr) && init.diverge.is_none() {
            let join = self.join(true, " the value of a `let` whose initializer suspends");
            let code = self.value(&init.expr, Cont::Jump(join));
            let pat = local.pat.clone();
            self.arm_for(join, |this| {
                this.scope.push(Vec::new());
                let value = this.labels[join].value.expect("a join with a value");
                this.arms[this.arm].uses.insert(value);
                this.scope.last_mut().expect("frame").push(value);
                for (ident, mutable) in scan::let_bindings(&pat) {
                    this.bind(ident, mutable);
                }
                let rest = this.stmts(rest, k);
                this.scope.pop();
                q!(let #pat = __v; #rest)
            });
            return code;
        }
        self.point_in(&init.expr, Form::Let(Box::new(local.clone())), rest, k)
    }

    pub(super) fn expr_stmt<'a>(&mut self, expr: &'a Expr, rest: &'a [Stmt], k: Cont) -> TokenStream {
        if matches!(expr, Expr::Return(_) | Expr::Break(_) | Expr::Continue(_)) {
            return self.value(expr, k);
        }
        if let Some(right) = assigned_compound(expr) {
            return self.assign_compound(expr, right, rest, k);
        }
        if is_compound(expr) {
            let join = self.join(false, " the statement after a block that suspends");
            let code = self.value(expr, Cont::Jump(join));
            self.arm_for(join, |this| this.stmts(rest, k));
            return code;
        }
        self.point_in(expr, Form::Stmt, rest, k)
    }

    /// `place = if .. { step!(..)? } else { .. };` (or `+=`, ..): the right side is lowered as a
    /// value into a join, whose arm assigns it.
    fn assign_compound(&mut self, expr: &Expr, right: &Expr, rest: &[Stmt], k: Cont) -> TokenStream {
        let join = self.join(true, "the value of an assignment whose right side suspends");
        let code = self.value(right, Cont::Jump(join));
        let mut assign = expr.clone();
        self.arm_for(join, |this| {
            this.scope.push(Vec::new());
            let value = this.labels[join].value.expect("a join with a value");
            this.arms[this.arm].uses.insert(value);
            this.scope.last_mut().expect("frame").push(value);
            let path: Expr = Expr::Path(syn::ExprPath {
                attrs: Vec::new(),
                qself: None,
                path: this.bindings[value].ident.clone().into(),
            });
            match &mut assign {
                Expr::Assign(a) => *a.right = path,
                Expr::Binary(b) => *b.right = path,
                _ => unreachable!("an assignment"),
            }
            let stmts = [&[Stmt::Expr(assign, Some(Default::default()))], rest].concat();
            let code = this.stmts(&stmts, k);
            this.scope.pop();
            code
        });
        code
    }

    // ---------------------------------------------------------------- values

    pub(super) fn value(&mut self, expr: &Expr, k: Cont) -> TokenStream {
        if !has_point(expr) {
            let value = self.plain_expr(expr);
            return self.apply(k, Some(value));
        }
        match expr {
            Expr::Paren(paren) => self.value(&paren.expr, k),
            Expr::If(expr_if) if !has_point(&*expr_if.cond) => self.lower_if(expr_if, k),
            Expr::Match(expr_match) if !has_point(&*expr_match.expr) => self.lower_match(expr_match, k),
            Expr::Block(block) if block.label.is_none() => self.block(Vec::new(), &block.block, k),
            Expr::Loop(_) | Expr::While(_) => self.lower_loop(expr, k),
            Expr::ForLoop(for_loop) if !has_point(&*for_loop.expr) => self.lower_loop(expr, k),
            Expr::Return(ret) => match &ret.expr {
                Some(value) => self.value(value, Cont::Return),
                None => self.apply(Cont::Return, None),
            },
            Expr::Break(brk) => match self.loop_target(brk.label.as_ref()) {
                Some((_, after)) => match &brk.expr {
                    Some(value) => self.value(value, Cont::Jump(after)),
                    None => self.apply(Cont::Jump(after), None),
                },
                None => self.unsupported(expr),
            },
            _ => self.point_in(expr, Form::Value(k), &[], k),
        }
    }

    pub(super) fn block(&mut self, binds: Vec<(Ident, bool)>, block: &syn::Block, k: Cont) -> TokenStream {
        self.scope.push(Vec::new());
        for (ident, mutable) in binds {
            self.bind(ident, mutable);
        }
        let code = self.stmts(&block.stmts, k);
        self.scope.pop();
        q!({ #code })
    }

    pub(super) fn lower_if(&mut self, expr_if: &syn::ExprIf, k: Cont) -> TokenStream {
        let cond = self.plain_expr(&expr_if.cond);
        let binds = scan::condition_bindings(&expr_if.cond);
        let then = self.block(binds, &expr_if.then_branch, k);
        let otherwise = match &expr_if.else_branch {
            None => {
                let code = self.apply(k, None);
                q!({ #code })
            }
            Some((_, otherwise)) => match &**otherwise {
                Expr::Block(block) => self.block(Vec::new(), &block.block, k),
                other => {
                    let code = self.value(other, k);
                    q!({ #code })
                }
            },
        };
        q!(if #cond #then else #otherwise)
    }

    pub(super) fn lower_match(&mut self, expr_match: &syn::ExprMatch, k: Cont) -> TokenStream {
        let scrutinee = self.plain_expr(&expr_match.expr);
        let mut arms = TokenStream::new();
        for arm in &expr_match.arms {
            self.scope.push(Vec::new());
            for (ident, mutable) in scan::bindings(&arm.pat) {
                self.bind(ident, mutable);
            }
            let guard = match &arm.guard {
                Some((_, guard)) if has_point(&**guard) => self.unsupported(&**guard),
                Some((_, guard)) => {
                    let guard = self.plain_expr(guard);
                    q!(if #guard)
                }
                None => TokenStream::new(),
            };
            let body = self.value(&arm.body, k);
            self.scope.pop();
            let pat = &arm.pat;
            arms.extend(q!(#pat #guard => { #body }));
        }
        q!(match #scrutinee { #arms })
    }

    pub(super) fn lower_loop(&mut self, expr: &Expr, k: Cont) -> TokenStream {
        if let Expr::While(w) = expr
            && has_point(&*w.cond)
        {
            // `while <cond with a point> { .. }` is `loop { if <cond> { .. } else { break } }`.
            let (cond, body, label) = (&w.cond, &w.body, &w.label);
            let desugared: Expr = syn::parse_quote! { #label loop { if #cond #body else { break } } };
            return self.lower_loop(&desugared, k);
        }
        let (label, body) = match expr {
            Expr::Loop(l) => (l.label.as_ref().map(|l| l.name.clone()), &l.body),
            Expr::While(w) => (w.label.as_ref().map(|l| l.name.clone()), &w.body),
            Expr::ForLoop(f) => (f.label.as_ref().map(|l| l.name.clone()), &f.body),
            _ => return self.unsupported(expr),
        };
        self.loop_count += 1;
        let n = self.loop_count;
        let carries = matches!(expr, Expr::Loop(_)) && self.wants_value(k);
        let after = self.join(carries, " after a loop");
        self.labels[after].kind = LabelKind::After;
        let mut code = TokenStream::new();
        self.scope.push(Vec::new());
        let iter = if let Expr::ForLoop(for_loop) = expr {
            let iterable = self.plain_expr(&for_loop.expr);
            let name = format!("__iter{n}");
            let id = self.bind_hidden(&name, true, None);
            self.bindings[id].at = Some(syn::spanned::Spanned::span(&for_loop.expr));
            if let Some(borrows) = scan::borrows(&for_loop.expr) {
                self.errors.spanned(
                    &for_loop.expr,
                    format!(
                        "this iterable {borrows}: a `for` loop that holds a `step!`/`wait!` stores the \
                         items it has left with the workflow's state, so they must be owned: iterate \
                         over the collection itself (`for x in v`), a clone (`v.clone()`) or owned \
                         items (`v.iter().cloned()`)"
                    ),
                );
            }
            let ident = &self.bindings[id].ident;
            // `a..b` and `a..` are stored as the range left (one or two numbers, taken lazily);
            // anything else as the items left.
            let keep = match range_kind(&for_loop.expr) {
                Some(true) => q!(range),
                Some(false) => q!(range_from),
                None => q!(remaining),
            };
            code.extend(q!(let mut #ident = ::durable_core::__private::#keep(#iterable);));
            Some(id)
        } else {
            None
        };
        let head = self.new_label(LabelKind::Head, "the head of a loop".into());
        code.extend(self.jump(head, None));
        self.arm_for(head, |this| {
            this.loops.push(LoopCtx { label, head, after });
            let code = match expr {
                Expr::While(w) => {
                    let cond = this.plain_expr(&w.cond);
                    let body = this.block(scan::condition_bindings(&w.cond), body, Cont::Jump(head));
                    let exit = this.jump(after, None);
                    q!(if #cond #body else { #exit })
                }
                Expr::ForLoop(f) => {
                    let id = iter.expect("a for loop's iterator");
                    this.arms[this.arm].uses.insert(id);
                    let ident = this.bindings[id].ident.clone();
                    let pat = &f.pat;
                    let body = this.block(scan::bindings(pat), body, Cont::Jump(head));
                    let exit = this.jump(after, None);
                    q!(if let ::core::option::Option::Some(#pat) = ::durable_core::__private::Remaining::take_next(&mut #ident) #body else { #exit })
                }
                _ => this.block(Vec::new(), body, Cont::Jump(head)),
            };
            this.loops.pop();
            code
        });
        self.scope.pop();
        self.arm_for(after, |this| {
            let value = this.labels[after].value.map(|id| {
                this.arms[this.arm].uses.insert(id);
                q!(__v)
            });
            if let Some(id) = this.labels[after].value {
                this.scope.push(vec![id]);
            }
            let code = this.apply(k, value);
            if this.labels[after].value.is_some() {
                this.scope.pop();
            }
            code
        });
        code
    }

    pub(super) fn loop_target(&self, label: Option<&Lifetime>) -> Option<(LabelId, LabelId)> {
        let ctx = match label {
            Some(label) => self.loops.iter().rev().find(|ctx| ctx.label.as_ref() == Some(label))?,
            None => self.loops.last()?,
        };
        Some((ctx.head, ctx.after))
    }
}

/// `Some(true)` for `a..b` with both ends, `Some(false)` for `a..`: ranges whose stored form
/// (`start`, `end`) says exactly what is left. `a..=b` is not one: serde does not store whether
/// it is exhausted.
fn range_kind(expr: &Expr) -> Option<bool> {
    match expr {
        Expr::Paren(paren) => range_kind(&paren.expr),
        Expr::Range(range) if range.start.is_some() && matches!(range.limits, syn::RangeLimits::HalfOpen(_)) => {
            Some(range.end.is_some())
        }
        _ => None,
    }
}

/// The right side of `place = e` or `place op= e` when `e` is a block, `if`, `match` or loop
/// that suspends and the place has no effects.
fn assigned_compound(expr: &Expr) -> Option<&Expr> {
    let (left, right) = match expr {
        Expr::Assign(a) => (&*a.left, &*a.right),
        Expr::Binary(b) if is_assign_op(&b.op) => (&*b.left, &*b.right),
        _ => return None,
    };
    (is_compound(right) && has_point(right) && !has_point(left)).then_some(right)
}

fn is_assign_op(op: &syn::BinOp) -> bool {
    use syn::BinOp::*;
    matches!(
        op,
        AddAssign(_)
            | SubAssign(_)
            | MulAssign(_)
            | DivAssign(_)
            | RemAssign(_)
            | BitXorAssign(_)
            | BitAndAssign(_)
            | BitOrAssign(_)
            | ShlAssign(_)
            | ShrAssign(_)
    )
}
