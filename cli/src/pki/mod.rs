//! The cluster's certificate authority: makes the CA and issues server,
//! peer, agent and user certificates whose subject carries the identity
//! the API authenticates (CN = user, O = groups, as Kubernetes reads them).
//! Pure: PEM in, PEM out; `cmd::cert` does the files.

pub mod ca_hash;
pub mod crl;
pub mod node_signer;

use std::net::IpAddr;
use std::time::Duration;

use drover_proto::identity::{CONTROL_PLANE_GROUP, NODE_PREFIX, NODES_GROUP, PEER_PREFIX};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

/// Common name of every Drover cluster CA.
const CA_NAME: &str = "drover-ca";

/// A certificate and its private key, PEM encoded.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// What a certificate is for; decides its identity and key usages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CertKind {
    /// An API server (a single server, or `drover dev`).
    Server,
    /// A member of a replicated control plane: `peer:ID`, used for both its
    /// API and its Raft transport.
    Peer,
    /// A node agent: `node:NAME` in group `drover:nodes`.
    Agent,
    /// A person or a program: CN = name, O = each group.
    User,
}

/// One certificate to issue.
#[derive(Debug, Clone)]
pub struct CertRequest {
    pub kind: CertKind,
    pub name: String,
    /// DNS names and IP addresses a server, peer or agent answers on
    /// (servers and peers always get loopback and `localhost`, for the
    /// server's own controllers; agents their node name, which the API
    /// server dials them by).
    pub hosts: Vec<String>,
    pub groups: Vec<String>,
    pub not_before: OffsetDateTime,
    pub validity: Duration,
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("--name must not be empty")]
    EmptyName,
    #[error("--name {0:?}: a peer is named by its member id (1, 2, 3...)")]
    PeerName(String),
    #[error(
        "--groups {0:?}: a certificate carries one group (its O); bind roles to the user, or give it a token with several groups"
    )]
    TooManyGroups(String),
    #[error("--hosts {0:?} is neither a DNS name nor an IP address")]
    Host(String),
    #[error("the CA certificate or key is not usable: {0}")]
    Ca(rcgen::Error),
    #[error("not a usable certificate signing request: {0}")]
    Csr(rcgen::Error),
    #[error("cannot make the certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A new self-signed CA.
pub fn new_ca(not_before: OffsetDateTime, validity: Duration) -> Result<Pem, PkiError> {
    let key = KeyPair::generate()?;
    let cert = ca_params(not_before, validity).self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn ca_params(not_before: OffsetDateTime, validity: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before;
    params.not_after = not_before + validity;
    params
}

/// The subject a request gets: its user name and groups.
pub fn subject(request: &CertRequest) -> Result<(String, Vec<String>), PkiError> {
    let name = request.name.trim();
    if name.is_empty() {
        return Err(PkiError::EmptyName);
    }
    Ok(match request.kind {
        CertKind::Server => (name.to_string(), vec![CONTROL_PLANE_GROUP.to_string()]),
        CertKind::Peer => {
            if name.parse::<u64>().map_or(true, |id| id == 0) {
                return Err(PkiError::PeerName(name.to_string()));
            }
            (
                format!("{PEER_PREFIX}{name}"),
                vec![CONTROL_PLANE_GROUP.to_string()],
            )
        }
        CertKind::Agent => (
            format!("{NODE_PREFIX}{name}"),
            vec![NODES_GROUP.to_string()],
        ),
        CertKind::User if request.groups.len() > 1 => {
            return Err(PkiError::TooManyGroups(request.groups.join(",")));
        }
        CertKind::User => (name.to_string(), request.groups.clone()),
    })
}

/// File stem for a certificate: its user name with `:` as `-`
/// (`peer-1`, `node-web1`, `alice`).
pub fn file_stem(user: &str) -> String {
    user.replace(':', "-")
}

/// Issues a certificate signed by the CA, with a new key.
pub fn issue(ca: &Pem, request: &CertRequest) -> Result<Pem, PkiError> {
    let key = KeyPair::generate()?;
    Ok(Pem {
        cert: sign(ca, request, &key)?,
        key: key.serialize_pem(),
    })
}

/// Signs a certificate for the public key of a CSR (a joining agent keeps
/// its key); the identity is the request's, whatever the CSR's subject says.
pub fn sign_csr(ca: &Pem, request: &CertRequest, csr_pem: &str) -> Result<String, PkiError> {
    let csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem).map_err(PkiError::Csr)?;
    sign(ca, request, &csr.public_key)
}

