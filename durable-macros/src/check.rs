//! Checks that need the lowered body: stored locals that visibly borrow, and shadowed locals
//! whose outer binding is still needed.

use std::collections::HashSet;

use syn::Ident;

use crate::errors::Errors;
use crate::lower::Lowered;

pub(crate) fn check_borrows(lowered: &Lowered, errors: &mut Errors) {
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
pub(crate) fn check_shadowing(lowered: &Lowered, errors: &mut Errors) {
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
