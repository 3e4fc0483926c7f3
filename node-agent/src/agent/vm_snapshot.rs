//! The agent's `POST /snapshot/{namespace}/{pod}[?name=NAME]`, for
//! `drover vm snapshot`: snapshots the pod's running VM into
//! `DATA_DIR/vm/snapshots/NAME/` and answers with the snapshot's name,
//! size and the time taken (JSON, [`Taken`]).

use std::path::{Path, PathBuf};

use drover_proto::types::pod::Runtime;
use drover_proto::validation::names::check_dns_label;

use super::exec::serve::ExecContext;
use super::informer;
use super::logs_server::{respond, respond_as};
use crate::runtime::vm::guest;
use crate::runtime::vm::snapshot::take::{self, TakeError, TakeRequest, Taken};
use drover_proto::dial::Conn;

/// A snapshot request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRequest {
    pub namespace: String,
    pub pod: String,
    /// The snapshot's name (default: `POD-UNIXSECONDS`).
    pub name: Option<String>,
}

/// Parses `/snapshot/NS/POD[?name=NAME]` (pure); the error is for the user.
pub fn parse_target(target: &str) -> Result<SnapshotRequest, String> {
    let usage = || "use POST /snapshot/NAMESPACE/POD[?name=NAME]".to_string();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let rest = path.strip_prefix("/snapshot/").ok_or_else(usage)?;
    let (namespace, pod) = rest.split_once('/').ok_or_else(usage)?;
    if namespace.is_empty() || pod.is_empty() || pod.contains('/') {
        return Err(usage());
    }
    let name = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("name="))
        .filter(|n| !n.is_empty());
    if let Some(n) = name {
        check_dns_label(n).map_err(|e| format!("snapshot name {n:?}: {e}"))?;
    }
    Ok(SnapshotRequest {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        name: name.map(str::to_string),
    })
}

/// The highest attempt directory of a container (its current run).
fn current_run(attempts: &Path) -> Option<PathBuf> {
    std::fs::read_dir(attempts)
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<i32>().ok()?, e.path())))
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
}

/// Serves one request; `head` is its request head.
pub async fn handle(mut conn: Conn, head: &str, ctx: &ExecContext) -> std::io::Result<()> {
    if !head.starts_with("POST ") {
        return respond(&mut conn, "405 Method Not Allowed", "use POST\n").await;
    }
    let target = head.split_whitespace().nth(1).unwrap_or_default();
    let (code, body) = match snapshot(target, ctx).await {
        Ok(taken) => match serde_json::to_string(&taken) {
            Ok(json) => return respond_as(&mut conn, "200 OK", "application/json", &json).await,
            Err(e) => ("500 Internal Server Error", e.to_string()),
        },
        Err(e) => e,
    };
    respond(&mut conn, code, &format!("{body}\n")).await
}

async fn snapshot(target: &str, ctx: &ExecContext) -> Result<Taken, (&'static str, String)> {
    let bad = |m: String| ("400 Bad Request", m);
    let req = parse_target(target).map_err(bad)?;
    let key = format!("{}/{}", req.namespace, req.pod);
    let pod = informer::cached(&ctx.cache, &key)
        .ok_or_else(|| ("404 Not Found", format!("pod {key} is not on this node")))?;
    if pod.spec.runtime != Runtime::Vm {
        return Err(bad(format!("pod {key} is not a VM (runtime: vm)")));
    }
    let kernel = ctx
        .vm_kernel
        .clone()
        .ok_or_else(|| bad("this node does not run VM pods".into()))?;
    let c = pod
        .spec
        .containers
        .first()
        .ok_or_else(|| bad(format!("pod {key} has no container")))?;
    let (memory_mib, vcpus) = guest::guest_size(c).map_err(|e| bad(e.to_string()))?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let run_dir = current_run(&ctx.layout.container_attempts(&uid, &c.name))
        .ok_or_else(|| bad(format!("pod {key} has not started yet")))?;
    let name = req.name.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{}-{secs}", req.pod)
    });
    let data_dir = ctx.layout.data_dir().to_path_buf();
    let blocking = move || {
        take::take(&TakeRequest {
            name: &name,
            run_dir: &run_dir,
            data_dir: &data_dir,
            memory_mib,
            vcpus,
            kernel: &kernel,
            source_pod: key,
        })
    };
    match tokio::task::spawn_blocking(blocking).await {
        Ok(Ok(taken)) => Ok(taken),
        Ok(Err(e @ TakeError::Exists(_))) => Err(("409 Conflict", e.to_string())),
        Ok(Err(e @ TakeError::NoQmp(_))) => Err(bad(e.to_string())),
        Ok(Err(e)) => Err(("500 Internal Server Error", e.to_string())),
        Err(e) => Err(("500 Internal Server Error", e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_parsed_and_names_checked() {
        assert_eq!(
            parse_target("/snapshot/default/web?name=warm-1"),
            Ok(SnapshotRequest {
                namespace: "default".into(),
                pod: "web".into(),
                name: Some("warm-1".into()),
            })
        );
        assert_eq!(parse_target("/snapshot/ns/p").unwrap().name, None);
        assert!(parse_target("/snapshot/ns").is_err());
        assert!(parse_target("/snapshot/ns/p/x").is_err());
        assert!(parse_target("/logs/ns/p").is_err());
        let e = parse_target("/snapshot/ns/p?name=../../etc").unwrap_err();
        assert!(e.contains("snapshot name"), "{e}");
    }

    #[test]
    fn the_current_run_is_the_highest_attempt() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(current_run(tmp.path()), None);
        for a in ["0", "2", "10", "junk"] {
            std::fs::create_dir(tmp.path().join(a)).unwrap();
        }
        assert_eq!(current_run(tmp.path()), Some(tmp.path().join("10")));
    }
}
