//! Revoked client certificates (`--crl-file`): a certificate revocation
//! list signed by the cluster CA (`drover cert revoke` writes it). Every
//! TLS listener that takes client certificates verifies them against the
//! current list, and requests on connections opened before a revocation
//! are refused too. The file is polled (see [`super::reload`]) and a new
//! version replaces the list without a restart; one that does not read,
//! parse or verify leaves the last good list in force.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

/// Why a CRL file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error("cannot read the CRL file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CRL file {path} {message}")]
    Invalid { path: PathBuf, message: String },
}

/// One version of the list: what rustls checks at handshakes, and the
/// revoked serial numbers for connections already open.
#[derive(Debug)]
pub struct Crl {
    ders: Vec<CertificateRevocationListDer<'static>>,
    serials: HashSet<Vec<u8>>,
}

impl Crl {
    /// Parses a CRL (PEM `X509 CRL` blocks, or one DER list) and checks it
    /// was signed by the CA whose certificate is `ca_der`.
    pub fn parse(bytes: &[u8], ca_der: &[u8], path: &Path) -> Result<Crl, CrlError> {
        let invalid = |message: String| CrlError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let ders = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            CertificateRevocationListDer::pem_slice_iter(bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(format!("is not a PEM certificate revocation list: {e}")))?
        } else {
            vec![CertificateRevocationListDer::from(bytes.to_vec())]
        };
        if ders.is_empty() {
            return Err(invalid(
                "holds no certificate revocation list (X509 CRL)".into(),
            ));
        }
        let (_, ca) = x509_parser::parse_x509_certificate(ca_der).map_err(|e| {
            invalid(format!(
                "cannot be checked: the CA certificate does not parse: {e}"
            ))
        })?;
        let mut serials = HashSet::new();
        for der in &ders {
            let (_, crl) = x509_parser::parse_x509_crl(der)
                .map_err(|e| invalid(format!("is not a certificate revocation list: {e}")))?;
            if crl.issuer().as_raw() != ca.subject().as_raw() {
                return Err(invalid(format!(
                    "was issued by {:?}, not by the cluster CA {:?}",
                    crl.issuer().to_string(),
                    ca.subject().to_string()
                )));
            }
            crl.verify_signature(ca.public_key()).map_err(|e| {
                invalid(format!(
                    "is not signed by the cluster CA's key ({e}): make it with `drover cert revoke`"
                ))
            })?;
            serials.extend(
                crl.iter_revoked_certificates()
                    .map(|r| normalized_serial(r.raw_serial())),
            );
        }
        Ok(Crl { ders, serials })
    }

    /// Whether a certificate with this serial (DER INTEGER contents) is revoked.
    pub fn revokes(&self, raw_serial: &[u8]) -> bool {
        self.serials.contains(&normalized_serial(raw_serial))
    }

    pub fn len(&self) -> usize {
        self.serials.len()
    }

    pub fn is_empty(&self) -> bool {
        self.serials.is_empty()
    }
}

/// Serial bytes without the leading zero DER adds to keep them positive.
fn normalized_serial(raw: &[u8]) -> Vec<u8> {
    let mut s = raw;
    while s.len() > 1 && s[0] == 0 {
        s = &s[1..];
    }
    s.to_vec()
}

/// The serial number of a DER certificate, as [`Crl::revokes`] takes it.
pub fn certificate_serial(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(normalized_serial(cert.raw_serial()))
}

/// The current revocation list of a server, shared by its listeners.
#[derive(Debug)]
pub struct Revocation {
    path: PathBuf,
    ca_der: Vec<u8>,
    current: RwLock<(u64, Arc<Crl>)>,
}

impl Revocation {
    /// Reads `path` now; errors name the file.
    pub fn load(path: &Path, ca_der: &[u8]) -> Result<Arc<Revocation>, CrlError> {
        let crl = Revocation::read(path, ca_der)?;
        Ok(Arc::new(Revocation {
            path: path.to_path_buf(),
            ca_der: ca_der.to_vec(),
            current: RwLock::new((0, Arc::new(crl))),
        }))
    }

