//! `drover scale deploy/NAME --replicas N`.

use anyhow::{Result, anyhow};
use clap::Args;
use drover_proto::Kind;

use super::target::{edit, parse_target, qualified};

#[derive(Args)]
pub struct ScaleArgs {
    /// `deploy/NAME`, `rs/NAME`, or `deploy NAME`.
    #[arg(required = true, num_args = 1..=2)]
    target: Vec<String>,
    #[arg(long)]
    replicas: i32,
    #[arg(short = 'n', long, default_value = drover_proto::DEFAULT_NAMESPACE)]
    namespace: String,
}

pub async fn run(server: &str, args: ScaleArgs) -> Result<()> {
    let (kind, name) = parse_target(&args.target)?;
    if !matches!(kind, Kind::Deployment | Kind::ReplicaSet) {
        return Err(anyhow!(
            "cannot scale {}: only deployments and replicasets scale",
            kind.plural()
        ));
    }
    if args.replicas < 0 {
        return Err(anyhow!("--replicas must be 0 or more"));
    }
    let client = super::connect(server).await?;
    edit(&client, kind, &args.namespace, &name, |o| {
        let spec = o
            .body
            .entry("spec")
            .or_insert_with(|| serde_json::json!({}));
        spec["replicas"] = serde_json::json!(args.replicas);
        Ok(())
    })
    .await?;
    println!("{} scaled", qualified(kind, &name));
    Ok(())
}
