//! `drover vm`: the VM runtime of the node this runs on, and snapshots
//! of VM pods (through the API server to the pod's node).

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
    /// Snapshot a running VM pod on its node (DATA_DIR/vm/snapshots/NAME);
    /// a pod with `spec.vmSnapshot: NAME` on that node starts from it.
    Snapshot(SnapshotArgs),
}

#[derive(Args)]
struct SnapshotArgs {
    /// The VM pod.
    pod: String,
    /// The pod's namespace.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// The snapshot's name (default: POD-UNIXSECONDS).
    #[arg(long)]
    name: Option<String>,
}

/// What the agent answers.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Taken {
    name: String,
    size_bytes: u64,
    paused_millis: u64,
    total_millis: u64,
}

/// The request path (pure).
fn snapshot_path(a: &SnapshotArgs) -> String {
    let path = format!("/api/v1/namespaces/{}/pods/{}/snapshot", a.namespace, a.pod);
    match &a.name {
        Some(n) => format!("{path}?name={n}"),
        None => path,
    }
}

/// Whether the command needs the API server.
pub fn talks_to_a_server(args: &VmArgs) -> bool {
    matches!(args.command, VmCommand::Snapshot(_))
}

async fn snapshot(server: &str, a: SnapshotArgs) -> Result<()> {
    let mut reader = super::api_stream::open(server, "POST", &snapshot_path(&a), None, &[])
        .await
        .with_context(|| format!("snapshot of pod {}/{}", a.namespace, a.pod))?;
    let mut body = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut reader, &mut body).await?;
    let t: Taken =
        serde_json::from_str(&body).with_context(|| format!("the server's answer {body:?}"))?;
    println!(
        "snapshot {} taken: {:.1} MiB in {} ms (the VM was paused {} ms)",
        t.name,
        t.size_bytes as f64 / f64::from(1 << 20),
        t.total_millis,
        t.paused_millis
    );
    Ok(())
}

pub async fn run(server: &str, args: VmArgs) -> Result<()> {
    match args.command {
        VmCommand::Snapshot(a) => snapshot(server, a).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_path_carries_namespace_and_name() {
        let a = SnapshotArgs {
            pod: "web".into(),
            namespace: "team".into(),
            name: Some("warm".into()),
        };
        assert_eq!(
            snapshot_path(&a),
            "/api/v1/namespaces/team/pods/web/snapshot?name=warm"
        );
        let a = SnapshotArgs { name: None, ..a };
        assert_eq!(
            snapshot_path(&a),
            "/api/v1/namespaces/team/pods/web/snapshot"
        );
    }
}
