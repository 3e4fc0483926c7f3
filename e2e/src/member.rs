//! Control-plane members running in lab hosts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::binary::drover_bin;
use crate::lab::Host;
use crate::pki::{Api, LabPki};
use crate::process::HostProcess;

/// The API port inside every host (namespaces are private, so a fixed
/// port cannot collide with anything outside the lab).
pub const API_PORT: u16 = 7700;
/// The Raft peer port inside every host.
pub const PEER_PORT: u16 = 7701;

/// One `drover server` process in a host, restartable on the same data dir.
pub struct Member {
    pub id: u64,
    pub host: Host,
    pub data_dir: PathBuf,
    /// Extra flags (e.g. `--id`, `--peers`) given at every start.
    pub flags: Vec<String>,
    pub process: Option<HostProcess>,
    /// The control plane's CA (`DATA_ROOT/pki`), shared by its members.
    pki: LabPki,
}

impl Member {
    /// Member `id` on `host`, with a peer certificate (its id bound to it,
    /// its address named) from the CA under `data_root/pki`.
    pub fn new(id: u64, host: &Host, data_root: &Path, flags: Vec<String>) -> Member {
        let pki = LabPki::at(&data_root.join("pki"));
        pki.issue("peer", &id.to_string(), &[&host.ip]);
        Member {
            id,
            host: host.clone(),
            data_dir: data_root.join(format!("member-{id}")),
            flags,
            process: None,
            pki,
        }
    }

    /// The member's API.
    pub fn api(&self) -> Api {
        self.pki.api(&format!("{}:{API_PORT}", self.host.ip))
    }

    /// `HOST:PORT` of the member's Raft transport.
    pub fn peer(&self) -> String {
        format!("{}:{PEER_PORT}", self.host.ip)
    }

    /// Starts (or restarts) the server and waits until it listens.
    pub fn start(&mut self) {
        let mut args = vec![
            "server".to_string(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--listen".into(),
            self.api().addr,
        ];
        // Its peer certificate serves the API and the Raft transport.
        args.extend(self.pki.serving_flags(&format!("peer-{}", self.id)));
        args.extend(self.flags.iter().cloned());
        let name = format!("member-{}", self.id);
        let p = HostProcess::spawn(&name, &self.host, &drover_bin(), &args);
        p.wait_for_line("drover server listening on ", Duration::from_secs(30));
        self.process = Some(p);
    }

    /// `kill -9` of the server process.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9();
        }
    }
}
