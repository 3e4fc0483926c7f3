//! `drover rollout status|history|undo|restart|pause|resume deploy/NAME`.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use drover_control_plane::controllers::deployment::history::{
    CHANGE_CAUSE, revision_of, rollback_template,
};
use drover_control_plane::controllers::deployment::status::{
    PROGRESS_DEADLINE_EXCEEDED, PROGRESSING, get_condition,
};
use drover_proto::client::{Client, ListOptions};
use drover_proto::types::{Deployment, ReplicaSet};
use drover_proto::{Kind, Resource};

use super::target::{edit, parse_target, qualified};

#[derive(Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Args)]
pub struct Target {
    /// `deploy/NAME` or `deploy NAME`.
    #[arg(required = true, num_args = 1..=2)]
    target: Vec<String>,
    #[arg(short = 'n', long, default_value = drover_proto::DEFAULT_NAMESPACE)]
    namespace: String,
}

#[derive(Subcommand)]
enum Action {
    /// Wait until the rollout completes (exit 0) or fails its progress deadline (exit 1).
    Status {
        #[command(flatten)]
        t: Target,
        /// Give up after this long (`90s`, `5m`); 0 waits forever.
        #[arg(long, default_value = "0")]
        timeout: String,
    },
    /// List the revisions.
    History {
        #[command(flatten)]
        t: Target,
    },
    /// Roll back to the previous revision, or to `--to-revision`.
    Undo {
        #[command(flatten)]
        t: Target,
        #[arg(long, default_value_t = 0)]
        to_revision: i64,
    },
    /// Replace every pod by rolling out the same template again.
    Restart {
        #[command(flatten)]
        t: Target,
    },
    /// Stop rolling out template changes.
    Pause {
        #[command(flatten)]
        t: Target,
    },
    /// Roll out template changes again.
    Resume {
        #[command(flatten)]
        t: Target,
    },
}

fn deployment_target(t: &Target) -> Result<String> {
    let (kind, name) = parse_target(&t.target)?;
    if kind != Kind::Deployment {
        return Err(anyhow!(
            "rollout supports deployments only, not {}",
            kind.plural()
        ));
    }
    Ok(name)
}

/// Parses `90s`, `5m`, `1h` or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("invalid duration {s:?}: use e.g. 90s or 5m"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(anyhow!("invalid duration {s:?}: use e.g. 90s or 5m")),
    };
    Ok(Duration::from_secs(secs))
}

async fn owned_replicasets(client: &Client, d: &Deployment) -> Result<Vec<ReplicaSet>> {
    let opts = ListOptions {
        namespace: Some(d.namespace().to_string()),
        ..Default::default()
    };
    let (rses, _) = client.list_as::<ReplicaSet>(&opts).await?;
    let uid = d.metadata.uid.clone().unwrap_or_default();
    Ok(rses
        .into_iter()
        .filter(|rs| rs.metadata.controller_ref().is_some_and(|r| r.uid == uid))
        .collect())
}

/// kubectl's rollout status: Some(Ok(msg)) when done, Some(Err) when
/// failed, None (with a progress line) while rolling.
fn rollout_state(d: &Deployment) -> (Option<Result<String, String>>, String) {
    let name = d.name();
    let Some(s) = d.status.as_ref() else {
        return (
            None,
            "Waiting for deployment spec update to be observed...".into(),
        );
    };
    if s.observed_generation < d.metadata.generation.unwrap_or(0) {
        return (
            None,
            "Waiting for deployment spec update to be observed...".into(),
        );
    }
    if let Some(c) = get_condition(s, PROGRESSING)
        && c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED)
    {
        return (
            Some(Err(format!(
                "deployment {name:?} exceeded its progress deadline"
            ))),
            String::new(),
        );
    }
    let want = d.spec.replicas;
    if s.updated_replicas < want {
        let msg = format!(
            "Waiting for deployment {name:?} rollout to finish: {} out of {want} new replicas have been updated...",
            s.updated_replicas
        );
        return (None, msg);
    }
    if s.replicas > s.updated_replicas {
        let msg = format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
            s.replicas - s.updated_replicas
        );
        return (None, msg);
    }
    if s.available_replicas < s.updated_replicas {
        let msg = format!(
            "Waiting for deployment {name:?} rollout to finish: {} of {} updated replicas are available...",
            s.available_replicas, s.updated_replicas
        );
        return (None, msg);
    }
    (
        Some(Ok(format!("deployment {name:?} successfully rolled out"))),
        String::new(),
    )
}

