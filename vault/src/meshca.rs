//! The mesh certificate authority: who may speak on the validator mesh.
//!
//! Validators authenticate each other with mutual TLS. The operator runs a
//! small CA (`vault mesh-ca init`) and issues each validator a certificate
//! (`vault mesh-ca issue`) whose subject alternative names carry the
//! validator id as a URI, `urn:pqvault:validator:<id>`, plus the DNS names
//! and IP addresses peers dial. Since format 2 of the SAN (docs/formats.md,
//! "Mesh certificates") it also binds the member to its long-term pqvault
//! identity, `urn:pqvault:identity:<fingerprint hex>`, and to a role,
//! `urn:pqvault:role:validator` or `urn:pqvault:role:operator`: a peer's
//! identity is whatever the CA signed, never what the peer answers.
//! Certificates use ECDSA P-256 signatures;
//! the post-quantum protection of the mesh comes from the hybrid
//! X25519MLKEM768 key exchange (see docs/decisions.md).

use crate::identity::Fingerprint;
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

/// Prefix of the URI SAN binding the identity fingerprint.
pub const IDENTITY_URI_PREFIX: &str = "urn:pqvault:identity:";

/// Prefix of the URI SAN naming the member's role.
pub const ROLE_URI_PREFIX: &str = "urn:pqvault:role:";

/// What a certificate's holder may do on the mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A validator: holds shards, votes, helps, deals, may be a spare.
    Validator,
    /// The operator's client: read-only status and recovery requests; never
    /// a voter, helper, dealer or spare.
    Operator,
}

impl Role {
    /// The name in the SAN and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Validator => "validator",
            Role::Operator => "operator",
        }
    }

    fn parse(s: &str) -> Result<Role, MeshCaError> {
        match s {
            "validator" => Ok(Role::Validator),
            "operator" => Ok(Role::Operator),
            other => Err(MeshCaError::Binding(format!("unknown role {other:?}"))),
        }
    }
}

impl core::str::FromStr for Role {
    type Err = MeshCaError;
    fn from_str(s: &str) -> Result<Role, MeshCaError> {
        Role::parse(s)
    }
}

/// What a mesh certificate says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshName {
    /// Member id.
    pub id: String,
    /// Fingerprint of the member's long-term pqvault identity; `None` for
    /// a certificate issued before identities were bound (re-issue it).
    pub identity: Option<Fingerprint>,
    /// Role; `None` for a certificate issued before roles (a validator).
    pub role: Option<Role>,
}

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
    /// The identity or role SAN is malformed or repeated.
    #[error("certificate identity binding: {0}")]
    Binding(String),
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

/// Issues a certificate for member `id` bound to the identity `identity`
/// in `role`, valid for TLS server and client authentication, signed by
/// the CA.
#[allow(clippy::too_many_arguments)]
pub fn issue(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    id: &str,
    identity: &Fingerprint,
    role: Role,
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
        SanType::URI(format!("{IDENTITY_URI_PREFIX}{}", identity.to_hex()).try_into()?),
        SanType::URI(format!("{ROLE_URI_PREFIX}{}", role.name()).try_into()?),
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
    Ok(mesh_name(cert_der)?.id)
}

/// Everything a (DER) certificate's URI SANs say about its holder: exactly
/// one member id, at most one identity fingerprint and at most one role.
pub fn mesh_name(cert_der: &[u8]) -> Result<MeshName, MeshCaError> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| MeshCaError::Parse(e.to_string()))?;
    let uris: Vec<&str> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some(*u),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(MeshCaError::Parse(e.to_string())),
    };
    let with = |prefix: &str| -> Vec<&str> {
        uris.iter().filter_map(|u| u.strip_prefix(prefix)).collect()
    };
    let id = match with(VALIDATOR_URI_PREFIX).as_slice() {
        [one] => {
            check_id(one)?;
            one.to_string()
        }
        ids => return Err(MeshCaError::IdCount(ids.len())),
    };
    let identity = match with(IDENTITY_URI_PREFIX).as_slice() {
        [] => None,
        [hex] => {
            let bytes: [u8; 32] = hex::decode(hex)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    MeshCaError::Binding(format!("identity {hex:?} is not 64 hex digits"))
                })?;
            Some(Fingerprint::from_bytes(bytes))
        }
        many => {
            return Err(MeshCaError::Binding(format!(
                "{} identities (expected at most one)",
                many.len()
            )))
        }
    };
    let role = match with(ROLE_URI_PREFIX).as_slice() {
        [] => None,
        [r] => Some(Role::parse(r)?),
        many => {
            return Err(MeshCaError::Binding(format!(
                "{} roles (expected at most one)",
                many.len()
            )))
        }
    };
    Ok(MeshName { id, identity, role })
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
        let fp = Fingerprint::from_bytes([7; 32]);
        let leaf = issue(
            &ca.cert_pem,
            &ca.key_pem,
            "validator-3",
            &fp,
            Role::Validator,
            &["v3.pqvault.svc".into()],
            &["127.0.0.3".parse().unwrap()],
            10,
        )
        .unwrap();
        let d = der(&leaf.cert_pem);
        assert_eq!(validator_id(&d).unwrap(), "validator-3");
        assert_eq!(
            mesh_name(&d).unwrap(),
            MeshName {
                id: "validator-3".into(),
                identity: Some(fp),
                role: Some(Role::Validator)
            }
        );
        let op = issue(
            &ca.cert_pem,
            &ca.key_pem,
            "ops",
            &fp,
            Role::Operator,
            &[],
            &[],
            1,
        )
        .unwrap();
        assert_eq!(
            mesh_name(&der(&op.cert_pem)).unwrap().role,
            Some(Role::Operator)
        );
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
                issue(
                    &ca.cert_pem,
                    &ca.key_pem,
                    id,
                    &Fingerprint::from_bytes([1; 32]),
                    Role::Validator,
                    &[],
                    &[],
                    1
                )
                .is_err(),
                "{id:?}"
            );
        }
        assert!(validator_id(b"not a certificate").is_err());
    }
}
