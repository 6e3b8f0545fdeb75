//! Attributes on a statement that holds a point: a `#[cfg]` decides whether the statement (and
//! so its point) exists at all, as it would without the macro.
//!
//! Input: `#[cfg(any())] let skipped = step!("skipped", f().await)?;`
//! Output: the statement is dropped (no point, no checkpoint); `#[cfg(all())]` keeps it without
//! the attribute; other attributes stay on the statement.

use syn::{Attribute, Expr, Meta, Stmt};

/// What a statement's `#[cfg]`s decide.
pub(super) enum Cfg {
    /// No `#[cfg]`, or every one holds: lower the statement (its `#[cfg]`s removed).
    Keep(Stmt),
    /// A `#[cfg]` does not hold: the statement does not exist.
    Drop,
    /// A `#[cfg]` the macro cannot decide (a feature, `test`, a target): the attribute.
    Unknown(Attribute),
}

/// Decides the `#[cfg]`s of a statement that holds a point.
pub(super) fn cfg(stmt: &Stmt) -> Cfg {
    let mut stmt = stmt.clone();
    let Some(attrs) = attrs_mut(&mut stmt) else { return Cfg::Keep(stmt) };
    let mut kept = Vec::new();
    for attr in attrs.drain(..) {
        if !attr.path().is_ident("cfg") {
            kept.push(attr);
            continue;
        }
        let decided = match &attr.meta {
            Meta::List(list) => list.parse_args::<Meta>().ok().and_then(|meta| eval(&meta)),
            _ => None,
        };
        match decided {
            Some(true) => {}
            Some(false) => return Cfg::Drop,
            None => return Cfg::Unknown(attr),
        }
    }
    *attrs = kept;
    Cfg::Keep(stmt)
}

/// `any(..)`, `all(..)` and `not(..)` of decidable predicates; `None` for anything else.
fn eval(meta: &Meta) -> Option<bool> {
    let Meta::List(list) = meta else { return None };
    let args = list.parse_args_with(syn::punctuated::Punctuated::<Meta, syn::Token![,]>::parse_terminated).ok()?;
    let values: Option<Vec<bool>> = args.iter().map(eval).collect();
    let values = values?;
    if list.path.is_ident("any") {
        Some(values.iter().any(|v| *v))
    } else if list.path.is_ident("all") {
        Some(values.iter().all(|v| *v))
    } else if list.path.is_ident("not") && values.len() == 1 {
        Some(!values[0])
    } else {
        None
    }
}

/// The outer attributes of a statement.
fn attrs_mut(stmt: &mut Stmt) -> Option<&mut Vec<Attribute>> {
    match stmt {
        Stmt::Local(local) => Some(&mut local.attrs),
        Stmt::Macro(mac) => Some(&mut mac.attrs),
        Stmt::Expr(expr, _) => expr_attrs_mut(expr),
        Stmt::Item(_) => None,
    }
}

fn expr_attrs_mut(expr: &mut Expr) -> Option<&mut Vec<Attribute>> {
    Some(match expr {
        Expr::Try(e) => &mut e.attrs,
        Expr::Macro(e) => &mut e.attrs,
        Expr::Assign(e) => &mut e.attrs,
        Expr::Binary(e) => &mut e.attrs,
        Expr::Call(e) => &mut e.attrs,
        Expr::MethodCall(e) => &mut e.attrs,
        Expr::Await(e) => &mut e.attrs,
        Expr::If(e) => &mut e.attrs,
        Expr::Match(e) => &mut e.attrs,
        Expr::Block(e) => &mut e.attrs,
        Expr::Loop(e) => &mut e.attrs,
        Expr::While(e) => &mut e.attrs,
        Expr::ForLoop(e) => &mut e.attrs,
        Expr::Paren(e) => &mut e.attrs,
        Expr::Field(e) => &mut e.attrs,
        Expr::Return(e) => &mut e.attrs,
        Expr::Unary(e) => &mut e.attrs,
        Expr::Tuple(e) => &mut e.attrs,
        _ => return None,
    })
}
