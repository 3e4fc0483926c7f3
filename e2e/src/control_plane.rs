//! A replicated control plane on lab hosts: `drover server --id N
//! --peer-listen … --peers …`, one member per host.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::http::request;
use crate::lab::Lab;
use crate::member::Member;
use crate::pki::Api;

/// The members of one control plane, in id order (ids start at 1).
pub struct ControlPlane {
    pub members: Vec<Member>,
}

/// One member's answer to `GET /cluster/status`.
#[derive(Debug, Clone)]
pub struct StatusView {
    /// The member whose view this is (the leader's, when a follower asked it).
    pub id: u64,
    /// The member that answered.
    pub answered_by: u64,
    pub leader: Option<u64>,
    pub term: u64,
    pub role: String,
}

impl ControlPlane {
    /// Starts `size` members on new hosts `cp1…cpN` of `lab`.
    pub fn start(lab: &Lab, size: u64, data_root: &Path) -> ControlPlane {
        let hosts: Vec<_> = (1..=size)
            .map(|i| lab.add_host(&format!("cp{i}")))
            .collect();
        let peers = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| format!("{}={}:{}", i + 1, h.ip, crate::member::PEER_PORT))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<Member> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let id = i as u64 + 1;
                let flags = vec![
                    "--id".to_string(),
                    id.to_string(),
                    "--peer-listen".into(),
                    format!("{}:{}", h.ip, crate::member::PEER_PORT),
                    "--peers".into(),
                    peers.clone(),
                ];
                Member::new(id, h, data_root, flags)
            })
            .collect();
        for m in &mut members {
            m.start();
        }
        ControlPlane { members }
    }

    /// Every member's API, with its name (`cp1`…).
    pub fn apis(&self) -> Vec<(String, Api)> {
        self.members
            .iter()
            .map(|m| (m.host.name.clone(), m.api()))
            .collect()
    }

    pub fn member(&mut self, id: u64) -> &mut Member {
        let index = self
            .members
            .iter()
            .position(|m| m.id == id)
            .unwrap_or_else(|| panic!("no member {id}"));
        &mut self.members[index]
    }

    /// The status each running member reports about itself.
    pub fn statuses(&self) -> Vec<StatusView> {
        self.members
            .iter()
            .filter(|m| m.process.is_some())
            .filter_map(|m| status(&m.api()))
            .collect()
    }

    /// Waits until a member says it is the leader and returns its id.
    /// `not` excludes a member (the leader that was just killed).
    pub fn wait_for_leader(&self, not: Option<u64>, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let leader = self
                .statuses()
                .into_iter()
                .find(|s| s.role == "Leader" && Some(s.id) != not)
                .map(|s| s.id);
            if let Some(id) = leader {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "no leader within {timeout:?}: {:?}",
                self.statuses()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// `GET /cluster/status` of one member, answered by itself.
pub fn status(api: &Api) -> Option<StatusView> {
    let r = request(
        api,
        "GET",
        "/cluster/status",
        None,
        Duration::from_millis(500),
    )
    .ok()?;
    if r.status != 200 {
        return None;
    }
    let j = r.json();
    Some(StatusView {
        id: j["id"].as_u64()?,
        answered_by: j["answered_by"].as_u64().unwrap_or(0),
        leader: j["leader"].as_u64(),
        term: j["term"].as_u64().unwrap_or(0),
        role: j["role"].as_str().unwrap_or_default().to_string(),
    })
}
