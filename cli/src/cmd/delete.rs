//! `drover delete KIND NAME...` and `drover delete -f FILE`.

use anyhow::{Result, bail};
use clap::Args;
use drover_proto::Kind;
use drover_proto::client::{ClientError, DeleteOptions};

use super::{connect, parse_kind};
use crate::files::read_manifests;

#[derive(Args)]
pub struct DeleteArgs {
    /// Kind, then one or more names.
    args: Vec<String>,
    /// Delete what these manifests describe.
    #[arg(short = 'f', long = "filename")]
    files: Vec<String>,
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// background, foreground or orphan.
    #[arg(long, default_value = "background")]
    cascade: String,
    /// Seconds a running pod gets to stop (0: at once).
    #[arg(long)]
    grace_period: Option<i64>,
    /// Succeed when the object does not exist.
    #[arg(long)]
    ignore_not_found: bool,
}

pub async fn run(server: &str, args: DeleteArgs) -> Result<()> {
    let mut targets: Vec<(Kind, String, String)> = Vec::new();
    let default_ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| drover_proto::DEFAULT_NAMESPACE.into());
    if !args.files.is_empty() {
        if !args.args.is_empty() {
            bail!("give either -f or KIND NAME..., not both");
        }
        for m in read_manifests(&args.files)? {
            let kind = m
                .object
                .kind()
                .map_err(|e| anyhow::anyhow!("{}: {e}", m.source))?;
            let ns = m
                .object
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| default_ns.clone());
            targets.push((kind, ns, m.object.metadata.name.clone()));
        }
    } else {
        let Some((kind, names)) = args.args.split_first() else {
            bail!("usage: drover delete KIND NAME... | -f FILE");
        };
        let kind = parse_kind(kind)?;
        if names.is_empty() {
            bail!("name what to delete: drover delete {} NAME", kind.lower());
        }
        targets.extend(names.iter().map(|n| (kind, default_ns.clone(), n.clone())));
    }
    let opts = DeleteOptions {
        resource_version: 0,
        propagation_policy: args.cascade.clone(),
        grace_period_seconds: args.grace_period,
    };
    let client = connect(server).await?;
    let mut failed = 0;
    for (kind, ns, name) in targets {
        match client.delete(kind, &ns, &name, &opts).await {
            Ok(o)
                if o.metadata.deletion_timestamp.is_some()
                    && o.metadata.resource_version.is_some() =>
            {
                println!("{}/{name} deleted (terminating)", kind.lower())
            }
            Ok(_) => println!("{}/{name} deleted", kind.lower()),
            Err(ClientError::NotFound(_)) if args.ignore_not_found => {}
            Err(e) => {
                failed += 1;
                eprintln!("error: {}/{name}: {e}", kind.lower());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} object(s) could not be deleted");
    }
    Ok(())
}
