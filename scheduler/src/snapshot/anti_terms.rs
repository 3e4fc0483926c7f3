//! Registry of the required anti-affinity terms carried by bound pods, so an
//! incoming pod finds the terms that could reject it without scanning every
//! pod: identical terms (a workload's replicas) are stored once, and terms are
//! indexed by one of their `matchLabels` pairs.

use std::collections::HashMap;

use drover_proto::selector::Selector;

use super::fast_hash::FastMap;

use super::pod_info::TermSpec;

/// One distinct term and where its carriers run.
#[derive(Debug)]
pub(crate) struct ExistingTerm {
    pub spec: TermSpec,
    /// `None` when the selector is invalid: such a term matches nothing.
    pub selector: Option<Selector>,
    /// Interned topology value → number of carrier pods in that domain.
    pub domains: FastMap<u32, u32>,
    refs: u32,
    canonical: String,
    index_pair: Option<(String, String)>,
}

#[derive(Debug, Default)]
pub(crate) struct AntiTermRegistry {
    terms: Vec<Option<ExistingTerm>>,
    free: Vec<u32>,
    by_canonical: HashMap<String, u32>,
    by_label: HashMap<String, HashMap<String, Vec<u32>>>,
    unindexed: Vec<u32>,
}

impl AntiTermRegistry {
    /// Adds a carrier of `spec` in domain `domain` (None: its node lacks the key).
    pub fn add(&mut self, spec: &TermSpec, domain: Option<u32>) -> u32 {
        let canonical = format!(
            "{:?}|{}|{:?}",
            spec.namespaces, spec.topology_key, spec.label_selector
        );
        let id = match self.by_canonical.get(&canonical) {
            Some(&id) => id,
            None => self.insert(spec, canonical),
        };
        if let Some(Some(term)) = self.terms.get_mut(id as usize) {
            term.refs += 1;
            if let Some(d) = domain {
                *term.domains.entry(d).or_default() += 1;
            }
        }
        id
    }

    fn insert(&mut self, spec: &TermSpec, canonical: String) -> u32 {
        let index_pair = spec
            .label_selector
            .match_labels
            .iter()
            .next()
            .map(|(k, v)| (k.clone(), v.clone()));
        let term = ExistingTerm {
            spec: spec.clone(),
            selector: Selector::from_label_selector(&spec.label_selector).ok(),
            domains: FastMap::default(),
            refs: 0,
            canonical: canonical.clone(),
            index_pair: index_pair.clone(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.terms[id as usize] = Some(term);
                id
            }
            None => {
                self.terms.push(Some(term));
                (self.terms.len() - 1) as u32
            }
        };
        self.by_canonical.insert(canonical, id);
        match index_pair {
            Some((k, v)) => self
                .by_label
                .entry(k)
                .or_default()
                .entry(v)
                .or_default()
                .push(id),
            None => self.unindexed.push(id),
        }
        id
    }

    /// Removes a carrier added with the same `domain`.
    pub fn remove(&mut self, id: u32, domain: Option<u32>) {
        let Some(slot) = self.terms.get_mut(id as usize) else {
            return;
        };
        let Some(term) = slot.as_mut() else { return };
        term.refs = term.refs.saturating_sub(1);
        if let Some(d) = domain
            && let Some(c) = term.domains.get_mut(&d)
        {
            *c = c.saturating_sub(1);
            if *c == 0 {
                term.domains.remove(&d);
            }
        }
        if term.refs > 0 {
            return;
        }
        let Some(term) = slot.take() else { return };
        self.by_canonical.remove(&term.canonical);
        match term.index_pair {
            Some((k, v)) => {
                if let Some(ids) = self.by_label.get_mut(&k).and_then(|m| m.get_mut(&v)) {
                    ids.retain(|&i| i != id);
                }
            }
            None => self.unindexed.retain(|&i| i != id),
        }
        self.free.push(id);
    }

    /// Calls `f` with every term that could match a pod with these labels.
    pub fn candidates<'a>(
        &'a self,
        labels: &'a std::collections::BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a ExistingTerm> + 'a {
        let indexed = labels
            .iter()
            .filter_map(|(k, v)| self.by_label.get(k)?.get(v))
            .flatten();
        indexed
            .chain(self.unindexed.iter())
            .filter_map(|&id| self.terms.get(id as usize)?.as_ref())
    }
}
