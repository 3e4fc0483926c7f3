//! What callers send the API never panics the server: every input the
//! fuzz targets (`fuzz/`, nightly) ever crashed, then a few thousand
//! seeded mutations of valid requests, through the same entry points.

use drover_control_plane::api::fuzz::Harness;
use drover_proto::grpc as pb;
use prost::Message;

/// Inputs that once panicked the server (none are known yet for gRPC).
const GRPC_CRASHES: &[&[u8]] = &[];

/// Inputs that once panicked the gateway.
const HTTP_CRASHES: &[&[u8]] = &[];

const POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default","labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"busybox","command":["sleep","1"],"resources":{"requests":{"cpu":"100m","memory":"64Mi"}},"ports":[{"containerPort":80}]}]}}"#;

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: c, image: busybox, resources: {limits: {memory: 1Gi}}}]\n";

/// Rounds of mutation per seed input.
const ROUNDS: usize = 250;

fn grpc_seeds() -> Vec<Vec<u8>> {
    let framed = |method: u8, message: Vec<u8>| [vec![method], message].concat();
    let list = pb::ListRequest {
        kind: "Pod".into(),
        namespace: "default".into(),
        label_selector: "app=web,tier in (a,b),!x".into(),
        field_selector: "spec.nodeName=n1".into(),
        ..Default::default()
    };
    vec![
        framed(
            0,
            pb::CreateRequest {
                object: POD.as_bytes().to_vec(),
                dry_run: false,
            }
            .encode_to_vec(),
        ),
        framed(
            1,
            pb::GetRequest {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "web".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        framed(2, list.encode_to_vec()),
        framed(
            3,
            pb::UpdateRequest {
                object: POD.replace("100m", "200m").into_bytes(),
                dry_run: true,
            }
            .encode_to_vec(),
        ),
        framed(
            5,
            pb::DeleteRequest {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "web".into(),
                propagation_policy: "Foreground".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        framed(
            6,
            pb::WatchRequest {
                kind: "Deployment".into(),
                label_selector: "app notin (x)".into(),
                resource_version: Some(1),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    ]
}

fn http_seeds() -> Vec<Vec<u8>> {
    let req = |head: u8, target: &str, body: &str| {
        [
            vec![head],
            target.as_bytes().to_vec(),
            b"\n".to_vec(),
            body.as_bytes().to_vec(),
        ]
        .concat()
    };
    vec![
        req(1, "api/v1/namespaces/default/pods", POD),
        req(2, "api/v1/namespaces/default/pods/web", POD),
        req(
            0,
            "api/v1/pods?labelSelector=app%3Dweb&fieldSelector=status.phase!%3DRunning",
            "",
        ),
        req(
            0x81,
            "apis/apps/v1/namespaces/default/deployments",
            DEPLOYMENT,
        ),
        req(
            0,
            "api/v1/namespaces/default/pods?watch=true&resourceVersion=0",
            "",
        ),
        req(
            3,
            "apis/apps/v1/namespaces/default/deployments/web?propagationPolicy=Orphan",
            "",
        ),
        req(
            0,
            "apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=a",
            "",
        ),
        req(
            0,
            "api/v1/namespaces/default/pods/web/log?follow=1&tailLines=-3",
            "",
        ),
        req(0, "ui/pods?namespace=default", ""),
        req(2, "api/v1/namespaces/default/status", "{}"),
    ]
}

/// A random edit of `input`: bytes flipped, inserted, removed, cut, or
/// spliced from another seed.
fn mutate(rng: &mut fastrand::Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    const INTERESTING: &[&[u8]] = &[
        b"%",
        b"%ff",
        b"\xff",
        b"\0",
        b"/",
        b"?",
        b"=",
        b"&",
        b"{",
        b"}",
        b"[",
        b"\"",
        b"-1",
        b"99999999999999999999",
        b"1e308",
        b"null",
        b"*",
        b"..",
        b"\n---\n",
        b": ",
        b"&a",
        b"*a",
        b"!!binary",
        b"in (",
        b"!",
        b"\xe2\x80\xae",
    ];
    for _ in 0..rng.usize(1..=4) {
        let at = rng.usize(0..=out.len());
        match rng.u8(0..6) {
            0 if !out.is_empty() => {
                let i = rng.usize(0..out.len());
                out[i] ^= 1 << rng.u8(0..8);
            }
            1 => out.insert(at, rng.u8(..)),
            2 if at < out.len() => drop(out.drain(at..(at + rng.usize(1..=8)).min(out.len()))),
            3 => out.truncate(at),
            4 => {
                let piece = INTERESTING[rng.usize(0..INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            _ => {
                let other = &seeds[rng.usize(0..seeds.len())];
                let from = rng.usize(0..=other.len());
                out.splice(at..at, other[from..].iter().copied().take(64));
            }
        }
    }
    out
}

fn run(name: &str, seed: u64, crashes: &[&[u8]], seeds: Vec<Vec<u8>>, call: impl Fn(&[u8])) {
    for input in crashes {
        call(input);
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    for input in &seeds {
        call(input);
    }
    for round in 0..ROUNDS {
        for input in &seeds {
            let mutated = mutate(&mut rng, input, &seeds);
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(&mutated)));
            assert!(
                caught.is_ok(),
                "{name} panicked in round {round} on {:?}",
                String::from_utf8_lossy(&mutated)
            );
        }
        // Random bytes too.
        let noise: Vec<u8> = (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect();
        call(&noise);
    }
}

#[test]
fn grpc_requests_never_panic_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let harness = Harness::new(dir.path()).expect("store");
    run("gRPC", 11, GRPC_CRASHES, grpc_seeds(), |b| harness.grpc(b));
}

#[test]
fn http_requests_never_panic_the_gateway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let harness = Harness::new(dir.path()).expect("store");
    run("HTTP", 12, HTTP_CRASHES, http_seeds(), |b| harness.http(b));
}
