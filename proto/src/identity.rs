//! Who is calling: a user name and groups, as Kubernetes' `user.Info`.
//! Certificates carry it as Kubernetes does: the subject's CN is the user,
//! each O a group. Agents are `node:NAME` (group `drover:nodes`), control
//! plane members `peer:ID` (group `drover:control-plane`).

/// Group every agent's certificate carries.
pub const NODES_GROUP: &str = "drover:nodes";
/// Group of control-plane members (their controllers act as it).
pub const CONTROL_PLANE_GROUP: &str = "drover:control-plane";
/// Group bound to `cluster-admin` from the start, as in Kubernetes.
pub const MASTERS_GROUP: &str = "system:masters";
/// User name prefix of a node agent.
pub const NODE_PREFIX: &str = "node:";
/// User name prefix of a control-plane member.
pub const PEER_PREFIX: &str = "peer:";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

/// Why a certificate names nobody.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the certificate cannot be parsed: {0}")]
    Unparsable(String),
    #[error("the certificate's subject has no common name (the user name)")]
    NoCommonName,
}

impl Identity {
    /// Reads CN (user) and O (groups) from a DER certificate. The chain is
    /// verified by TLS before this is asked.
    pub fn from_certificate_der(der: &[u8]) -> Result<Identity, IdentityError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| IdentityError::Unparsable(e.to_string()))?;
        let subject = cert.subject();
        let user = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .filter(|cn| !cn.is_empty())
            .ok_or(IdentityError::NoCommonName)?
            .to_string();
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .map(str::to_string)
            .collect();
        Ok(Identity { user, groups })
    }

    /// Reads the identity of the first certificate in a PEM file's text.
    pub fn from_certificate_pem(pem: &[u8]) -> Result<Identity, IdentityError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem)
            .map_err(|e| IdentityError::Unparsable(e.to_string()))?;
        Identity::from_certificate_der(&pem.contents)
    }

    /// The member id a `peer:ID` identity proves.
    pub fn peer_id(&self) -> Option<u64> {
        self.user.strip_prefix(PEER_PREFIX)?.parse().ok()
    }

    /// The node a `node:NAME` identity is.
    pub fn node_name(&self) -> Option<&str> {
        self.user
            .strip_prefix(NODE_PREFIX)
            .filter(|_| self.groups.iter().any(|g| g == NODES_GROUP))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_and_node_names_are_read_from_the_user() {
        let peer = Identity {
            user: "peer:3".into(),
            groups: vec![CONTROL_PLANE_GROUP.into()],
        };
        assert_eq!(peer.peer_id(), Some(3));
        assert_eq!(peer.node_name(), None);
        let node = Identity {
            user: "node:web-1".into(),
            groups: vec![NODES_GROUP.into()],
        };
        assert_eq!(node.node_name(), Some("web-1"));
        let impostor = Identity {
            user: "node:web-1".into(),
            groups: vec![],
        };
        assert_eq!(impostor.node_name(), None);
        assert!(Identity::from_certificate_der(b"junk").is_err());
    }
}
