//! A Jepsen-style linearizability test of the replicated store: clients
//! read, write and compare-and-set a few ConfigMaps through different
//! members while a seeded nemesis kills, pauses and isolates members; each
//! key's history is then checked against a register model.
//!
//! Linearizability is compositional (Herlihy & Wing), so each key is
//! checked alone.

pub mod checker;
pub mod clients;
pub mod history;
pub mod nemesis;

pub use checker::{Verdict, check};
pub use history::{Entry, INITIAL, Op, Outcome};
