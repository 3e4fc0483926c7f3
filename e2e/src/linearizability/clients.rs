//! Client threads: each works one key through the HTTP gateway of a member
//! it picks at random per operation, recording every operation with the
//! times it was invoked and answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::history::{Entry, INITIAL, Op, Outcome};
use crate::http::{Response, request};
use crate::pki::Api;

const PATH: &str = "/api/v1/namespaces/default/configmaps";
/// Long enough for a healthy write, short enough that a request into a
/// paused or isolated member does not idle a client for long.
const TIMEOUT: Duration = Duration::from_millis(1500);

/// What one client recorded, with the key it worked on.
pub struct ClientLog {
    pub key: String,
    pub entries: Vec<Entry>,
}

/// Running clients until [`Clients::stop`].
pub struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<ClientLog>>,
}

impl Clients {
    /// `per_key` clients on each of `keys`, each seeded from `seed`.
    pub fn start(
        keys: &[String],
        per_key: usize,
        members: &[Api],
        seed: u64,
        clock: Instant,
    ) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (k, key) in keys.iter().enumerate() {
            for c in 0..per_key {
                let client = k * per_key + c;
                let mut worker = Client {
                    id: client,
                    key: key.clone(),
                    members: members.to_vec(),
                    rng: fastrand::Rng::with_seed(seed ^ ((client as u64 + 1) << 32)),
                    clock,
                    seq: 0,
                    last_seen: None,
                };
                let stop = stop.clone();
                threads.push(std::thread::spawn(move || worker.run(&stop)));
            }
        }
        Clients { stop, threads }
    }

    /// Stops every client and returns their logs.
    pub fn stop(self) -> Vec<ClientLog> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .collect()
    }
}

/// Creates each key holding [`INITIAL`] through `member`.
pub fn create_keys(member: &Api, keys: &[String]) -> Result<(), String> {
    for key in keys {
        let body = object(key, INITIAL, None);
        let r = request(member, "POST", PATH, Some(&body), Duration::from_secs(10))?;
        if r.status != 201 {
            return Err(format!("create {key}: HTTP {}: {}", r.status, r.body));
        }
    }
    Ok(())
}

/// A read of `key` on member `id` at `api`, recorded like any other (for
/// the final reads after the faults are healed).
pub fn read_entry(api: &Api, id: u64, key: &str, client: usize, clock: Instant) -> Entry {
    let invoked = clock.elapsed();
    let outcome = match read(api, key) {
        Some((value, _)) => Outcome::Read(value),
        None => Outcome::Unknown,
    };
    let completed = (outcome != Outcome::Unknown).then(|| clock.elapsed());
    Entry {
        client,
        member: id,
        op: Op::Read,
        outcome,
        invoked,
        completed,
    }
}

struct Client {
    id: usize,
    key: String,
    members: Vec<Api>,
    rng: fastrand::Rng,
    clock: Instant,
    seq: u64,
    /// The last value this client saw and its resourceVersion: what a
    /// compare-and-set expects.
    last_seen: Option<(u64, String)>,
}

impl Client {
    fn run(&mut self, stop: &AtomicBool) -> ClientLog {
        let mut entries = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            entries.push(self.one());
            std::thread::sleep(Duration::from_millis(self.rng.u64(0..15)));
        }
        ClientLog {
            key: self.key.clone(),
            entries,
        }
    }

    fn one(&mut self) -> Entry {
        let index = self.rng.usize(0..self.members.len());
        let member = self.members[index].clone();
        let op = match (self.rng.u8(0..10), &self.last_seen) {
            (0..4, _) | (_, None) => Op::Read,
            (4..7, _) => Op::Write(self.next_value()),
            (_, Some((expect, _))) => Op::Cas {
                expect: *expect,
                new: self.next_value(),
            },
        };
        let invoked = self.clock.elapsed();
        let outcome = match op {
            Op::Read => match read(&member, &self.key) {
                Some((value, rv)) => {
                    self.last_seen = Some((value, rv));
                    Outcome::Read(value)
                }
                None => Outcome::Unknown,
            },
            Op::Write(v) => self.put(&member, v, None),
            Op::Cas { new, .. } => {
                let rv = self.last_seen.as_ref().map(|(_, rv)| rv.clone());
                self.put(&member, new, rv.as_deref())
            }
        };
        let completed = (outcome != Outcome::Unknown).then(|| self.clock.elapsed());
        if outcome == Outcome::Unknown {
            // The register may or may not hold our value now.
            self.last_seen = None;
        }
        Entry {
            client: self.id,
            member: index as u64 + 1,
            op,
            outcome,
            invoked,
            completed,
        }
    }

    /// Values are unique across clients: client id in the high bits.
    fn next_value(&mut self) -> u64 {
        self.seq += 1;
        ((self.id as u64 + 1) << 32) | self.seq
    }

    fn put(&mut self, member: &Api, value: u64, rv: Option<&str>) -> Outcome {
        let body = object(&self.key, value, rv);
        let path = format!("{PATH}/{}", self.key);
        match request(member, "PUT", &path, Some(&body), TIMEOUT) {
            Ok(r) if r.status == 200 => {
                self.last_seen = value_of(&r).filter(|(v, _)| *v == value);
                Outcome::Ok
            }
            // Refused by the precondition when applied: a definite no.
            Ok(r) if r.status == 409 && rv.is_some() => Outcome::CasFailed,
            _ => Outcome::Unknown,
        }
    }
}

fn read(member: &Api, key: &str) -> Option<(u64, String)> {
    let r = request(member, "GET", &format!("{PATH}/{key}"), None, TIMEOUT).ok()?;
    (r.status == 200).then_some(())?;
    value_of(&r)
}

/// The register value and resourceVersion of a ConfigMap answer.
fn value_of(r: &Response) -> Option<(u64, String)> {
    let json = r.json();
    let value = json["data"]["value"].as_str()?.parse().ok()?;
    let rv = json["metadata"]["resourceVersion"].as_str()?.to_string();
    Some((value, rv))
}

fn object(key: &str, value: u64, rv: Option<&str>) -> String {
    let mut metadata = serde_json::json!({"name": key});
    if let Some(rv) = rv {
        metadata["resourceVersion"] = rv.into();
    }
    serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": metadata,
        "data": {"value": value.to_string()},
    })
    .to_string()
}
