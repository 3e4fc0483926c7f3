//! A lab host serving images as a real registry would: Debian's
//! `docker-registry` on the host's address, with the example image pushed
//! to it by `drover image push`, so agents pull as they would in a cluster.

use std::path::Path;
use std::time::Duration;

use crate::lab::Host;
use crate::process::HostProcess;
use crate::{drover_bin, eventually};

/// The registry port inside its host (a private namespace: no collision).
const PORT: u16 = 5000;

/// Why the registry cannot run here, if it cannot.
pub fn unsupported_reason() -> Option<String> {
    (!Path::new("/usr/bin/docker-registry").exists())
        .then(|| "/usr/bin/docker-registry missing (apt-get install docker-registry)".into())
}

/// A running registry; stopped on drop.
pub struct Registry {
    /// `IP:PORT`, what image names start with.
    pub addr: String,
    _process: HostProcess,
}

impl Registry {
    /// Starts the registry in `host` with its storage under `dir`, and
    /// pushes the OCI layout at `layout` (named `example/busybox:1`) to it.
    pub fn start(host: &Host, dir: &Path, layout: &Path) -> Registry {
        std::fs::create_dir_all(dir).expect("registry dir");
        let addr = format!("{}:{PORT}", host.ip);
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("data").display()
            ),
        )
        .expect("registry config");
        let process = HostProcess::spawn(
            "registry",
            host,
            Path::new("/usr/bin/docker-registry"),
            &["serve".to_string(), config.display().to_string()],
        );
        let catalog = format!("http://{addr}/v2/");
        eventually("the registry answers", Duration::from_secs(20), || {
            host.exec("curl", &["-sf", "--max-time", "1", &catalog])
                .status
                .success()
                .then_some(())
        });
        let store = dir.join("pusher");
        let drover = drover_bin().display().to_string();
        let store_arg = store.display().to_string();
        let imported = host.exec(
            &drover,
            &[
                "image",
                "import",
                &layout.display().to_string(),
                "--data-dir",
                &store_arg,
            ],
        );
        assert!(
            imported.status.success(),
            "image import: {}",
            String::from_utf8_lossy(&imported.stderr)
        );
        let target = format!("{addr}/example/busybox:1");
        let pushed = host.exec(
            &drover,
            &[
                "image",
                "push",
                "example/busybox:1",
                &target,
                "--insecure",
                "--data-dir",
                &store_arg,
            ],
        );
        assert!(
            pushed.status.success(),
            "image push: {}",
            String::from_utf8_lossy(&pushed.stderr)
        );
        Registry {
            addr,
            _process: process,
        }
    }
}
