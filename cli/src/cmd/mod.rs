//! One module per verb.

pub mod agent;
pub mod agent_join;
pub mod api_stream;
pub mod apply;
pub mod cert;
pub mod cluster;
pub mod delete;
pub mod describe;
pub mod dev;
pub mod drain;
pub mod exec;
pub mod get;
pub mod image;
pub mod logs;
pub mod rollout;
pub mod scale;
pub mod server;
pub mod target;
pub mod token;
pub mod top;
pub mod vm;

use anyhow::Result;
use drover_proto::client::{Client, ClientError, Credentials};
use drover_proto::{Kind, Object};

/// Set once from `--consistency=stale`: reads may come from a follower's
/// local state instead of a linearizable ReadIndex round.
pub static STALE_READS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Set once from the client config: the CA to trust and who we are.
pub static CREDENTIALS: std::sync::OnceLock<Credentials> = std::sync::OnceLock::new();

/// Connects to the API server.
pub async fn connect(server: &str) -> Result<Client> {
    let stale = STALE_READS.get().copied().unwrap_or(false);
    let none = Credentials::default();
    let credentials = CREDENTIALS.get().unwrap_or(&none);
    Ok(Client::connect_with(server, credentials)
        .await?
        .with_stale_reads(stale))
}

/// Resolves a kind the way kubectl does, with a hint when it is unknown.
pub fn parse_kind(input: &str) -> Result<Kind> {
    Kind::parse(input).ok_or_else(|| {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.plural()).collect();
        anyhow::anyhow!(
            "the server doesn't have a resource type {input:?} (known: {})",
            known.join(", ")
        )
    })
}

/// Names an object in messages: `deployment/web`.
pub fn display(o: &Object) -> String {
    o.display_name()
}

/// Adds the object's name to an error, as kubectl does.
pub fn about(o: &Object, e: ClientError) -> anyhow::Error {
    anyhow::anyhow!("{}: {e}", display(o))
}

pub async fn version(server: &str) -> Result<()> {
    println!("Client Version: {}", drover_proto::VERSION);
    let client = connect(server).await?;
    let (v, rev) = client.version().await?;
    println!("Server Version: {v} (revision {rev})");
    Ok(())
}