    fn read(path: &Path, ca_der: &[u8]) -> Result<Crl, CrlError> {
        let bytes = std::fs::read(path).map_err(|source| CrlError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Crl::parse(&bytes, ca_der, path)
    }

    /// The list in force and its version (bumped by each reload).
    pub fn current(&self) -> (u64, Arc<Crl>) {
        let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
        (guard.0, guard.1.clone())
    }

    /// Reads the file again; on error the current list stays.
    pub fn reload(&self) -> Result<usize, CrlError> {
        let crl = Revocation::read(&self.path, &self.ca_der)?;
        let revoked = crl.len();
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        *guard = (guard.0 + 1, Arc::new(crl));
        Ok(revoked)
    }

    /// Whether the certificate (DER) is revoked by the list in force.
    pub fn revokes_certificate(&self, der: &[u8]) -> bool {
        certificate_serial(der).is_some_and(|serial| self.current().1.revokes(&serial))
    }

    /// Polls the file and reloads it when it changes. Needs a tokio runtime.
    pub fn spawn_reload(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        super::reload::spawn_watch(self.path.clone(), "--crl-file", move |_| {
            let revoked = this.reload().map_err(|e| e.to_string())?;
            tracing::info!(revoked, "certificate revocation list in force");
            Ok(())
        })
    }
}

/// Verifies client certificates against the CA and the revocation list in
/// force: rustls' WebPKI verifier, rebuilt when the list changes.
#[derive(Debug)]
pub struct RevokingVerifier {
    roots: Arc<RootCertStore>,
    hints: Vec<DistinguishedName>,
    mandatory: bool,
    revocation: Arc<Revocation>,
    built: RwLock<(u64, Arc<dyn ClientCertVerifier>)>,
}

impl RevokingVerifier {
    /// `mandatory`: a connection without a client certificate is refused
    /// (the Raft transport); otherwise it may still use a bearer token.
    pub fn new(
        roots: Arc<RootCertStore>,
        mandatory: bool,
        revocation: Arc<Revocation>,
    ) -> Result<Arc<RevokingVerifier>, rustls::server::VerifierBuilderError> {
        let (version, crl) = revocation.current();
        let inner = webpki_verifier(&roots, mandatory, &crl)?;
        Ok(Arc::new(RevokingVerifier {
            hints: roots.subjects(),
            roots,
            mandatory,
            revocation,
            built: RwLock::new((version, inner)),
        }))
    }

    /// The verifier for the list in force (rebuilt once per new list).
    fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        let (version, crl) = self.revocation.current();
        {
            let built = self.built.read().unwrap_or_else(|e| e.into_inner());
            if built.0 == version {
                return built.1.clone();
            }
        }
        match webpki_verifier(&self.roots, self.mandatory, &crl) {
            Ok(inner) => {
                let mut built = self.built.write().unwrap_or_else(|e| e.into_inner());
                *built = (version, inner.clone());
                inner
            }
            // Parsed and verified on load, so this is not expected; the
            // previous verifier stays.
            Err(e) => {
                tracing::error!(error = %e, "the new revocation list cannot be used");
                self.built
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .1
                    .clone()
            }
        }
    }
}

fn webpki_verifier(
    roots: &Arc<RootCertStore>,
    mandatory: bool,
    crl: &Crl,
) -> Result<Arc<dyn ClientCertVerifier>, rustls::server::VerifierBuilderError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider)
        .with_crls(crl.ders.iter().cloned())
        // The CA is the root of trust; only what it issued is listed.
        .only_check_end_entity_revocation();
    let builder = if mandatory {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build()
}

impl ClientCertVerifier for RevokingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier().supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, IsCa, Issuer,
        KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
    };

    struct Ca {
        der: Vec<u8>,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    fn client(ca: &Ca, serial: u8) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.serial_number = Some(SerialNumber::from_slice(&[serial]));
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.signed_by(&key, &ca.issuer).unwrap().der().clone()
    }

    fn crl(ca: &Ca, serials: &[u8]) -> Vec<u8> {
        let now = time::OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::days(1),
            crl_number: SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&[*s]),
                    revocation_time: now,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&ca.issuer)
            .unwrap()
            .pem()
            .unwrap()
            .into_bytes()
    }

    fn verify(verifier: &RevokingVerifier, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        verifier
            .verify_client_cert(cert, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn listed_certificates_are_refused_and_a_new_list_replaces_the_old() {
        let ca = ca();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crl");
        std::fs::write(&path, crl(&ca, &[7])).unwrap();
        let revocation = Revocation::load(&path, &ca.der).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(ca.der.clone())).unwrap();
        let verifier = RevokingVerifier::new(Arc::new(roots), true, revocation.clone()).unwrap();
        let (seven, eight) = (client(&ca, 7), client(&ca, 8));
        assert_eq!(
            verify(&verifier, &seven),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked
            ))
        );
        assert!(verify(&verifier, &eight).is_ok());
        assert!(revocation.revokes_certificate(&seven));
        // The file changes: 8 is revoked, 7 no longer.
        std::fs::write(&path, crl(&ca, &[8])).unwrap();
        assert_eq!(revocation.reload().unwrap(), 1);
        assert!(verify(&verifier, &seven).is_ok());
        assert!(verify(&verifier, &eight).is_err());
        // A broken version is refused and the last good list stays.
        std::fs::write(
            &path,
            "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
        )
        .unwrap();
        assert!(revocation.reload().is_err());
        assert!(verify(&verifier, &eight).is_err());
    }

    #[test]
    fn lists_that_are_not_the_cas_are_refused_naming_the_file() {
        let (ca, other) = (ca(), ca());
        let path = Path::new("/etc/drover/ca.crl");
        let e = Crl::parse(&crl(&other, &[1]), &ca.der, path).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the CRL file /etc/drover/ca.crl "),
            "{e}"
        );
        let e = Crl::parse(b"junk", &ca.der, path).unwrap_err().to_string();
        assert!(e.contains("is not a certificate revocation list"), "{e}");
        let e = Crl::parse(b"-----BEGIN CERTIFICATE-----\n", &ca.der, path).unwrap_err();
        assert!(e.to_string().contains("/etc/drover/ca.crl"), "{e}");
        assert!(Crl::parse(&crl(&ca, &[1, 2]), &ca.der, path).unwrap().len() == 2);
        assert!(certificate_serial(b"junk").is_none());
    }
}
