//! The server's signer for agents joining with a token (`--ca-key`).

use std::time::Duration;

use drover_control_plane::auth::join::NodeSigner;
use time::OffsetDateTime;

use super::{CertKind, CertRequest, Pem, sign_csr};

/// How long a joined node's certificate lasts (as `drover cert issue`'s default).
const VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Signs `node:NAME` certificates with the cluster CA.
pub struct CaSigner {
    pub ca: Pem,
}

impl CaSigner {
    /// Checks at start that the CA certificate and key are usable together.
    pub fn new(ca: Pem) -> Result<CaSigner, super::PkiError> {
        let key = rcgen::KeyPair::from_pem(&ca.key).map_err(super::PkiError::Ca)?;
        rcgen::Issuer::from_ca_cert_pem(&ca.cert, key).map_err(super::PkiError::Ca)?;
        Ok(CaSigner { ca })
    }
}

impl NodeSigner for CaSigner {
    fn sign_node(&self, node: &str, csr_pem: &str) -> Result<String, String> {
        let request = CertRequest {
            kind: CertKind::Agent,
            name: node.to_string(),
            hosts: vec![],
            groups: vec![],
            not_before: OffsetDateTime::now_utc(),
            validity: VALIDITY,
        };
        sign_csr(&self.ca, &request, csr_pem).map_err(|e| e.to_string())
    }
}
