//! Expression helpers: where a point may stand in an expression, and how plain code is rewritten
//! for its place in an arm.

use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Lifetime, Macro, Stmt};

use super::{Cont, Lowerer};
use crate::parse::point_macro;
use crate::scan::has_point;

/// `step!(..);` parses as a macro statement: make it an expression statement.
pub(super) fn normalize(stmt: &Stmt) -> Stmt {
    match stmt {
        Stmt::Macro(mac) if point_macro(&mac.mac).is_some() => {
            Stmt::Expr(Expr::Macro(syn::ExprMacro { attrs: mac.attrs.clone(), mac: mac.mac.clone() }), mac.semi_token)
        }
        other => other.clone(),
    }
}

pub(super) fn is_compound(expr: &Expr) -> bool {
    match expr {
        Expr::If(e) => !has_point(&*e.cond),
        Expr::Match(e) => !has_point(&*e.expr),
        Expr::Block(e) => e.label.is_none(),
        Expr::Loop(_) | Expr::While(_) => true,
        Expr::ForLoop(e) => !has_point(&*e.expr),
        Expr::Paren(e) => is_compound(&e.expr),
        _ => false,
    }
}

/// Replaces the point that `expr` evaluates first with `__r` and returns it, if the point is
/// evaluated before anything else that could have an effect.
pub(super) fn take_first_point(expr: &mut Expr) -> Option<Macro> {
    match expr {
        Expr::Macro(mac) if point_macro(&mac.mac).is_some() => {
            let mac = mac.mac.clone();
            *expr = Expr::Verbatim(q!(__r));
            Some(mac)
        }
        Expr::Try(e) => take_first_point(&mut e.expr),
        Expr::MethodCall(e) => {
            if has_point(&*e.receiver) {
                take_first_point(&mut e.receiver)
            } else if is_pure(&e.receiver) {
                first_of(e.args.iter_mut())
            } else {
                None
            }
        }
        Expr::Field(e) => take_first_point(&mut e.base),
        Expr::Paren(e) => take_first_point(&mut e.expr),
        Expr::Await(e) => take_first_point(&mut e.base),
        Expr::Cast(e) => take_first_point(&mut e.expr),
        Expr::Unary(e) => take_first_point(&mut e.expr),
        Expr::Reference(e) => take_first_point(&mut e.expr),
        Expr::Index(e) => take_first_point(&mut e.expr),
        Expr::If(e) => take_first_point(&mut e.cond),
        Expr::Match(e) => take_first_point(&mut e.expr),
        Expr::ForLoop(e) => take_first_point(&mut e.expr),
        Expr::Let(e) => take_first_point(&mut e.expr),
        Expr::Binary(e) => {
            if has_point(&*e.left) {
                take_first_point(&mut e.left)
            } else if is_pure(&e.left) && !matches!(e.op, syn::BinOp::And(_) | syn::BinOp::Or(_)) {
                take_first_point(&mut e.right)
            } else {
                None
            }
        }
        Expr::Assign(e) if is_pure(&e.left) => take_first_point(&mut e.right),
        Expr::Call(e) if is_pure(&e.func) => first_of(e.args.iter_mut()),
        Expr::Tuple(e) => first_of(e.elems.iter_mut()),
        Expr::Array(e) => first_of(e.elems.iter_mut()),
        Expr::Struct(e) if e.rest.is_none() => first_of(e.fields.iter_mut().map(|f| &mut f.expr)),
        _ => None,
    }
}

