//! What the macro tells the runtime about a workflow: its points with their source locations
//! and stored locals, the edges between them, and the layout fingerprint.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ItemFn;
use syn::spanned::Spanned;

use crate::lower::{LabelId, LabelKind, Lowered};
use crate::parse::{Args, Kind, Signature};

pub(crate) fn facts(workflow: &str, args: &Args, item: &ItemFn, sig: &Signature, lowered: &Lowered) -> TokenStream {
    let line = item.sig.fn_token.span().start().line as u32;
    let params: Vec<String> = sig.params.iter().map(|p| p.pat.to_token_stream().to_string()).collect();
    let keys: Vec<String> = args.keys.iter().map(ToString::to_string).collect();
    let points = lowered.points.iter().enumerate().map(|(index, point)| {
        let name = point.call.name.value();
        let kind = match point.call.kind {
            Kind::Step => q!(Step),
            Kind::Sleep => q!(Sleep),
            Kind::Event => q!(Event),
            Kind::Child => q!(Child),
            Kind::Spawn => q!(Spawn),
            Kind::Callback => q!(Callback),
            Kind::Map => q!(Map),
            Kind::Poll => q!(Poll),
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
pub(crate) fn fingerprint(lowered: &Lowered) -> String {
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
