//! Runtimes that execute pods on this node.

pub mod container;
pub mod vm;