/// Replaces the `__r` that [`take_first_point`] left in `expr` with `ident`, and `__r?` with
/// `ident` too; returns whether it was `__r?` (the caller then applies the `?`).
pub(super) fn name_value(expr: &mut Expr, ident: &syn::Ident) -> bool {
    struct Name<'a> {
        ident: &'a syn::Ident,
        tried: bool,
    }
    fn is_r(expr: &Expr) -> bool {
        matches!(expr, Expr::Verbatim(tokens) if tokens.to_string() == "__r")
    }
    impl VisitMut for Name<'_> {
        fn visit_expr_mut(&mut self, expr: &mut Expr) {
            let tried = matches!(expr, Expr::Try(e) if is_r(&e.expr));
            if tried || is_r(expr) {
                self.tried |= tried;
                let path = self.ident.clone().into();
                *expr = Expr::Path(syn::ExprPath { attrs: Vec::new(), qself: None, path });
            } else {
                visit_mut::visit_expr_mut(self, expr);
            }
        }
    }
    let mut name = Name { ident, tried: false };
    name.visit_expr_mut(expr);
    name.tried
}

/// The first point among expressions evaluated in order, if all before it are pure.
fn first_of<'a>(exprs: impl Iterator<Item = &'a mut Expr>) -> Option<Macro> {
    for expr in exprs {
        if has_point(expr) {
            return take_first_point(expr);
        }
        if !is_pure(expr) {
            return None;
        }
    }
    None
}

/// An expression without effects: a path, a literal, a field of one, a reference to one, an
/// element of one (`v[0]`).
fn is_pure(expr: &Expr) -> bool {
    match expr {
        Expr::Path(_) | Expr::Lit(_) => true,
        Expr::Field(e) => is_pure(&e.base),
        Expr::Index(e) => is_pure(&e.expr) && is_pure(&e.index),
        Expr::Reference(e) => is_pure(&e.expr),
        Expr::Paren(e) => is_pure(&e.expr),
        _ => false,
    }
}

/// Rewrites plain code for its new home in an arm: `return e` returns the run's exit, and
/// `break`/`continue` of a lowered loop become jumps.
pub(super) struct Rewriter<'l> {
    pub(super) lowerer: &'l mut Lowerer,
    pub(super) plain_loops: Vec<Option<Lifetime>>,
}

impl Rewriter<'_> {
    fn targets_plain(&self, label: Option<&Lifetime>) -> bool {
        match label {
            Some(label) => self.plain_loops.iter().any(|l| l.as_ref() == Some(label)),
            None => !self.plain_loops.is_empty(),
        }
    }

    fn in_plain_loop(&mut self, label: Option<Lifetime>, expr: &mut Expr) {
        self.plain_loops.push(label);
        visit_mut::visit_expr_mut(self, expr);
        self.plain_loops.pop();
    }
}

impl VisitMut for Rewriter<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Loop(e) => {
                let label = e.label.as_ref().map(|l| l.name.clone());
                self.in_plain_loop(label, expr);
            }
            Expr::While(e) => {
                let label = e.label.as_ref().map(|l| l.name.clone());
                self.in_plain_loop(label, expr);
            }
            Expr::ForLoop(e) => {
                let label = e.label.as_ref().map(|l| l.name.clone());
                self.in_plain_loop(label, expr);
            }
            Expr::Return(ret) => {
                if let Some(value) = &mut ret.expr {
                    self.visit_expr_mut(value);
                }
                let value = ret.expr.as_ref().map_or_else(|| q!(()), |value| q!(#value));
                let k = Cont::Return;
                *expr = Expr::Verbatim(self.lowerer.apply(k, Some(value)));
                *expr = Expr::Verbatim(q!({ #expr }));
            }
            Expr::Break(brk) if !self.targets_plain(brk.label.as_ref()) => {
                if let Some(value) = &mut brk.expr {
                    self.visit_expr_mut(value);
                }
                let Some((_, after)) = self.lowerer.loop_target(brk.label.as_ref()) else { return };
                let value = brk.expr.as_ref().map(|value| q!(#value));
                let jump = self.lowerer.apply(Cont::Jump(after), value);
                *expr = Expr::Verbatim(q!({ #jump }));
            }
            Expr::Continue(cont) if !self.targets_plain(cont.label.as_ref()) => {
                let Some((head, _)) = self.lowerer.loop_target(cont.label.as_ref()) else { return };
                let jump = self.lowerer.jump(head, None);
                *expr = Expr::Verbatim(q!({ #jump }));
            }
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}
