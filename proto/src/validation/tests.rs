use super::*;
use crate::manifest::parse_manifests;

fn admit_yaml(yaml: &str) -> Result<Admitted, AdmitError> {
    let docs = parse_manifests(yaml, "test.yaml").expect("parse");
    admit(docs.into_iter().next().expect("one doc").object)
}

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: example/busybox:1
        resources: {requests: {cpu: 100m, memory: 32Mi}, limits: {memory: 64Mi}}
"#;

#[test]
fn defaults_are_applied() {
    let a = admit_yaml(DEPLOY).unwrap();
    let d = Deployment::from_object(&a.object).unwrap();
    assert_eq!(d.spec.revision_history_limit, 10);
    assert_eq!(d.spec.template.spec.restart_policy, RestartPolicy::Always);
    assert_eq!(d.spec.template.spec.termination_grace_period_seconds, 30);
    assert_eq!(
        d.spec.template.spec.containers[0].image_pull_policy,
        Some(PullPolicy::IfNotPresent)
    );
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
}

use crate::types::pod::{PullPolicy, RestartPolicy};

#[test]
fn errors_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("replicas: 3", "replicas: -1", "spec.replicas: must be >= 0"),
        (
            "app: web}}\n    spec",
            "app: other}}\n    spec",
            "spec.template.metadata.labels",
        ),
        (
            "image: example/busybox:1",
            "image: ''",
            "spec.template.spec.containers[0].image: required",
        ),
        (
            "cpu: 100m",
            "cpu: 100XB",
            "spec.template.spec.containers[0].resources.requests.cpu: invalid quantity",
        ),
        (
            "memory: 32Mi}",
            "memory: 128Mi}",
            "spec.template.spec.containers[0].resources.requests.memory",
        ),
        ("name: web}", "name: Web_1}", "metadata.name"),
        (
            "replicas: 3",
            "replicas: three",
            "spec.replicas: invalid type",
        ),
    ];
    for (from, to, want) in cases {
        let yaml = DEPLOY.replacen(from, to, 1);
        assert_ne!(yaml, DEPLOY, "substitution {from:?} did not apply");
        let err = admit_yaml(&yaml).expect_err(want).to_string();
        assert!(err.contains(want), "{to:?}: got {err:?}, want {want:?}");
    }
}

#[test]
fn unknown_fields_are_warnings() {
    let yaml = DEPLOY.replace("replicas: 3", "replicas: 3\n  frobnicate: true");
    let a = admit_yaml(&yaml).unwrap();
    assert_eq!(
        a.warnings,
        vec!["unknown field \"spec.frobnicate\" ignored"]
    );
}

#[test]
fn services_default_target_port_and_check_ports() {
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n";
    let a = admit_yaml(yaml).unwrap();
    let s = Service::from_object(&a.object).unwrap();
    assert_eq!(
        s.spec.ports[0].target_port,
        Some(crate::meta::IntOrString::Int(80))
    );
    let bad = yaml.replace("port: 80", "port: 70000");
    assert!(
        admit_yaml(&bad)
            .unwrap_err()
            .to_string()
            .contains("spec.ports[0].port")
    );
}

#[test]
fn secrets_merge_string_data() {
    let yaml =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2}\n";
    let s = Secret::from_object(&admit_yaml(yaml).unwrap().object).unwrap();
    assert_eq!(
        s.data.get("password").map(String::as_str),
        Some("aHVudGVyMg==")
    );
    assert!(s.string_data.is_empty());
}

#[test]
fn hpa_checks_bounds() {
    let yaml = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 5\n  maxReplicas: 2\n";
    assert!(
        admit_yaml(yaml)
            .unwrap_err()
            .to_string()
            .contains("spec.maxReplicas")
    );
    let zero = yaml.replace("minReplicas: 5", "minReplicas: 0");
    assert!(admit_yaml(&zero).is_ok());
}

#[test]
fn wrong_api_version_is_refused() {
    let yaml = DEPLOY.replace("apps/v1", "v1");
    assert!(matches!(admit_yaml(&yaml), Err(AdmitError::TypeMeta(_))));
}

const VM_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  runtime: vm
  vmSnapshot: warm-1
  containers:
  - {name: web, image: example/httpd:1}
"#;

#[test]
fn vm_snapshot_needs_a_vm_and_a_name() {
    assert!(admit_yaml(VM_POD).is_ok());
    let err = admit_yaml(&VM_POD.replace("runtime: vm", "runtime: container"))
        .expect_err("container pod")
        .to_string();
    assert!(
        err.contains("spec.vmSnapshot: a snapshot restores a VM"),
        "{err}"
    );
    let err = admit_yaml(&VM_POD.replace("warm-1", "'../etc'"))
        .expect_err("bad name")
        .to_string();
    assert!(err.contains("spec.vmSnapshot"), "{err}");
}
