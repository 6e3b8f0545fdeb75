//! Read-only walks over the user's code: where the points are, which names a piece of code uses,
//! and which names a pattern binds.

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Expr, ExprAsync, ExprClosure, Ident, Item, Macro, Pat, Stmt};

use crate::errors::Errors;
use crate::parse::point_macro;

/// Whether `node` contains a `step!`/`wait!` that the macro lowers (one outside closures, async
/// blocks and nested items).
pub(crate) fn has_point<'a, N: VisitNode<'a> + ?Sized>(node: &'a N) -> bool {
    let mut finder = Finder { found: false };
    node.visit_with(&mut finder);
    finder.found
}

struct Finder {
    found: bool,
}

impl<'a> Visit<'a> for Finder {
    fn visit_macro(&mut self, mac: &'a Macro) {
        self.found |= point_macro(mac).is_some();
    }
    fn visit_expr_closure(&mut self, _: &'a ExprClosure) {}
    fn visit_expr_async(&mut self, _: &'a ExprAsync) {}
    fn visit_item(&mut self, _: &'a Item) {}
}

/// Reports every point the macro cannot lower because of where it stands: in a closure, an
/// async block, a nested item, or inside another macro's arguments.
pub(crate) fn misplaced_points(body: &syn::Block, errors: &mut Errors) {
    let mut checker = Misplaced { errors, context: None };
    checker.visit_block(body);
}

struct Misplaced<'e> {
    errors: &'e mut Errors,
    context: Option<&'static str>,
}

impl Misplaced<'_> {
    fn nested<T>(&mut self, context: &'static str, walk: impl FnOnce(&mut Self) -> T) -> T {
        let outer = self.context.replace(context);
        let result = walk(self);
        self.context = outer;
        result
    }
}

impl<'a> Visit<'a> for Misplaced<'_> {
    fn visit_macro(&mut self, mac: &'a Macro) {
        if let Some(which) = point_macro(mac) {
            if let Some(span) = point_in_tokens(mac.tokens.clone()) {
                self.errors.at(
                    span,
                    format!(
                        "a `step!`/`wait!` cannot stand inside the arguments of another `{which}!`: \
                         each point is its own checkpoint; run it first (`let x = step!(..)?;`) and \
                         pass `x`"
                    ),
                );
            }
            if let Some(context) = self.context {
                self.errors.spanned(
                    mac,
                    format!(
                        "`{which}!` cannot be used inside {context}: the workflow can only suspend in \
                         its own body; move the `{which}!` out and pass its result in"
                    ),
                );
            }
        } else if let Some(span) = point_in_tokens(mac.tokens.clone()) {
            self.errors.at(
                span,
                "a `step!`/`wait!` cannot stand inside another macro's arguments: bind its result \
                 with `let` first and pass the variable to the macro",
            );
        }
    }
    fn visit_expr_closure(&mut self, closure: &'a ExprClosure) {
        self.nested("a closure", |this| visit::visit_expr_closure(this, closure));
    }
    fn visit_expr_async(&mut self, block: &'a ExprAsync) {
        self.nested("an async block", |this| visit::visit_expr_async(this, block));
    }
    fn visit_item(&mut self, item: &'a Item) {
        self.nested("a nested function or item", |this| visit::visit_item(this, item));
    }
}

/// The span of a `step!`/`wait!` hidden in a token stream.
fn point_in_tokens(tokens: TokenStream) -> Option<proc_macro2::Span> {
    let mut previous: Option<Ident> = None;
    for tree in tokens {
        match tree {
            TokenTree::Punct(punct) if punct.as_char() == '!' => {
                if let Some(ident) = previous.take().filter(crate::parse::is_point_name) {
                    return Some(ident.span());
                }
            }
            TokenTree::Ident(ident) => previous = Some(ident),
            TokenTree::Group(group) => {
                if let Some(span) = point_in_tokens(group.stream()) {
                    return Some(span);
                }
                previous = None;
            }
            _ => previous = None,
        }
    }
    None
}

