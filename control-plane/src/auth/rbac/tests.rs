use drover_proto::identity::Identity;

use super::*;

const POLICY: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: viewers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects:
- {kind: User, name: alice}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs, namespace: team}
roleRef: {kind: ClusterRole, name: edit}
subjects:
- {kind: Group, name: devs}
"#;

fn who(user: &str, groups: &[&str]) -> Identity {
    Identity {
        user: user.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn at<'a>(verb: &'a str, resource: &'a str, namespace: &'a str) -> Attributes<'a> {
    Attributes {
        verb,
        resource,
        namespace,
    }
}

fn authorizer() -> Authorizer {
    let roles = builtin_roles();
    let names = roles.iter().map(|r| r.name.as_str());
    Authorizer::new(parse_policy(POLICY, "policy.yaml", names).unwrap())
}

#[test]
fn roles_grant_what_they_say_and_nothing_else() {
    let a = authorizer();
    let alice = who("alice", &[]);
    let bob = who("bob", &["devs"]);
    let admin = who("root", &["system:masters"]);
    let node = who("node:n1", &["drover:nodes"]);
    let cases = [
        (&alice, at("list", "pods", ""), true),
        (&alice, at("get", "pods", "team"), true),
        (&alice, at("create", "pods", "default"), false),
        (&alice, at("create", "pods/exec", "default"), false),
        (&alice, at("get", "secrets", "default"), false),
        (&bob, at("create", "deployments", "team"), true),
        (&bob, at("create", "pods/exec", "team"), true),
        (&bob, at("create", "deployments", "default"), false),
        (&bob, at("list", "pods", ""), false),
        (&admin, at("delete", "nodes", ""), true),
        (&node, at("update", "pods/status", "default"), true),
        (&node, at("update", "pods", "default"), false),
        (&node, at("create", "deployments", "default"), false),
    ];
    for (who, attrs, allowed) in cases {
        assert_eq!(
            a.authorize(who, &attrs).is_ok(),
            allowed,
            "{} {attrs:?}",
            who.user
        );
    }
}

#[test]
fn a_denial_names_the_missing_rule() {
    let e = authorizer()
        .authorize(&who("alice", &[]), &at("create", "pods", "default"))
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "user \"alice\" cannot create resource \"pods\" in the namespace \"default\""
        ),
        "{e}"
    );
}

#[test]
fn bad_bindings_are_named_by_document_and_field() {
    let roles = builtin_roles();
    let names = || roles.iter().map(|r| r.name.as_str());
    let e = parse_policy(
        "kind: RoleBinding\nroleRef: {name: view}\n",
        "p.yaml",
        names(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.yaml#1: a RoleBinding needs metadata.namespace"
    );
    let e = parse_policy(
        "kind: ClusterRoleBinding\nroleRef: {name: root}\n",
        "p.yaml",
        names(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("roleRef.name: no role \"root\""),
        "{e}"
    );
    let e = parse_policy(
        "kind: ClusterRoleBinding\nroleRef: {name: view}\nsubjects: [{kind: Robot, name: x}]\n",
        "p.yaml",
        names(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("subjects[0].kind"), "{e}");
    assert!(parse_policy(": : :", "p.yaml", names()).is_err());
}
