//! Where a pod's containers, logs and cgroups live on the node (pure):
//!
//! - `DATA/pods/<uid>/<container>/<attempt>/`: one run's bundle, writable
//!   layer and shim state (a restart is a new attempt);
//! - `DATA/logs/<namespace>_<name>_<uid>/<container>/<attempt>.log`, as
//!   the kubelet lays out `/var/log/pods`;
//! - cgroup `/drover/<uid>/<container>-<attempt>`.

use std::path::{Path, PathBuf};

use crate::runtime::container::bundle::ContainerDir;

/// The agent's directories.
#[derive(Clone, Debug)]
pub struct Layout {
    data_dir: PathBuf,
}

/// Keeps letters, digits and `-`, so a uid is a safe path element and id.
pub(crate) fn safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

impl Layout {
    /// Rooted at `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Layout {
            data_dir: data_dir.into(),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Every pod's directory lives here, named by uid.
    pub fn pods_dir(&self) -> PathBuf {
        self.data_dir.join("pods")
    }

    /// One pod's directory.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods_dir().join(safe(uid))
    }

    /// One container's attempts.
    pub fn container_attempts(&self, uid: &str, container: &str) -> PathBuf {
        self.pod_dir(uid).join(safe(container))
    }

    /// One run of a container.
    pub fn container_dir(&self, uid: &str, container: &str, attempt: i32) -> ContainerDir {
        ContainerDir::new(
            self.container_attempts(uid, container)
                .join(attempt.to_string()),
        )
    }

    /// libcontainer's state (short: a socket path lives below it).
    pub fn runtime_root(&self) -> PathBuf {
        self.data_dir.join("run")
    }

    /// The pod's log directory.
    pub fn pod_logs(&self, namespace: &str, name: &str, uid: &str) -> PathBuf {
        self.data_dir
            .join("logs")
            .join(format!("{namespace}_{name}_{}", safe(uid)))
    }

    /// One run's log file.
    pub fn log_path(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        container: &str,
        attempt: i32,
    ) -> PathBuf {
        self.pod_logs(namespace, name, uid)
            .join(safe(container))
            .join(format!("{attempt}.log"))
    }
}

/// The pod's cgroup parent.
pub fn pod_cgroup(uid: &str) -> PathBuf {
    PathBuf::from(format!("/drover/{}", safe(uid)))
}

/// One run's cgroup.
pub fn container_cgroup(uid: &str, container: &str, attempt: i32) -> PathBuf {
    pod_cgroup(uid).join(format!("{}-{attempt}", safe(container)))
}

/// The runtime's container id: unique on the node, short enough for
/// socket paths (12 characters of the uid are 48 random bits).
pub fn container_id(uid: &str, container: &str, attempt: i32) -> String {
    let uid: String = safe(uid).chars().take(12).collect();
    format!("{uid}-{}-{attempt}", safe(container))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_safe_and_distinct() {
        let l = Layout::new("/d");
        assert_eq!(
            l.container_dir("ab/../c", "web", 2).path(),
            Path::new("/d/pods/abc/web/2")
        );
        assert_eq!(
            l.log_path("ns", "p", "u1", "web", 0),
            Path::new("/d/logs/ns_p_u1/web/0.log")
        );
        assert_eq!(
            container_cgroup("u1", "web", 3),
            Path::new("/drover/u1/web-3")
        );
        let id = container_id("0123456789abcdef", "web", 1);
        assert_eq!(id, "0123456789ab-web-1");
        assert!(crate::runtime::container::bundle::valid_id(&id));
    }
}
