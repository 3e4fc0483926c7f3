//! The CA's certificate revocation list (`drover cert revoke`): the
//! serials already listed stay, new ones are added, and the list is signed
//! again with the next CRL number. Pure: PEM in, PEM out.

use std::time::Duration;

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;

use super::{Pem, PkiError};

/// How long a list says it is current. Servers do not enforce it (a list
/// is in force until replaced); clients that do are told to look again
/// within a year.
const NEXT_UPDATE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a certificate cannot be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("not a PEM certificate: {0}")]
    Certificate(String),
    #[error("the CA certificate does not parse: {0}")]
    Ca(String),
    #[error("was not issued by this CA (its signature does not verify with ca.crt's key)")]
    OtherCa,
    #[error("the existing revocation list does not parse: {0}")]
    ExistingList(String),
    #[error("--serial {0:?} is not a hexadecimal serial number (like 3f:a2:... or 3fa2...)")]
    Serial(String),
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// The serial number of a certificate (PEM) the CA issued.
pub fn serial_of(ca: &Pem, cert_pem: &str) -> Result<Vec<u8>, RevokeError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| RevokeError::Certificate(e.to_string()))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| RevokeError::Certificate(e.to_string()))?;
    let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca.cert.as_bytes())
        .map_err(|e| RevokeError::Ca(e.to_string()))?;
    let ca_cert = ca_pem
        .parse_x509()
        .map_err(|e| RevokeError::Ca(e.to_string()))?;
    cert.verify_signature(Some(ca_cert.public_key()))
        .map_err(|_| RevokeError::OtherCa)?;
    Ok(trim_zeros(cert.raw_serial()))
}

/// Parses `--serial`: hex digits, optionally separated by colons.
pub fn parse_serial(text: &str) -> Result<Vec<u8>, RevokeError> {
    let digits: String = text
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let padded = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits
    };
    match hex::decode(&padded) {
        Ok(bytes) if !bytes.is_empty() => Ok(trim_zeros(&bytes)),
        _ => Err(RevokeError::Serial(text.to_string())),
    }
}

/// Colon-separated hex, as `openssl x509 -serial` shows it (without colons).
pub fn display_serial(serial: &[u8]) -> String {
    serial
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn trim_zeros(raw: &[u8]) -> Vec<u8> {
    let mut s = raw;
    while s.len() > 1 && s[0] == 0 {
        s = &s[1..];
    }
    s.to_vec()
}

/// What a revocation list holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Listed {
    pub crl_number: Vec<u8>,
    pub revoked: Vec<(Vec<u8>, OffsetDateTime)>,
}

/// Reads an existing list (PEM).
pub fn read_list(crl_pem: &str) -> Result<Listed, RevokeError> {
    let bad = |e: String| RevokeError::ExistingList(e);
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(crl_pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let (_, crl) = x509_parser::parse_x509_crl(&pem.contents).map_err(|e| bad(e.to_string()))?;
    Ok(Listed {
        crl_number: crl
            .crl_number()
            .map(|n| n.to_bytes_be())
            .unwrap_or_default(),
        revoked: crl
            .iter_revoked_certificates()
            .map(|r| (trim_zeros(r.raw_serial()), r.revocation_date.to_datetime()))
            .collect(),
    })
}

/// A new list signed by the CA: what `existing` listed plus `serials`
/// (each revoked at `now` unless already listed), numbered one higher.
pub fn revoke(
    ca: &Pem,
    existing: Option<&str>,
    serials: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<(String, usize), RevokeError> {
    let mut listed = match existing {
        Some(pem) => read_list(pem)?,
        None => Listed::default(),
    };
    for serial in serials {
        if !listed.revoked.iter().any(|(s, _)| s == serial) {
            listed.revoked.push((serial.clone(), now));
        }
    }
    let number = next_number(&listed.crl_number);
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + NEXT_UPDATE,
        crl_number: SerialNumber::from_slice(&number),
        issuing_distribution_point: None,
        revoked_certs: listed
            .revoked
            .iter()
            .map(|(serial, at)| RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time: *at,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let key = KeyPair::from_pem(&ca.key).map_err(PkiError::Ca)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, key).map_err(PkiError::Ca)?;
    let crl = params.signed_by(&issuer).map_err(PkiError::Generate)?;
    Ok((crl.pem().map_err(PkiError::Generate)?, listed.revoked.len()))
}

/// `n + 1` for a big-endian unsigned number (empty is zero).
fn next_number(n: &[u8]) -> Vec<u8> {
    let mut out = n.to_vec();
    for byte in out.iter_mut().rev() {
        if *byte == 0xff {
            *byte = 0;
        } else {
            *byte += 1;
            return out;
        }
    }
    out.insert(0, 1);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{CertKind, CertRequest, issue, new_ca};

    fn user(ca: &Pem, name: &str) -> Pem {
        let request = CertRequest {
            kind: CertKind::User,
            name: name.into(),
            hosts: vec![],
            groups: vec![],
            not_before: OffsetDateTime::now_utc(),
            validity: Duration::from_secs(3600),
        };
        issue(ca, &request).unwrap()
    }

    #[test]
    fn revoking_adds_to_the_list_and_keeps_what_was_there() {
        let now = OffsetDateTime::now_utc();
        let ca = new_ca(now, Duration::from_secs(3600)).unwrap();
        let (alice, bob) = (user(&ca, "alice"), user(&ca, "bob"));
        let a = serial_of(&ca, &alice.cert).unwrap();
        let b = serial_of(&ca, &bob.cert).unwrap();
        assert_ne!(a, b);
        let (first, n) = revoke(&ca, None, std::slice::from_ref(&a), now).unwrap();
        assert_eq!(n, 1);
        let (second, n) = revoke(&ca, Some(&first), &[b.clone(), a.clone()], now).unwrap();
        assert_eq!(n, 2, "a serial is listed once");
        let listed = read_list(&second).unwrap();
        assert_eq!(listed.crl_number, vec![2]);
        let serials: Vec<_> = listed.revoked.iter().map(|(s, _)| s.clone()).collect();
        assert_eq!(serials, vec![a.clone(), b]);
        // A certificate of another CA is not this CA's to revoke.
        let other = new_ca(now, Duration::from_secs(3600)).unwrap();
        let stranger = user(&other, "alice");
        assert!(matches!(
            serial_of(&ca, &stranger.cert),
            Err(RevokeError::OtherCa)
        ));
        assert!(matches!(
            read_list("junk"),
            Err(RevokeError::ExistingList(_))
        ));
    }

    #[test]
    fn serials_read_as_openssl_prints_them() {
        assert_eq!(parse_serial("3F:A2").unwrap(), vec![0x3f, 0xa2]);
        assert_eq!(parse_serial("0x0fa2").unwrap(), vec![0x0f, 0xa2]);
        assert_eq!(parse_serial("fa2").unwrap(), vec![0x0f, 0xa2]);
        assert!(parse_serial("xyz").is_err());
        assert!(parse_serial("").is_err());
        assert_eq!(display_serial(&[0x3f, 0xa2]), "3f:a2");
        assert_eq!(next_number(&[]), vec![1]);
        assert_eq!(next_number(&[0x01, 0xff]), vec![0x02, 0x00]);
        assert_eq!(next_number(&[0xff]), vec![0x01, 0x00]);
    }
}
