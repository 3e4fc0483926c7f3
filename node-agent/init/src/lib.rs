//! The contract between the node agent and `drover-init`, the PID 1 of a
//! VM pod: the config file the agent puts in the initramfs, the network
//! settings on the kernel command line, and the lines init prints on the
//! console (its start, its exit code, why it failed), and the host's
//! readdress line for a guest restored from a snapshot.
//!
//! Pure and dependency-free: `main.rs` includes these modules when the
//! agent's build script compiles init with plain `rustc`.

pub mod config;
pub mod console;
pub mod readdress;
