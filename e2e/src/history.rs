//! Jepsen-style write history: writers record what the cluster acknowledged,
//! and the checker proves that nothing acknowledged was lost, nothing was
//! invented, and every member holds the same objects at the same revisions.

use std::collections::{BTreeMap, BTreeSet};

/// What a client learned about one write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The cluster acknowledged it (at this resourceVersion, when known).
    Acked(Option<u64>),
    /// Definitely not applied (the request was refused before any effect).
    Refused,
    /// Timed out or the connection broke: it may or may not have applied.
    Unknown,
}

/// Every write attempted during a test, by object name.
#[derive(Default, Debug)]
pub struct History {
    pub writes: BTreeMap<String, Outcome>,
}

/// What one member holds: object name → resourceVersion it was created at.
pub type MemberView = BTreeMap<String, u64>;

/// A violation the checker found, worded for the test's failure message.
#[derive(Debug, PartialEq, Eq)]
pub enum Violation {
    LostAck {
        member: String,
        name: String,
    },
    Invented {
        member: String,
        name: String,
    },
    Diverged {
        member: String,
        name: String,
        here: u64,
        there: u64,
    },
    AckedAtOtherRevision {
        member: String,
        name: String,
        acked: u64,
        stored: u64,
    },
}

impl History {
    pub fn record(&mut self, name: &str, outcome: Outcome) {
        // A later definite answer (e.g. AlreadyExists after a retry of an
        // unknown write) wins over an earlier unknown one.
        match (self.writes.get(name), &outcome) {
            (Some(Outcome::Acked(_)), _) => {}
            _ => {
                self.writes.insert(name.to_string(), outcome);
            }
        }
    }

    pub fn acked(&self) -> usize {
        self.writes
            .values()
            .filter(|o| matches!(o, Outcome::Acked(_)))
            .count()
    }

    /// Checks every member's view against the history and against each other.
    pub fn check(&self, views: &BTreeMap<String, MemberView>) -> Vec<Violation> {
        let mut found = Vec::new();
        let reference = views.iter().next();
        for (member, view) in views {
            for (name, outcome) in &self.writes {
                if let Outcome::Acked(rv) = outcome {
                    match view.get(name) {
                        None => found.push(Violation::LostAck {
                            member: member.clone(),
                            name: name.clone(),
                        }),
                        Some(stored) => {
                            if let Some(acked) = rv
                                && acked != stored
                            {
                                found.push(Violation::AckedAtOtherRevision {
                                    member: member.clone(),
                                    name: name.clone(),
                                    acked: *acked,
                                    stored: *stored,
                                });
                            }
                        }
                    }
                }
            }
            for name in view.keys() {
                if matches!(self.writes.get(name), None | Some(Outcome::Refused)) {
                    found.push(Violation::Invented {
                        member: member.clone(),
                        name: name.clone(),
                    });
                }
            }
            if let Some((_, first)) = reference {
                let names: BTreeSet<&String> = view.keys().chain(first.keys()).collect();
                for name in names {
                    let here = view.get(name).copied().unwrap_or(0);
                    let there = first.get(name).copied().unwrap_or(0);
                    if here != there {
                        found.push(Violation::Diverged {
                            member: member.clone(),
                            name: name.clone(),
                            here,
                            there,
                        });
                    }
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(items: &[(&str, u64)]) -> MemberView {
        items.iter().map(|(n, rv)| (n.to_string(), *rv)).collect()
    }

    #[test]
    fn a_clean_run_has_no_violations() {
        let mut h = History::default();
        h.record("a", Outcome::Acked(Some(5)));
        h.record("b", Outcome::Unknown);
        h.record("c", Outcome::Refused);
        let views = BTreeMap::from([
            ("m1".to_string(), view(&[("a", 5), ("b", 6)])),
            ("m2".to_string(), view(&[("a", 5), ("b", 6)])),
        ]);
        assert_eq!(h.check(&views), vec![]);
        assert_eq!(h.acked(), 1);
    }

    #[test]
    fn lost_invented_and_diverged_writes_are_reported() {
        let mut h = History::default();
        h.record("a", Outcome::Acked(Some(5)));
        h.record("c", Outcome::Refused);
        let views = BTreeMap::from([
            ("m1".to_string(), view(&[("a", 5)])),
            ("m2".to_string(), view(&[("c", 7)])),
        ]);
        let v = h.check(&views);
        assert!(v.contains(&Violation::LostAck {
            member: "m2".into(),
            name: "a".into()
        }));
        assert!(v.contains(&Violation::Invented {
            member: "m2".into(),
            name: "c".into()
        }));
        assert!(
            v.iter()
                .any(|x| matches!(x, Violation::Diverged { member, .. } if member == "m2"))
        );
    }

    #[test]
    fn a_definite_answer_replaces_an_unknown_one_but_never_an_ack() {
        let mut h = History::default();
        h.record("a", Outcome::Unknown);
        h.record("a", Outcome::Acked(None));
        h.record("a", Outcome::Unknown);
        assert_eq!(h.writes["a"], Outcome::Acked(None));
    }
}