/// Every local `node` may read from outside itself: single-segment paths, the expressions of
/// macro arguments, and `{name}` captures in format strings. Names bound inside `node` (a
/// closure's parameters, a `let` in a block, a `match` arm's or a `for`'s pattern, an `if let`)
/// are not reported where they are in scope, so a local whose name only reappears as another
/// binding is not kept alive. Where a macro's arguments do not parse as expressions, every
/// identifier in them counts (safe: it can only keep a local longer).
pub(crate) fn uses<'a, N: VisitNode<'a> + ?Sized>(node: &'a N, out: &mut Vec<Ident>) {
    let mut collector = Uses { out, bound: vec![Vec::new()] };
    node.visit_with(&mut collector);
}

struct Uses<'o> {
    out: &'o mut Vec<Ident>,
    /// Names bound inside the node, innermost scope last.
    bound: Vec<Vec<String>>,
}

impl Uses<'_> {
    fn read(&mut self, ident: &Ident) {
        let name = ident.to_string();
        if !self.bound.iter().flatten().any(|bound| *bound == name) {
            self.out.push(ident.clone());
        }
    }

    fn bind(&mut self, pat: &Pat) {
        let names = bindings(pat).into_iter().map(|(ident, _)| ident.to_string());
        self.bound.last_mut().expect("a scope").extend(names);
    }

    fn scoped(&mut self, walk: impl FnOnce(&mut Self)) {
        self.bound.push(Vec::new());
        walk(self);
        self.bound.pop();
    }
}

impl<'a> Visit<'a> for Uses<'_> {
    fn visit_expr_path(&mut self, path: &'a syn::ExprPath) {
        if path.qself.is_none()
            && let Some(ident) = path.path.get_ident()
        {
            self.read(ident);
        }
        visit::visit_expr_path(self, path);
    }
    fn visit_macro(&mut self, mac: &'a Macro) {
        match mac.parse_body_with(syn::punctuated::Punctuated::<Expr, syn::Token![,]>::parse_terminated) {
            Ok(args) => {
                for arg in &args {
                    if let Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(text), .. }) = arg {
                        let mut captured = Vec::new();
                        format_captures(&text.value(), text.span(), &mut captured);
                        captured.iter().for_each(|ident| self.read(ident));
                    } else {
                        self.visit_expr(arg);
                    }
                }
            }
            Err(_) => {
                let mut idents = Vec::new();
                token_uses(mac.tokens.clone(), &mut idents);
                idents.iter().for_each(|ident| self.read(ident));
            }
        }
    }
    fn visit_block(&mut self, block: &'a syn::Block) {
        self.scoped(|this| visit::visit_block(this, block));
    }
    fn visit_local(&mut self, local: &'a syn::Local) {
        if let Some(init) = &local.init {
            self.visit_expr(&init.expr);
            if let Some((_, diverge)) = &init.diverge {
                self.visit_expr(diverge);
            }
        }
        self.bind(&local.pat);
    }
    fn visit_expr_closure(&mut self, closure: &'a ExprClosure) {
        self.scoped(|this| {
            for input in &closure.inputs {
                this.bind(input);
            }
            this.visit_expr(&closure.body);
        });
    }
    fn visit_arm(&mut self, arm: &'a syn::Arm) {
        self.scoped(|this| {
            this.bind(&arm.pat);
            if let Some((_, guard)) = &arm.guard {
                this.visit_expr(guard);
            }
            this.visit_expr(&arm.body);
        });
    }
    fn visit_expr_for_loop(&mut self, for_loop: &'a syn::ExprForLoop) {
        self.visit_expr(&for_loop.expr);
        self.scoped(|this| {
            this.bind(&for_loop.pat);
            this.visit_block(&for_loop.body);
        });
    }
    fn visit_expr_if(&mut self, expr_if: &'a syn::ExprIf) {
        self.scoped(|this| {
            this.visit_expr(&expr_if.cond);
            for (ident, _) in condition_bindings(&expr_if.cond) {
                this.bound.last_mut().expect("a scope").push(ident.to_string());
            }
            this.visit_block(&expr_if.then_branch);
        });
        if let Some((_, otherwise)) = &expr_if.else_branch {
            self.visit_expr(otherwise);
        }
    }
    fn visit_expr_while(&mut self, expr_while: &'a syn::ExprWhile) {
        self.scoped(|this| {
            this.visit_expr(&expr_while.cond);
            for (ident, _) in condition_bindings(&expr_while.cond) {
                this.bound.last_mut().expect("a scope").push(ident.to_string());
            }
            this.visit_block(&expr_while.body);
        });
    }
    fn visit_item(&mut self, _: &'a Item) {}
}

