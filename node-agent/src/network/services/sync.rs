//! Keeps the service table equal to what the cluster's Services and
//! Endpoints ask for: watches both, and after a change (debounced) renders
//! and applies the whole ruleset, so a lost event heals at the next one;
//! a periodic resync repairs a table someone else changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use drover_proto::client::{Client, ListOptions};
use drover_proto::types::service::{Endpoints, Service};
use tokio::sync::Notify;

use super::activator::Activator;
use super::existing::{self, CounterValue};
use super::model::{ServicePortRule, service_rules};
use super::render::{Existing, ProxyConfig, render};
use super::serving::Serving;
use crate::agent::informer::{self, Cache};
use crate::network::nft;

/// Changes arriving within this window are applied together.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// The ruleset is re-applied at least this often.
pub const RESYNC: Duration = Duration::from_secs(30);
const RETRY: Duration = Duration::from_secs(1);

/// Runs forever, keeping `cfg.table` in step with the API; `serving`
/// follows the endpoint addresses applied, `services` the Services (for
/// whoever else reads them: the node's DNS server), `activator` (when
/// connections are held) the rules. `route_localnet` is turned on
/// (recorded under `state_dir`) once a NodePort is served.
pub async fn run(
    client: Client,
    cfg: ProxyConfig,
    serving: Serving,
    activator: Option<Activator>,
    services: Cache<Service>,
    state_dir: std::path::PathBuf,
) {
    let changed = Arc::new(Notify::new());
    let endpoints: Cache<Endpoints> = Cache::default();
    let services_synced = Arc::new(AtomicBool::new(false));
    let endpoints_synced = Arc::new(AtomicBool::new(false));
    spawn_informer(client.clone(), services.clone(), &changed, &services_synced);
    spawn_informer(client, endpoints.clone(), &changed, &endpoints_synced);
    let mut applied: Option<Vec<ServicePortRule>> = None;
    let mut localnet = false;
    loop {
        tokio::select! {
            _ = changed.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = tokio::time::sleep(RESYNC) => applied = None,
        }
        if !services_synced.load(Ordering::Acquire) || !endpoints_synced.load(Ordering::Acquire) {
            continue;
        }
        let rules = service_rules(
            &informer::snapshot(&services),
            &informer::snapshot(&endpoints),
        );
        if applied.as_ref() == Some(&rules) {
            continue;
        }
        if !localnet && rules.iter().any(|r| r.node_port.is_some()) {
            // NodePorts answer on 127.0.0.1 too.
            match super::localnet::enable(&state_dir) {
                Ok(()) => localnet = true,
                Err(e) => tracing::warn!("enabling route_localnet (NodePorts on 127.0.0.1): {e}"),
            }
        }
        let (c, r) = (cfg.clone(), rules.clone());
        match tokio::task::spawn_blocking(move || apply(&c, &r)).await {
            Ok(Ok(())) => {
                tracing::debug!("service rules applied ({} service ports)", rules.len());
                serving.set(&rules);
                if let Some(a) = &activator {
                    a.set_rules(&rules);
                }
                applied = Some(rules);
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                    Ok(Ok(())) => String::new(),
                };
                tracing::warn!("applying service rules: {why}; retrying");
                let again = Arc::clone(&changed);
                tokio::spawn(async move {
                    tokio::time::sleep(RETRY).await;
                    again.notify_one();
                });
            }
        }
    }
}

fn spawn_informer<T: drover_proto::Resource>(
    client: Client,
    cache: Cache<T>,
    changed: &Arc<Notify>,
    synced: &Arc<AtomicBool>,
) {
    let (on_change, on_sync, synced) =
        (Arc::clone(changed), Arc::clone(changed), Arc::clone(synced));
    tokio::spawn(informer::run(
        client,
        ListOptions::default(),
        cache,
        |_| true,
        move |_| on_change.notify_one(),
        move || {
            synced.store(true, Ordering::Release);
            on_sync.notify_one();
        },
    ));
}

/// Applies the ruleset for `rules` in one `nft -f` transaction (blocking).
pub fn apply(cfg: &ProxyConfig, rules: &[ServicePortRule]) -> std::io::Result<()> {
    let existing = match nft::run(&["-j", "list", "table", "ip", &cfg.table], None) {
        Ok(json) => existing::parse(&json),
        Err(_) => Existing::default(),
    };
    nft::run(&["-f", "-"], Some(&render(cfg, rules, &existing))).map(drop)
}

/// The named counters of `table`: per service port (`svc/NS/NAME/PORT`) and
/// per endpoint (`ep/NS/NAME/PORT/IP/PORT`); packets count connections.
pub fn read_counters(table: &str) -> std::io::Result<BTreeMap<String, CounterValue>> {
    let json = nft::run(&["-j", "list", "table", "ip", table], None)?;
    Ok(existing::counters(&json))
}

/// Removes the service table of `bridge` (nothing to do if it is gone).
pub fn remove(bridge: &str) {
    let _ = nft::run(
        &["delete", "table", "ip", &super::render::table(bridge)],
        None,
    );
}