async fn status(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<()> {
    let deadline = (!timeout.is_zero()).then(|| Instant::now() + timeout);
    let mut last = String::new();
    loop {
        let d: Deployment = client.get_as(ns, name).await?;
        match rollout_state(&d) {
            (Some(Ok(msg)), _) => {
                println!("{msg}");
                return Ok(());
            }
            (Some(Err(msg)), _) => return Err(anyhow!(msg)),
            (None, progress) => {
                if progress != last {
                    println!("{progress}");
                    last = progress;
                }
            }
        }
        if deadline.is_some_and(|t| Instant::now() >= t) {
            return Err(anyhow!(
                "timed out waiting for the rollout of deployment {name:?}"
            ));
        }
        // Polling keeps this simple and robust across server restarts.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn history(client: &Client, ns: &str, name: &str) -> Result<()> {
    let d: Deployment = client.get_as(ns, name).await?;
    let mut rses = owned_replicasets(client, &d).await?;
    rses.sort_by_key(revision_of);
    println!("{}", qualified(Kind::Deployment, name));
    println!("{:<10}CHANGE-CAUSE", "REVISION");
    for rs in rses.iter().filter(|rs| revision_of(rs) > 0) {
        let cause = rs
            .metadata
            .annotations
            .get(CHANGE_CAUSE)
            .map(String::as_str)
            .unwrap_or("<none>");
        println!("{:<10}{cause}", revision_of(rs));
    }
    Ok(())
}

async fn undo(client: &Client, ns: &str, name: &str, to: i64) -> Result<()> {
    let d: Deployment = client.get_as(ns, name).await?;
    let rses = owned_replicasets(client, &d).await?;
    let template = rollback_template(&rses, to).map_err(|e| anyhow!("deployment {name:?}: {e}"))?;
    if template == d.spec.template {
        println!(
            "{} skipped rollback (current template already matches revision)",
            qualified(Kind::Deployment, name)
        );
        return Ok(());
    }
    let value = serde_json::to_value(&template)?;
    edit(client, Kind::Deployment, ns, name, |o| {
        let spec = o
            .body
            .entry("spec")
            .or_insert_with(|| serde_json::json!({}));
        spec["template"] = value.clone();
        Ok(())
    })
    .await?;
    println!("{} rolled back", qualified(Kind::Deployment, name));
    Ok(())
}

pub async fn run(server: &str, args: RolloutArgs) -> Result<()> {
    let client = super::connect(server).await?;
    match args.action {
        Action::Status { t, timeout } => {
            let name = deployment_target(&t)?;
            status(&client, &t.namespace, &name, parse_duration(&timeout)?).await
        }
        Action::History { t } => history(&client, &t.namespace, &deployment_target(&t)?).await,
        Action::Undo { t, to_revision } => {
            undo(&client, &t.namespace, &deployment_target(&t)?, to_revision).await
        }
        Action::Restart { t } => {
            let name = deployment_target(&t)?;
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            edit(&client, Kind::Deployment, &t.namespace, &name, |o| {
                let spec = o
                    .body
                    .entry("spec")
                    .or_insert_with(|| serde_json::json!({}));
                let template = &mut spec["template"];
                let meta = &mut template["metadata"];
                if !meta["annotations"].is_object() {
                    meta["annotations"] = serde_json::json!({});
                }
                meta["annotations"]["kubectl.kubernetes.io/restartedAt"] = serde_json::json!(now);
                Ok(())
            })
            .await?;
            println!("{} restarted", qualified(Kind::Deployment, &name));
            Ok(())
        }
        Action::Pause { t } => set_paused(&client, &t, true).await,
        Action::Resume { t } => set_paused(&client, &t, false).await,
    }
}

async fn set_paused(client: &Client, t: &Target, paused: bool) -> Result<()> {
    let name = deployment_target(t)?;
    edit(client, Kind::Deployment, &t.namespace, &name, |o| {
        let spec = o
            .body
            .entry("spec")
            .or_insert_with(|| serde_json::json!({}));
        spec["paused"] = serde_json::json!(paused);
        Ok(())
    })
    .await?;
    let word = if paused { "paused" } else { "resumed" };
    println!("{} {word}", qualified(Kind::Deployment, &name));
    Ok(())
}
