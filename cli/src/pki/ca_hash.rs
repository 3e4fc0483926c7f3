//! kubeadm's CA pinning: `sha256:HEX` of the CA certificate's public key
//! (its DER SubjectPublicKeyInfo). A joining agent fetches the CA without
//! trusting it, and uses it only if the hash matches the one it was given.

use sha2::{Digest, Sha256};

/// The pin of the first certificate in `pem`.
pub fn ca_cert_hash(pem: &[u8]) -> Result<String, String> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let digest = Sha256::digest(cert.tbs_certificate.subject_pki.raw);
    Ok(format!("sha256:{}", hex(&digest)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks the form of a `--ca-cert-hash`, returning it normalised.
pub fn parse_pin(pin: &str) -> Result<String, String> {
    let hex = pin.trim().strip_prefix("sha256:").ok_or_else(|| {
        format!("--ca-cert-hash {pin:?}: expected sha256:HEX (`drover cert ca-hash`)")
    })?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "--ca-cert-hash {pin:?}: expected 64 hex digits after sha256:"
        ));
    }
    Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_hashes_stably_and_pins_are_checked() {
        let now = time::OffsetDateTime::now_utc();
        let ca = super::super::new_ca(now, std::time::Duration::from_secs(3600)).unwrap();
        let other = super::super::new_ca(now, std::time::Duration::from_secs(3600)).unwrap();
        let pin = ca_cert_hash(ca.cert.as_bytes()).unwrap();
        assert_eq!(pin, ca_cert_hash(ca.cert.as_bytes()).unwrap());
        assert_ne!(pin, ca_cert_hash(other.cert.as_bytes()).unwrap());
        assert_eq!(
            parse_pin(&pin.to_uppercase().replace("SHA256", "sha256")),
            Ok(pin)
        );
        assert!(parse_pin("md5:abc").is_err());
        assert!(parse_pin("sha256:abc").is_err());
        assert!(ca_cert_hash(b"junk").is_err());
    }
}
