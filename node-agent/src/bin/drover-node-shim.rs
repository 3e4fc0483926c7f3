//! A standalone entry point to the container shim, for tests and
//! benchmarks (`drover shim` is the same thing inside the main binary).

use std::process::ExitCode;

fn main() -> ExitCode {
    drover_node_agent::shim::shim_main(std::env::args_os().skip(1).collect())
}
