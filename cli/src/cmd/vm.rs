//! `drover vm`: the VM runtime of the node this runs on.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use drover_node_agent::runtime::vm::kernel::{self, DEFAULT_KERNEL_DIR};

#[derive(Args)]
pub struct VmArgs {
    #[command(subcommand)]
    command: VmCommand,
}

#[derive(Subcommand)]
enum VmCommand {
    /// Download Debian's cloud kernel (linux-image-cloud-amd64) and install
    /// its vmlinuz and virtio modules for VM pods.
    InstallKernel {
        /// Install into this agent data directory (DIR/vm/kernel) instead
        /// of the machine-wide /var/cache/drover/kernel.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

pub fn run(args: VmArgs) -> Result<()> {
    match args.command {
        VmCommand::InstallKernel { data_dir } => {
            let dir = data_dir.map_or_else(
                || PathBuf::from(DEFAULT_KERNEL_DIR),
                |d| kernel::data_dir_kernel(&d),
            );
            let k = kernel::install(&dir).context("drover vm install-kernel")?;
            println!("installed {}", k.vmlinuz.display());
            for m in &k.modules {
                println!("  module {}", m.display());
            }
            Ok(())
        }
    }
}
