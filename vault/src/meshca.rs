//! The mesh certificate authority: who may speak on the validator mesh.
//!
//! Validators authenticate each other with mutual TLS. The operator runs a
//! small CA (`vault mesh-ca init`) and issues each validator a certificate
//! (`vault mesh-ca issue`) whose subject alternative names carry the
//! validator id as a URI, `urn:pqvault:validator:<id>`, plus the DNS names
//! and IP addresses peers dial. Certificates use ECDSA P-256 signatures;
//! the post-quantum protection of the mesh comes from the hybrid
//! X25519MLKEM768 key exchange (see docs/decisions.md).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::net::IpAddr;
use thiserror::Error;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

/// Prefix of the URI SAN naming a validator.
pub const VALIDATOR_URI_PREFIX: &str = "urn:pqvault:validator:";

/// Why a certificate could not be made or read.
#[derive(Debug, Error)]
pub enum MeshCaError {
    /// rcgen refused the parameters or key.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// The validator id cannot be used in a certificate.
    #[error("invalid validator id {0:?}: use 1-63 characters from a-z 0-9 - (a DNS label)")]
    BadId(String),
    /// A certificate could not be parsed.
    #[error("cannot parse certificate: {0}")]
    Parse(String),
    /// The certificate names no validator, or more than one.
    #[error("certificate has {0} validator ids in its SAN (expected exactly one)")]
    IdCount(usize),
}

/// PEM text of a certificate and its private key (the key zeroized on drop).
pub struct CertAndKey {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// PKCS#8 private key, PEM.
    pub key_pem: Zeroizing<String>,
}

/// Checks that `id` is usable as a validator id in a certificate.
pub fn check_id(id: &str) -> Result<(), MeshCaError> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(MeshCaError::BadId(id.to_string()))
    }
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(i64::from(days));
}

/// Creates a self-signed mesh CA.
pub fn init(common_name: &str, days: u32) -> Result<CertAndKey, MeshCaError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "pqvault mesh");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, days);
    let cert = params.self_signed(&key)?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

/// Issues a validator certificate for `id`, valid for TLS server and client
/// authentication, signed by the CA.
pub fn issue(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    id: &str,
    dns: &[String],
    ips: &[IpAddr],
    days: u32,
) -> Result<CertAndKey, MeshCaError> {
    check_id(id)?;
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, id);
    params.distinguished_name = dn;
    let mut sans = vec![
        SanType::URI(format!("{VALIDATOR_URI_PREFIX}{id}").try_into()?),
        SanType::DnsName(id.to_string().try_into()?),
    ];
    for d in dns {
        sans.push(SanType::DnsName(d.clone().try_into()?));
    }
    sans.extend(ips.iter().copied().map(SanType::IpAddress));
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, days);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

/// The validator id named by a (DER) certificate's URI SAN.
pub fn validator_id(cert_der: &[u8]) -> Result<String, MeshCaError> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| MeshCaError::Parse(e.to_string()))?;
    let ids: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => u.strip_prefix(VALIDATOR_URI_PREFIX).map(str::to_string),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(MeshCaError::Parse(e.to_string())),
    };
    match ids.as_slice() {
        [one] => {
            check_id(one)?;
            Ok(one.clone())
        }
        _ => Err(MeshCaError::IdCount(ids.len())),
    }
}

/// Seconds until a (DER) certificate expires (negative once expired).
pub fn seconds_to_expiry(cert_der: &[u8]) -> Result<i64, MeshCaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| MeshCaError::Parse(e.to_string()))?;
    Ok(cert.validity().not_after.timestamp() - OffsetDateTime::now_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(pem: &str) -> Vec<u8> {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        p.contents
    }

    #[test]
    fn issue_and_read_back_the_id() {
        let ca = init("test mesh CA", 30).unwrap();
        let leaf = issue(
            &ca.cert_pem,
            &ca.key_pem,
            "validator-3",
            &["v3.pqvault.svc".into()],
            &["127.0.0.3".parse().unwrap()],
            10,
        )
        .unwrap();
        let d = der(&leaf.cert_pem);
        assert_eq!(validator_id(&d).unwrap(), "validator-3");
        let left = seconds_to_expiry(&d).unwrap();
        assert!(left > 9 * 86400 && left <= 10 * 86400, "{left}");
        // The CA itself names no validator.
        assert!(matches!(
            validator_id(&der(&ca.cert_pem)),
            Err(MeshCaError::IdCount(0))
        ));
    }

    #[test]
    fn bad_ids_are_refused() {
        let ca = init("test mesh CA", 30).unwrap();
        for id in ["", "Validator", "a_b", "-a", "a.b", &"x".repeat(64)] {
            assert!(
                issue(&ca.cert_pem, &ca.key_pem, id, &[], &[], 1).is_err(),
                "{id:?}"
            );
        }
        assert!(validator_id(b"not a certificate").is_err());
    }
}
