//! `drover token create|list|delete`: bootstrap tokens for agents joining
//! the cluster (kubeadm's `kubeadm token`). They are Secrets in
//! `kube-system`, so making one needs cluster-admin (or a role with
//! secrets there).

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use drover_control_plane::auth::join::token::{self, BootstrapToken, TokenString};
use drover_proto::Kind;
use drover_proto::client::{DeleteOptions, ListOptions};

use super::connect;
use super::rollout::parse_duration;

#[derive(Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token and print it (`ID.SECRET`): the secret is not kept.
    Create(CreateArgs),
    /// List tokens: id, expiry, who used it, description.
    List,
    /// Revoke a token by its id.
    Delete { id: String },
}

#[derive(Args)]
struct CreateArgs {
    /// How long the token may be used (`30m`, `24h`; 0: never expires).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    ttl: Duration,
    /// What the token is for, shown by `list`.
    #[arg(long, default_value = "")]
    description: String,
}

pub async fn run(server: &str, args: TokenArgs) -> Result<()> {
    let client = connect(server).await?;
    match args.command {
        TokenCommand::Create(a) => {
            let secret = TokenString::generate();
            let expiration = (!a.ttl.is_zero())
                .then(|| chrono::Duration::from_std(a.ttl).map(|ttl| chrono::Utc::now() + ttl))
                .transpose()
                .context("--ttl is too long")?;
            let stored = BootstrapToken::new(&secret, expiration, &a.description);
            ensure_namespace(&client).await?;
            client
                .create(&stored.to_object())
                .await
                .context("storing the token")?;
            println!("{}", secret.to_token());
        }
        TokenCommand::List => {
            let opts = ListOptions {
                namespace: Some(token::NAMESPACE.into()),
                field_selector: String::new(),
                label_selector: String::new(),
            };
            let (secrets, _) = client.list(Kind::Secret, &opts).await?;
            let rows = secrets
                .iter()
                .filter_map(BootstrapToken::from_object)
                .map(|t| {
                    vec![
                        t.id,
                        t.expiration.map_or("<never>".into(), |at| at.to_rfc3339()),
                        t.used_by.unwrap_or_else(|| "<unused>".into()),
                        t.description,
                    ]
                })
                .collect();
            let headers = ["TOKEN ID", "EXPIRES", "USED BY", "DESCRIPTION"];
            println!("{}", crate::output::table::render(&headers, rows, true));
        }
        TokenCommand::Delete { id } => {
            client
                .delete(
                    Kind::Secret,
                    token::NAMESPACE,
                    &token::secret_name(&id),
                    &DeleteOptions::default(),
                )
                .await
                .with_context(|| format!("token {id}"))?;
            println!("bootstrap token {id:?} deleted");
        }
    }
    Ok(())
}

/// Tokens live in `kube-system`; the first token makes it.
async fn ensure_namespace(client: &drover_proto::client::Client) -> Result<()> {
    let namespace = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": token::NAMESPACE},
    });
    let namespace: drover_proto::Object = serde_json::from_value(namespace)?;
    match client.create(&namespace).await {
        Ok(_) | Err(drover_proto::client::ClientError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating the namespace {}", token::NAMESPACE)),
    }
}