/// Identifiers and format-string captures in a macro's tokens.
pub(crate) fn token_uses(tokens: TokenStream, out: &mut Vec<Ident>) {
    for tree in tokens {
        match tree {
            TokenTree::Ident(ident) => out.push(ident),
            TokenTree::Group(group) => token_uses(group.stream(), out),
            TokenTree::Literal(literal) => {
                if let Ok(text) = syn::parse2::<syn::LitStr>(TokenTree::Literal(literal.clone()).into()) {
                    format_captures(&text.value(), literal.span(), out);
                }
            }
            TokenTree::Punct(_) => {}
        }
    }
}

/// `{name}` and `{name:fmt}` in a format string.
fn format_captures(text: &str, span: proc_macro2::Span, out: &mut Vec<Ident>) {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if rest.starts_with('{') {
            rest = &rest[1..];
            continue;
        }
        let end = rest.find(['}', ':']).unwrap_or(rest.len());
        let name = rest[..end].trim();
        let is_ident = name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        if is_ident {
            out.push(Ident::new(name, span));
        }
    }
}

/// The names a pattern binds, with whether each is `mut`. Identifiers that start with an
/// uppercase letter are taken for constants and unit variants, as rustc's naming lints assume.
pub(crate) fn bindings(pat: &Pat) -> Vec<(Ident, bool)> {
    let mut collector = Bindings(Vec::new());
    collector.visit_pat(pat);
    collector.0
}

/// The names a `let` pattern binds: as [`bindings`], except that a bare identifier (`let N = ..`,
/// `let N: u64 = ..`) is a binding whatever its case (a constant there would be a refutable
/// pattern, which `let` refuses).
pub(crate) fn let_bindings(pat: &Pat) -> Vec<(Ident, bool)> {
    match pat {
        Pat::Ident(ident) if ident.subpat.is_none() => vec![(ident.ident.clone(), ident.mutability.is_some())],
        Pat::Type(typed) => let_bindings(&typed.pat),
        other => bindings(other),
    }
}

struct Bindings(Vec<(Ident, bool)>);

impl<'a> Visit<'a> for Bindings {
    fn visit_pat_ident(&mut self, pat: &'a syn::PatIdent) {
        let name = pat.ident.to_string();
        // `ref N`, `mut N` and `N @ ..` bind whatever the case.
        let surely = pat.by_ref.is_some() || pat.mutability.is_some() || pat.subpat.is_some();
        if surely || !name.starts_with(|c: char| c.is_uppercase()) {
            self.0.push((pat.ident.clone(), pat.mutability.is_some()));
        }
        visit::visit_pat_ident(self, pat);
    }
    fn visit_expr(&mut self, _: &'a Expr) {}
}

/// The `let` patterns of an `if`/`while` condition (`if let Some(x) = .. && let ..`).
pub(crate) fn condition_bindings(cond: &Expr) -> Vec<(Ident, bool)> {
    let mut out = Vec::new();
    collect_lets(cond, &mut out);
    out
}

fn collect_lets(expr: &Expr, out: &mut Vec<(Ident, bool)>) {
    match expr {
        Expr::Let(expr_let) => out.extend(bindings(&expr_let.pat)),
        Expr::Binary(binary) => {
            collect_lets(&binary.left, out);
            collect_lets(&binary.right, out);
        }
        Expr::Paren(paren) => collect_lets(&paren.expr, out),
        _ => {}
    }
}

/// Whether a statement always leaves its block (`return`, `break`, `continue`, a panic).
pub(crate) fn diverges(stmt: &Stmt) -> bool {
    let expr = match stmt {
        Stmt::Expr(expr, _) => expr,
        Stmt::Macro(mac) => return is_panic(&mac.mac),
        _ => return false,
    };
    match expr {
        Expr::Return(_) | Expr::Break(_) | Expr::Continue(_) => true,
        Expr::Macro(mac) => is_panic(&mac.mac),
        _ => false,
    }
}

fn is_panic(mac: &Macro) -> bool {
    mac.path
        .segments
        .last()
        .is_some_and(|s| matches!(s.ident.to_string().as_str(), "panic" | "unreachable" | "todo" | "unimplemented"))
}

/// Anything `has_point` and `uses` can walk.
pub(crate) trait VisitNode<'a> {
    fn visit_with<V: Visit<'a>>(&'a self, visitor: &mut V);
}