/// A new key pair and a CSR for it (the subject is left to the signer).
pub fn new_csr() -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let csr = CertificateParams::default().serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

fn sign(
    ca: &Pem,
    request: &CertRequest,
    public_key: &impl rcgen::PublicKeyData,
) -> Result<String, PkiError> {
    let (user, groups) = subject(request)?;
    let ca_key = KeyPair::from_pem(&ca.key).map_err(PkiError::Ca)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key).map_err(PkiError::Ca)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, user);
    for g in &groups {
        params
            .distinguished_name
            .push(DnType::OrganizationName, g.as_str());
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = request.not_before;
    params.not_after = request.not_before + request.validity;
    // Servers and peers also dial (the server's controllers call its API,
    // peers call each other), so they are clients too; agents serve logs
    // and exec to the API server, which dials them by node name.
    params.extended_key_usages = match request.kind {
        CertKind::Server | CertKind::Peer | CertKind::Agent => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        CertKind::User => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    let served_names = match request.kind {
        CertKind::Server | CertKind::Peer => ["localhost", "127.0.0.1", "::1"]
            .map(str::to_string)
            .to_vec(),
        CertKind::Agent => vec![request.name.trim().to_string()],
        CertKind::User => vec![],
    };
    if request.kind != CertKind::User {
        for host in request.hosts.iter().chain(served_names.iter()) {
            let san = san(host)?;
            if !params.subject_alt_names.contains(&san) {
                params.subject_alt_names.push(san);
            }
        }
    }
    Ok(params.signed_by(public_key, &issuer)?.pem())
}

fn san(host: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let label_ok =
        |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let wildcard = host.strip_prefix("*.").unwrap_or(host);
    if !wildcard.split('.').all(label_ok) {
        return Err(PkiError::Host(host.to_string()));
    }
    let dns = host
        .try_into()
        .map_err(|_| PkiError::Host(host.to_string()))?;
    Ok(SanType::DnsName(dns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_proto::identity::Identity;

    fn request(kind: CertKind, name: &str) -> CertRequest {
        CertRequest {
            kind,
            name: name.into(),
            hosts: vec!["10.0.0.1".into(), "cp.example".into()],
            groups: vec!["dev".into()],
            not_before: OffsetDateTime::now_utc(),
            validity: Duration::from_secs(3600),
        }
    }

    fn identity(pem: &Pem) -> Identity {
        Identity::from_certificate_pem(pem.cert.as_bytes()).expect("identity")
    }

    #[test]
    fn identities_are_written_as_kubernetes_reads_them() {
        let ca = new_ca(OffsetDateTime::now_utc(), Duration::from_secs(3600)).unwrap();
        let user = issue(&ca, &request(CertKind::User, "alice")).unwrap();
        let id = identity(&user);
        assert_eq!(
            (id.user.as_str(), id.groups.clone()),
            ("alice", vec!["dev".into()])
        );
        let mut two = request(CertKind::User, "bob");
        two.groups = vec!["dev".into(), "ops".into()];
        assert!(matches!(issue(&ca, &two), Err(PkiError::TooManyGroups(_))));
        let agent = identity(&issue(&ca, &request(CertKind::Agent, "web-1")).unwrap());
        assert_eq!(agent.node_name(), Some("web-1"));
        let peer = identity(&issue(&ca, &request(CertKind::Peer, "2")).unwrap());
        assert_eq!(peer.peer_id(), Some(2));
        assert!(matches!(
            issue(&ca, &request(CertKind::Peer, "two")),
            Err(PkiError::PeerName(_))
        ));
        assert!(matches!(
            issue(&ca, &request(CertKind::Server, "api")).map(|_| ()),
            Ok(())
        ));
        let (csr, key) = new_csr().unwrap();
        let signed = sign_csr(&ca, &request(CertKind::Agent, "web-2"), &csr).unwrap();
        let id = Identity::from_certificate_pem(signed.as_bytes()).unwrap();
        assert_eq!(id.node_name(), Some("web-2"));
        assert!(KeyPair::from_pem(&key).is_ok());
        assert!(matches!(
            sign_csr(&ca, &request(CertKind::Agent, "x"), "junk"),
            Err(PkiError::Csr(_))
        ));
        let mut bad = request(CertKind::Server, "api");
        bad.hosts = vec!["not a host".into()];
        assert!(matches!(issue(&ca, &bad), Err(PkiError::Host(_))));
    }
}
