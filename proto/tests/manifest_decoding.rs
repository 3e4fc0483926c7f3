//! Manifests as `drover apply -f` reads them never panic the parser or
//! the admission (decode, defaults, validation) the server runs: every
//! input the `manifest` fuzz target ever crashed, then seeded mutations.

use drover_proto::manifest::fuzz_manifest;

/// Inputs that once panicked (none are known yet).
const CRASHES: &[&[u8]] = &[];

const SEEDS: &[&str] = &[
    "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec:\n  runtime: vm\n  containers:\n  - name: c\n    image: busybox\n    env: [{name: A, value: b}]\n    resources: {requests: {cpu: 250m, memory: 64Mi}, limits: {memory: 1Gi}}\n    ports: [{containerPort: 80}]\n    readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}\n",
    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 3\n  strategy: {rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}}\n  selector: {matchLabels: {app: web}, matchExpressions: [{key: tier, operator: In, values: [a]}]}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: busybox}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n",
    "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 0\n  maxReplicas: 10\n  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}]\n",
    "kind: List\napiVersion: v1\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}, data: {a: YWJj}, stringData: {b: c}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}, data: {a: b}}\n",
    "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"},\"spec\":{\"taints\":[{\"key\":\"k\",\"effect\":\"NoSchedule\"}]}}",
];

fn mutate(rng: &mut fastrand::Rng, input: &[u8]) -> Vec<u8> {
    const INTERESTING: &[&[u8]] = &[
        b"\n---\n",
        b": ",
        b"- ",
        b"&a ",
        b"*a",
        b"<<: *a",
        b"!!binary ",
        b"!!int ",
        b"{",
        b"[",
        b"\"",
        b"'",
        b"-1",
        b"1e400",
        b"99999999999999999999",
        b"0x",
        b"~",
        b"null",
        b"1.5Gi",
        b"9999999999Ei",
        b"-100m",
        b"\t",
        b"\xff",
        b"%",
        b"?",
        b"|",
        b">",
    ];
    let mut out = input.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let at = rng.usize(0..=out.len());
        match rng.u8(0..5) {
            0 if !out.is_empty() => {
                let i = rng.usize(0..out.len());
                out[i] ^= 1 << rng.u8(0..8);
            }
            1 => out.insert(at, rng.u8(32..127)),
            2 if at < out.len() => drop(out.drain(at..(at + rng.usize(1..=8)).min(out.len()))),
            3 => out.truncate(at),
            _ => {
                let piece = INTERESTING[rng.usize(0..INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
        }
    }
    out
}

#[test]
fn manifests_never_panic_the_parser_or_admission() {
    for input in CRASHES {
        fuzz_manifest(input);
    }
    let mut rng = fastrand::Rng::with_seed(13);
    for round in 0..800 {
        for seed in SEEDS {
            let input = mutate(&mut rng, seed.as_bytes());
            let caught =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fuzz_manifest(&input)));
            assert!(
                caught.is_ok(),
                "round {round}: panicked on {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}
