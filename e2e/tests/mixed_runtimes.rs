//! Issue 9 scenario 1 on namespaced hosts, images pulled from the lab's own
//! registry: the example web service runs as containers and as microVMs
//! (QEMU engine here) across both agents behind one Service; the cluster
//! IP answers from every node with every replica, the NodePort from a host
//! outside the cluster, and `drover get pods -o wide` shows the spread.

use std::path::PathBuf;
use std::time::Duration;

use drover_e2e::cluster::{
    Cluster, ClusterOptions, answering, curl_in, drover, get_json, ready_endpoints, ready_pods,
    skip_reason,
};
use drover_e2e::{eventually, registry, run, skip_unless_supported};
use serde_json::Value;

const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web, runtime: container}}
  template:
    metadata: {labels: {app: web, runtime: container}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: REGISTRY/example/busybox:1
        command: ["sh", "-c", "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-vm, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web, runtime: vm}}
  template:
    metadata: {labels: {app: web, runtime: vm}}
    spec:
      runtime: vm
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: REGISTRY/example/busybox:1
        command: ["sh", "-c", "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
        ports: [{name: http, containerPort: 8080}]
        resources:
          requests: {cpu: 100m, memory: 192Mi}
          limits: {memory: 192Mi}
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

fn kernel() -> PathBuf {
    std::env::var_os("DROVER_VM_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/drover/kernel/vmlinuz"))
}

/// Why VM pods cannot run in the lab here, if they cannot.
fn vm_skip_reason() -> Option<String> {
    if !run("sh", &["-c", "command -v qemu-system-x86_64"])
        .status
        .success()
    {
        return Some("qemu-system-x86_64 missing (apt-get install qemu-system-x86)".into());
    }
    if !kernel().exists() {
        return Some(format!(
            "no guest kernel at {} (drover vm install-kernel, or set DROVER_VM_KERNEL)",
            kernel().display()
        ));
    }
    (!std::path::Path::new("/dev/net/tun").exists()).then(|| "/dev/net/tun missing".into())
}

#[test]
fn containers_and_vms_serve_one_service_across_nodes_from_a_registry() {
    let test = "mixed_runtimes";
    if skip_unless_supported(test) {
        return;
    }
    if let Some(why) = skip_reason()
        .or_else(registry::unsupported_reason)
        .or_else(vm_skip_reason)
    {
        eprintln!("skipped {test}: {why}");
        return;
    }
    let kernel = kernel().display().to_string();
    let cluster = Cluster::start_opts(
        test,
        MANIFEST,
        &ClusterOptions {
            agent_flags: &["--vm-engine", "qemu", "--vm-kernel", &kernel],
            registry: true,
            ..ClusterOptions::default()
        },
    );
    let api = cluster.api.clone();
    // TCG boots take seconds each, more on a loaded machine.
    let pods = eventually("four ready replicas", Duration::from_secs(240), || {
        ready_pods(&api).filter(|p| p.len() == 4)
    });
    let on = |node: &str| pods.iter().filter(|p| p.node == node).count();
    assert!(on("n1") >= 1 && on("n2") >= 1, "replicas on both nodes");
    let mut names: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
    names.sort();

    // Pulled, not imported: each node's store has the registry's name.
    let image = format!(
        "{}/example/busybox:1",
        cluster.registry.as_ref().expect("registry").addr
    );
    for node in ["n1", "n2"] {
        let dir = cluster.tmp.join(node).display().to_string();
        let ls = drover(&api, &["image", "ls", "--data-dir", &dir]);
        let listed = String::from_utf8_lossy(&ls.stdout);
        assert!(listed.contains(&image), "{node} pulled {image}: {listed}");
    }

    // Both kinds are in the table, with their nodes.
    let wide = drover(&api, &["get", "pods", "-o", "wide"]);
    let table = String::from_utf8_lossy(&wide.stdout);
    eprintln!("{table}");
    for p in &pods {
        let row = table
            .lines()
            .find(|l| l.starts_with(&p.name))
            .unwrap_or_else(|| panic!("{} in the table", p.name));
        assert!(row.contains(&p.node) && row.contains(&p.ip), "{row}");
    }
    let vms = get_json(&api, &["pods", "-l", "runtime=vm"])
        .and_then(|l| l.get("items")?.as_array().map(Vec::len))
        .unwrap_or(0);
    assert_eq!(vms, 2, "two VM pods");

    // One Service over all four: every replica answers from each node,
    // and the NodePort from outside the cluster.
    eventually("four ready endpoints", Duration::from_secs(30), || {
        (ready_endpoints(&api) == 4).then_some(())
    });
    let svc = get_json(&api, &["service", "web"]).expect("service web");
    let vip = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .expect("clusterIP");
    let node_port = svc
        .pointer("/spec/ports/0/nodePort")
        .and_then(Value::as_i64)
        .expect("nodePort");
    for host in [&cluster.n1, &cluster.n2] {
        let vip_url = format!("http://{vip}/");
        let seen = eventually(
            &format!("all four replicas answer the cluster IP on {}", host.name),
            Duration::from_secs(30),
            || Some(answering(40, || curl_in(host, &vip_url))).filter(|s| *s == names),
        );
        assert_eq!(seen, names);
    }
    let from_outside = format!("http://{}:{node_port}/", cluster.n1.ip);
    let answer = eventually(
        "the NodePort answers outside",
        Duration::from_secs(20),
        || curl_in(&cluster.outside, &from_outside),
    );
    assert!(names.contains(&answer), "{answer} is one of the replicas");
}
