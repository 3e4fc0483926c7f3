//! `drover describe KIND NAME`: details, conditions, and the object's events.

use anyhow::Result;
use clap::Args;
use drover_proto::Kind;
use drover_proto::client::ListOptions;

use super::{connect, parse_kind};
use crate::output::describe::describe;

#[derive(Args)]
pub struct DescribeArgs {
    kind: String,
    name: String,
    #[arg(short = 'n', long)]
    namespace: Option<String>,
}

pub async fn run(server: &str, args: DescribeArgs) -> Result<()> {
    let kind = parse_kind(&args.kind)?;
    let ns = args
        .namespace
        .unwrap_or_else(|| drover_proto::DEFAULT_NAMESPACE.into());
    let client = connect(server).await?;
    let object = client
        .get(kind, &ns, &args.name)
        .await
        .map_err(|e| anyhow::anyhow!("{}/{}: {e}", kind.lower(), args.name))?;
    let opts = ListOptions {
        namespace: kind.namespaced().then(|| ns.clone()),
        label_selector: String::new(),
        field_selector: format!(
            "involvedObject.kind={},involvedObject.name={}",
            kind.name(),
            args.name
        ),
    };
    let (events, _) = client.list(Kind::Event, &opts).await?;
    print!("{}", describe(kind, &object, &events));
    Ok(())
}
