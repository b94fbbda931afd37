//! One rustls configuration for the mesh, server and client side.
//!
//! aws-lc-rs provider, TLS 1.3 only, and a single key-exchange group:
//! X25519MLKEM768 (hybrid post-quantum). Every peer in the mesh runs this
//! code, so there is no classical fallback to downgrade to. Both sides
//! present certificates from the mesh CA; the validator id is read from the
//! certificate's URI SAN and checked against the membership.

use rustls::crypto::aws_lc_rs::{self, kx_group};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;
use vault::identity::Fingerprint;
use vault::meshca::{MeshName, Role};

/// The key-exchange group the mesh requires, as rustls names it.
pub const MESH_KX_GROUP: &str = "X25519MLKEM768";

/// Why TLS material could not be loaded.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A PEM file is missing, unreadable or empty.
    #[error("{what} {path}: {reason}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the configuration (e.g. key does not match cert).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(String),
    /// Our own certificate names no validator id, or another one.
    #[error("own certificate: {0}")]
    OwnId(String),
}

/// Verifies a server certificate against the mesh CA under the name the
/// certificate itself carries: used only to learn who answers at an
/// address found by DNS discovery. The id learned is then checked against
/// nothing but the CA, so discovery admits any holder of a mesh
/// certificate (docs/decisions.md D13).
#[derive(Debug)]
struct LearnIdVerifier(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for LearnIdVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let id = vault::meshca::validator_id(end_entity)
            .map_err(|e| rustls::Error::General(format!("no validator id: {e}")))?;
        let name = rustls_pki_types::ServerName::try_from(id)
            .map_err(|e| rustls::Error::General(format!("validator id: {e}")))?;
        self.0
            .verify_server_cert(end_entity, intermediates, &name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The crypto provider every mesh connection uses.
pub fn provider() -> Arc<CryptoProvider> {
    let mut p = aws_lc_rs::default_provider();
    p.kx_groups = vec![kx_group::X25519MLKEM768];
    Arc::new(p)
}

/// Loaded TLS material and the two configurations built from it.
pub struct MeshTls {
    /// Server side (peer API), requiring client certificates.
    pub server: Arc<ServerConfig>,
    /// Client side (dialling peers), presenting our certificate.
    pub client: Arc<ClientConfig>,
    /// Client side for DNS discovery: verifies the server against the mesh
    /// CA under whatever validator id its certificate names.
    pub discover: Arc<ClientConfig>,
    /// Our certificate (DER), for expiry metrics.
    pub own_cert: CertificateDer<'static>,
}

fn pem_err(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Pem {
        what,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(what, path, e))?;
    if certs.is_empty() {
        return Err(pem_err(what, path, "no certificate in file"));
    }
    Ok(certs)
}

/// Checks what a peer's certificate binds: a member acts on the mesh only
/// as a validator, and (with `require`, the default) only under the
/// identity fingerprint its certificate names.
pub fn check_peer_binding(name: &MeshName, require: bool) -> Result<(), String> {
    match (name.role, name.identity) {
        (Some(Role::Operator), _) => {
            Err("its certificate is for the operator role, which is never a validator".into())
        }
        (Some(Role::Validator), Some(_)) => Ok(()),
        _ if !require => Ok(()),
        _ => Err(
            "its certificate binds no pqvault identity and role: re-issue it with \
             `vault mesh-ca issue --identity` (docs/deploy.md, \"Re-issuing certificates\")"
                .into(),
        ),
    }
}

/// Checks that our own certificate binds our identity `me` in the
/// validator role; with `require` false, a certificate that binds nothing
/// is accepted (while an older mesh re-issues), but a wrong binding never.
pub fn check_own_binding(own_cert: &[u8], me: &Fingerprint, require: bool) -> Result<(), TlsError> {
    let name = vault::meshca::mesh_name(own_cert).map_err(|e| TlsError::OwnId(e.to_string()))?;
    if let Some(fp) = name.identity {
        if fp != *me {
            return Err(TlsError::OwnId(format!(
                "certificate binds identity {}, but identity_key is {}: issue the certificate \
                 for this key (`vault mesh-ca issue --identity`)",
                fp.short(),
                me.short()
            )));
        }
    }
    check_peer_binding(&name, require).map_err(|why| {
        TlsError::OwnId(why.replace("its certificate", "this validator's certificate"))
    })
}

/// Loads CA, certificate and key and builds both configurations; checks
/// that our certificate carries `expected_id`.
pub fn load(ca: &Path, cert: &Path, key: &Path, expected_id: &str) -> Result<MeshTls, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs("mesh CA", ca)? {
        roots.add(c).map_err(|e| pem_err("mesh CA", ca, e))?;
    }
    let roots = Arc::new(roots);
    let chain = certs("certificate", cert)?;
    let own_cert = chain[0].clone();
    match vault::meshca::validator_id(&own_cert) {
        Ok(id) if id == expected_id => {}
        Ok(id) => {
            return Err(TlsError::OwnId(format!(
                "certificate is for {id:?}, config says {expected_id:?}"
            )))
        }
        Err(e) => return Err(TlsError::OwnId(e.to_string())),
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err("TLS key", key, e))?;
    let provider = provider();

    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())?;
    let server_verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let discover = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(LearnIdVerifier(server_verifier)))
        .with_client_auth_cert(chain.clone(), key.clone_key())?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    Ok(MeshTls {
        server: Arc::new(server),
        client: Arc::new(client),
        discover: Arc::new(discover),
        own_cert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(identity: Option<[u8; 32]>, role: Option<Role>) -> MeshName {
        MeshName {
            id: "validator-1".into(),
            identity: identity.map(Fingerprint::from_bytes),
            role,
        }
    }

    #[test]
    fn only_bound_validator_certificates_act_on_the_mesh() {
        let bound = name(Some([1; 32]), Some(Role::Validator));
        assert!(check_peer_binding(&bound, true).is_ok());
        // Issued before identities were bound: refused unless re-issuing.
        let legacy = name(None, None);
        assert!(check_peer_binding(&legacy, true)
            .unwrap_err()
            .contains("vault mesh-ca issue --identity"));
        assert!(check_peer_binding(&legacy, false).is_ok());
        // The operator's certificate is never a validator, even re-issuing.
        let op = name(Some([1; 32]), Some(Role::Operator));
        assert!(check_peer_binding(&op, true).is_err());
        assert!(check_peer_binding(&op, false).is_err());
    }

    #[test]
    fn our_own_certificate_must_bind_our_own_identity() {
        let ca = vault::meshca::init("test", 1).unwrap();
        let der = |pem: &str| {
            CertificateDer::from_pem_slice(pem.as_bytes())
                .unwrap()
                .to_vec()
        };
        let me = Fingerprint::from_bytes([3; 32]);
        let mine = vault::meshca::issue(
            &ca.cert_pem,
            &ca.key_pem,
            "validator-1",
            &me,
            Role::Validator,
            &[],
            &[],
            1,
        )
        .unwrap();
        assert!(check_own_binding(&der(&mine.cert_pem), &me, true).is_ok());
        let other = Fingerprint::from_bytes([4; 32]);
        let err = check_own_binding(&der(&mine.cert_pem), &other, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("certificate binds identity"), "{err}");
    }
}
