//! Kubernetes' NodeRestriction: an agent (`node:NAME`) may write only its
//! own Node and the pods bound to it, whatever its role allows. Pure.

use drover_proto::Kind;

/// A node tried to write what is not its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeRestricted {
    #[error("node {node:?} may only modify its own Node object, not {name:?}")]
    OtherNode { node: String, name: String },
    #[error("node {node:?} may only modify pods bound to it; pod {pod:?} is {bound}")]
    OtherPod {
        node: String,
        pod: String,
        bound: String,
    },
}

/// Checks a write by node `node` to `kind/name`; `bound_to` is the stored
/// pod's `spec.nodeName` (pods only).
pub fn check_node_write(
    node: &str,
    kind: Kind,
    name: &str,
    bound_to: Option<&str>,
) -> Result<(), NodeRestricted> {
    match kind {
        Kind::Node if name != node => Err(NodeRestricted::OtherNode {
            node: node.to_string(),
            name: name.to_string(),
        }),
        Kind::Pod if bound_to != Some(node) => Err(NodeRestricted::OtherPod {
            node: node.to_string(),
            pod: name.to_string(),
            bound: match bound_to {
                Some(other) => format!("bound to {other:?}"),
                None => "not bound to a node".to_string(),
            },
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_writes_only_itself_and_its_pods() {
        assert!(check_node_write("n1", Kind::Node, "n1", None).is_ok());
        assert!(check_node_write("n1", Kind::Pod, "web", Some("n1")).is_ok());
        assert!(check_node_write("n1", Kind::Event, "e", None).is_ok());
        let e = check_node_write("n1", Kind::Node, "n2", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "node \"n1\" may only modify its own Node object, not \"n2\""
        );
        let e = check_node_write("n1", Kind::Pod, "web", Some("n2")).unwrap_err();
        assert!(
            e.to_string().ends_with("pod \"web\" is bound to \"n2\""),
            "{e}"
        );
        assert!(check_node_write("n1", Kind::Pod, "web", None).is_err());
    }
}
