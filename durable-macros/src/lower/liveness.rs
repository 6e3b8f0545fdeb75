//! What each label stores: unreachable labels are dropped, then a backward liveness analysis
//! over the arms decides the fields of every variant.

use std::collections::{BTreeSet, HashMap};

use super::{BindingId, LabelId, Lowered};

impl Lowered {
    /// Drops labels no jump reaches (code after a `return`, a join both branches leave), so
    /// that no variant is left whose types nothing fixes.
    pub(super) fn prune_unreachable(&mut self) {
        let mut reached = vec![false; self.labels.len()];
        reached[self.start] = true;
        let arm_of: HashMap<LabelId, usize> = self.arms.iter().enumerate().map(|(i, a)| (a.label, i)).collect();
        let mut stack = vec![self.start];
        while let Some(label) = stack.pop() {
            let Some(&arm) = arm_of.get(&label) else { continue };
            for &jump in &self.arms[arm].jumps {
                let target = self.jumps[jump].target;
                if !reached[target] {
                    reached[target] = true;
                    stack.push(target);
                }
            }
        }
        for (label, reached) in self.labels.iter_mut().zip(reached) {
            label.reachable = reached;
        }
        let labels = &self.labels;
        self.arms.retain(|arm| labels[arm.label].reachable);
    }

    /// Backward liveness over the arms: a label stores what its arm uses, plus what the labels
    /// it jumps to store, of the bindings in scope at the label.
    pub(super) fn liveness(&mut self) {
        let mut live: Vec<BTreeSet<BindingId>> = vec![BTreeSet::new(); self.labels.len()];
        loop {
            let mut changed = false;
            for arm in self.arms.iter().rev() {
                let mut set = arm.uses.clone();
                for &jump in &arm.jumps {
                    set.extend(live[self.jumps[jump].target].iter().copied());
                }
                let scope: BTreeSet<BindingId> = self.labels[arm.label].scope.iter().copied().collect();
                let mut set: BTreeSet<BindingId> = set.intersection(&scope).copied().collect();
                if let Some(value) = self.labels[arm.label].value {
                    set.insert(value);
                }
                if set != live[arm.label] {
                    live[arm.label] = set;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        for (label, set) in self.labels.iter_mut().zip(live) {
            label.live = set.into_iter().collect();
        }
    }
}
