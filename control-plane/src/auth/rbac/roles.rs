//! The built-in roles and the bindings every cluster starts with.

use drover_proto::identity::{CONTROL_PLANE_GROUP, MASTERS_GROUP, NODES_GROUP};

use super::{Binding, Role, Rule, Subject};

/// What people deploy with: everything namespaced but Events' history
/// (Kubernetes' `edit`, which also cannot touch RBAC or nodes).
const WORKLOADS: &[&str] = &[
    "pods",
    "pods/log",
    "services",
    "endpoints",
    "configmaps",
    "deployments",
    "deployments/scale",
    "replicasets",
    "replicasets/scale",
    "horizontalpodautoscalers",
    "events",
];
const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "update", "delete"];

/// `cluster-admin`, `edit`, `view`, and `system:node` (what agents need).
pub fn builtin_roles() -> Vec<Role> {
    let role = |name: &str, rules: Vec<Rule>| Role {
        name: name.to_string(),
        rules,
    };
    vec![
        role("cluster-admin", vec![Rule::new(&["*"], &["*"])]),
        role(
            "edit",
            vec![
                Rule::new(READ, WORKLOADS),
                Rule::new(WRITE, WORKLOADS),
                // Secrets, exec and VM snapshots (which hold a guest's
                // memory) reach what runs; `view` gets none of them.
                Rule::new(READ, &["secrets"]),
                Rule::new(WRITE, &["secrets"]),
                Rule::new(&["create"], &["pods/exec", "pods/snapshot"]),
                Rule::new(READ, &["namespaces"]),
            ],
        ),
        role(
            "view",
            vec![Rule::new(READ, WORKLOADS), Rule::new(READ, &["namespaces"])],
        ),
        role(
            "system:node",
            vec![
                Rule::new(
                    READ,
                    &[
                        "pods",
                        "nodes",
                        "services",
                        "endpoints",
                        "configmaps",
                        "secrets",
                        "namespaces",
                    ],
                ),
                Rule::new(&["create", "update"], &["nodes", "nodes/status"]),
                Rule::new(&["update"], &["pods/status"]),
                // The agent finishes a pod's deletion once it has stopped it.
                Rule::new(&["delete"], &["pods"]),
                Rule::new(&["create", "update"], &["events"]),
            ],
        ),
    ]
}

/// As in Kubernetes: `system:masters` are cluster admins; control-plane
/// members (their controllers and scheduler) too; agents get `system:node`.
pub fn builtin_bindings() -> Vec<Binding> {
    let bind = |name: &str, role: &str, group: &str| Binding {
        name: name.to_string(),
        namespace: None,
        role: role.to_string(),
        subjects: vec![Subject::Group(group.to_string())],
    };
    vec![
        bind("cluster-admin", "cluster-admin", MASTERS_GROUP),
        bind("system:control-plane", "cluster-admin", CONTROL_PLANE_GROUP),
        bind("system:node", "system:node", NODES_GROUP),
    ]
}
