//! A steady stream of writes (ConfigMap creates through the HTTP gateway)
//! spread over the members, recording every outcome in a [`History`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::history::{History, MemberView, Outcome};
use crate::http::request;
use crate::pki::Api;

const PATH: &str = "/api/v1/namespaces/default/configmaps";

/// Writer threads running until [`Writers::stop`].
pub struct Writers {
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
    threads: Vec<JoinHandle<()>>,
}

impl Writers {
    /// Starts `count` writers, each creating `PREFIX-w{i}-{seq}` objects
    /// against `members` (their APIs), moving to the next member when
    /// one fails. An uncertain write is retried under the same name until a
    /// definite answer, so each name is applied at most once.
    pub fn start(prefix: &str, count: usize, members: Vec<Api>) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(History::default()));
        let threads = (0..count)
            .map(|i| {
                let (stop, history, members) = (stop.clone(), history.clone(), members.clone());
                let prefix = format!("{prefix}-w{i}");
                std::thread::spawn(move || write_loop(&prefix, i, &members, &stop, &history))
            })
            .collect();
        Writers {
            stop,
            history,
            threads,
        }
    }

    /// Acknowledged writes so far.
    pub fn acked(&self) -> usize {
        self.history.lock().map(|h| h.acked()).unwrap_or(0)
    }

    /// Stops the writers and returns the history.
    pub fn stop(self) -> History {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        match Arc::try_unwrap(self.history) {
            Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
            Err(shared) => std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner())),
        }
    }
}

fn write_loop(
    prefix: &str,
    start: usize,
    members: &[Api],
    stop: &AtomicBool,
    history: &Mutex<History>,
) {
    let mut target = start % members.len().max(1);
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("{prefix}-{seq}");
        let body = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": {"payload": "x".repeat(256)},
        })
        .to_string();
        // Retry this name until the answer is definite (or we must stop).
        loop {
            let Some(addr) = members.get(target) else {
                return;
            };
            let outcome = match request(addr, "POST", PATH, Some(&body), Duration::from_secs(2)) {
                Ok(r) if r.status == 201 => {
                    let rv = r.json()["metadata"]["resourceVersion"]
                        .as_str()
                        .and_then(|v| v.parse().ok());
                    Outcome::Acked(rv)
                }
                // Our own earlier, uncertain attempt did apply.
                Ok(r) if r.status == 409 => Outcome::Acked(None),
                Ok(r) if (400..500).contains(&r.status) => Outcome::Refused,
                _ => Outcome::Unknown,
            };
            let definite = outcome != Outcome::Unknown;
            if let Ok(mut h) = history.lock() {
                h.record(&name, outcome);
            }
            if definite {
                break;
            }
            target = (target + 1) % members.len();
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seq += 1;
    }
}

/// What `addr` holds under `prefix`: name → creation resourceVersion.
pub fn member_view(addr: &Api, prefix: &str) -> Result<MemberView, String> {
    let r = request(addr, "GET", PATH, None, Duration::from_secs(10))?;
    if r.status != 200 {
        return Err(format!("list on {addr}: HTTP {}: {}", r.status, r.body));
    }
    let json = r.json();
    let items = json["items"].as_array().cloned().unwrap_or_default();
    Ok(items
        .iter()
        .filter_map(|o| {
            let name = o["metadata"]["name"].as_str()?;
            let rv = o["metadata"]["resourceVersion"].as_str()?.parse().ok()?;
            name.starts_with(prefix).then(|| (name.to_string(), rv))
        })
        .collect())
}

/// Waits until every member answers the same view (they have converged).
pub fn converged_views(
    members: &[(String, Api)],
    prefix: &str,
    timeout: Duration,
) -> std::collections::BTreeMap<String, MemberView> {
    let deadline = Instant::now() + timeout;
    loop {
        let views: std::collections::BTreeMap<String, MemberView> = members
            .iter()
            .filter_map(|(name, addr)| member_view(addr, prefix).ok().map(|v| (name.clone(), v)))
            .collect();
        let all_answered = views.len() == members.len();
        let first = views.values().next();
        if all_answered && views.values().all(|v| Some(v) == first) {
            return views;
        }
        if Instant::now() > deadline {
            return views;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