impl<'a> VisitNode<'a> for Expr {
    fn visit_with<V: Visit<'a>>(&'a self, visitor: &mut V) {
        visitor.visit_expr(self);
    }
}

impl<'a> VisitNode<'a> for Stmt {
    fn visit_with<V: Visit<'a>>(&'a self, visitor: &mut V) {
        visitor.visit_stmt(self);
    }
}

impl<'a> VisitNode<'a> for syn::Block {
    fn visit_with<V: Visit<'a>>(&'a self, visitor: &mut V) {
        visitor.visit_block(self);
    }
}

impl<'a> VisitNode<'a> for Pat {
    fn visit_with<V: Visit<'a>>(&'a self, visitor: &mut V) {
        visitor.visit_pat(self);
    }
}

impl<'a> VisitNode<'a> for [Stmt] {
    fn visit_with<V: Visit<'a>>(&'a self, visitor: &mut V) {
        for stmt in self {
            visitor.visit_stmt(stmt);
        }
    }
}

/// The first `step!(..)`/`wait!(..)` call in some tokens (name, `!` and arguments), for a
/// span that covers the whole call.
pub(crate) fn first_point_call(tokens: TokenStream) -> Option<TokenStream> {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (index, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Ident(ident) if crate::parse::is_point_name(ident) => {
                if let (Some(TokenTree::Punct(bang)), Some(TokenTree::Group(args))) =
                    (trees.get(index + 1), trees.get(index + 2))
                    && bang.as_char() == '!'
                {
                    return Some(
                        [tree.clone(), TokenTree::Punct(bang.clone()), TokenTree::Group(args.clone())]
                            .into_iter()
                            .collect(),
                    );
                }
            }
            TokenTree::Group(group) => {
                if let Some(call) = first_point_call(group.stream()) {
                    return Some(call);
                }
            }
            _ => {}
        }
    }
    None
}

/// What an initializer visibly borrows from: a string literal, a reference, or a method whose
/// result borrows its receiver.
pub(crate) fn borrows(init: &Expr) -> Option<String> {
    const BORROWING: &[&str] = &[
        "as_str", "as_ref", "as_slice", "as_bytes", "as_deref", "as_path", "iter", "chars", "lines", "split", "borrow",
    ];
    match init {
        Expr::Lit(lit) if matches!(lit.lit, syn::Lit::Str(_) | syn::Lit::ByteStr(_)) => {
            Some("borrows a string literal (its type is `&str`)".to_owned())
        }
        Expr::Reference(_) => Some("holds a reference (`&..`)".to_owned()),
        Expr::MethodCall(call) if BORROWING.iter().any(|m| call.method == m) => Some(format!(
            "holds what `.{}()` returns, which borrows from `{}`",
            call.method,
            quote::ToTokens::to_token_stream(&call.receiver).to_string().replace(' ', "")
        )),
        Expr::Paren(paren) => borrows(&paren.expr),
        _ => None,
    }
}
