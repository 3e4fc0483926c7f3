//! Drover's node agent: runs pods as containers or microVMs.

pub mod image;
pub mod runtime;
pub mod shim;
