//! Abandon statements (`PQVF`): "stop receiving NAME VERSION", signed by the
//! publisher of that artifact.
//!
//! A partial artifact (a verified manifest whose payload never arrives in
//! full) reserves space on every validator. The application port that
//! would take an abandon request is unauthenticated, so a validator acts on
//! one only if it is signed by the same publisher identity that signed the
//! partial artifact's manifest, and was issued recently
//! ([`ABANDON_MAX_AGE`]). It only ever affects artifacts not yet complete.
//!
//! Layout (codec framing, magic `PQVF`, version 1): name (var bytes),
//! version (var bytes), issued (u64, Unix seconds), publisher identity (var
//! bytes), then the hybrid signature (Ed25519 || ML-DSA-65) over everything
//! before it, under the domain [`ABANDON_SIG_DOMAIN`].

use super::manifest::{check_model_name, parse_version};
use super::ArtifactError;
use crate::codec::{FormatError, Kind, Reader, Writer};
use crate::identity::{PublicIdentity, SecretIdentity};
use crate::sign::HybridSignature;

/// File kind of an abandon statement.
pub const ABANDON_KIND: Kind = Kind {
    magic: *b"PQVF",
    name: "pqvault artifact abandon statement",
    version: 1,
};

/// Signature domain of abandon statements (distinct from manifests').
pub const ABANDON_SIG_DOMAIN: &str = "artifact-abandon";

/// Oldest statement accepted, and how far in the future one may be dated
/// (seconds), so a statement seen once cannot be replayed much later.
pub const ABANDON_MAX_AGE: u64 = 600;

/// Largest encoded statement.
pub const MAX_ABANDON_LEN: usize = 16 * 1024;

/// A decoded abandon statement (signature not yet checked).
#[derive(Debug, Clone)]
pub struct AbandonStatement {
    name: String,
    version: semver::Version,
    issued_unix: u64,
    publisher: PublicIdentity,
    signature: HybridSignature,
    signed: Vec<u8>,
}

impl AbandonStatement {
    /// Signs "abandon `name` `version`" at `issued_unix` as `publisher`;
    /// returns the encoding.
    pub fn sign(
        name: &str,
        version: &semver::Version,
        issued_unix: u64,
        publisher: &SecretIdentity,
    ) -> Result<Vec<u8>, ArtifactError> {
        check_model_name(name)?;
        let mut w = Writer::new(ABANDON_KIND);
        w.var_bytes(name.as_bytes())
            .var_bytes(version.to_string().as_bytes())
            .u64(issued_unix)
            .var_bytes(&publisher.public().encode());
        let sig = publisher
            .signing_key()
            .sign(ABANDON_SIG_DOMAIN, w.as_slice())
            .map_err(ArtifactError::Signing)?;
        w.bytes(&sig.ed25519).bytes(&sig.mldsa);
        Ok(w.finish())
    }

    /// Decodes a statement (structure only; see [`Self::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, ArtifactError> {
        if bytes.len() > MAX_ABANDON_LEN {
            return Err(FormatError::invalid(
                "abandon statement",
                format!("{} bytes, over the limit of {MAX_ABANDON_LEN}", bytes.len()),
            )
            .into());
        }
        let mut r = Reader::open(bytes, ABANDON_KIND)?;
        let name = std::str::from_utf8(r.var_bytes("model name", 1024)?)
            .map_err(|_| FormatError::invalid("model name", "not UTF-8"))?
            .to_string();
        check_model_name(&name)?;
        let version = std::str::from_utf8(r.var_bytes("version", 1024)?)
            .map_err(|_| FormatError::invalid("version", "not UTF-8"))?;
        let version = parse_version(version)?;
        let issued_unix = r.u64("issued")?;
        let publisher = PublicIdentity::decode(r.var_bytes("publisher identity", 16 * 1024)?)?;
        let signed = r.consumed().to_vec();
        let signature = HybridSignature::read(&mut r)?;
        r.finish()?;
        Ok(AbandonStatement {
            name,
            version,
            issued_unix,
            publisher,
            signature,
            signed,
        })
    }

    /// Model name to abandon.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Version to abandon.
    pub fn version(&self) -> &semver::Version {
        &self.version
    }

    /// When it was signed (Unix seconds).
    pub fn issued(&self) -> u64 {
        self.issued_unix
    }

    /// Checks that the statement is signed by `publisher` (the identity
    /// that signed the artifact's manifest), that the signature verifies,
    /// and that it was issued within [`ABANDON_MAX_AGE`] of `now_unix`.
    pub fn verify(&self, publisher: &PublicIdentity, now_unix: u64) -> Result<(), ArtifactError> {
        if self.publisher.fingerprint() != publisher.fingerprint() {
            return Err(ArtifactError::Policy(format!(
                "abandon statement signed by {}, but {} {} was published by {}",
                self.publisher.fingerprint(),
                self.name,
                self.version,
                publisher.fingerprint()
            )));
        }
        publisher
            .verifying_key()
            .verify(ABANDON_SIG_DOMAIN, &self.signed, &self.signature)
            .map_err(ArtifactError::Signature)?;
        if self.issued_unix + ABANDON_MAX_AGE < now_unix
            || self.issued_unix > now_unix + ABANDON_MAX_AGE
        {
            return Err(ArtifactError::Policy(format!(
                "abandon statement issued at {} is not within {ABANDON_MAX_AGE} s of now ({now_unix})",
                self.issued_unix
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_statements_verify_only_for_their_publisher_and_while_fresh() {
        let a = SecretIdentity::generate("a").unwrap();
        let b = SecretIdentity::generate("b").unwrap();
        let v = semver::Version::new(1, 2, 3);
        let enc = AbandonStatement::sign("snn-x", &v, 1000, &a).unwrap();
        let s = AbandonStatement::decode(&enc).unwrap();
        assert_eq!((s.name(), s.version(), s.issued()), ("snn-x", &v, 1000));
        s.verify(a.public(), 1000).unwrap();
        s.verify(a.public(), 1000 + ABANDON_MAX_AGE).unwrap();
        assert!(s.verify(a.public(), 1001 + ABANDON_MAX_AGE).is_err());
        assert!(s.verify(b.public(), 1000).is_err());
        // A flipped bit anywhere: undecodable or unverifiable.
        for i in [10, enc.len() / 2, enc.len() - 1] {
            let mut bad = enc.clone();
            bad[i] ^= 1;
            let ok = AbandonStatement::decode(&bad).and_then(|s| s.verify(a.public(), 1000));
            assert!(ok.is_err(), "flip at {i}");
        }
        assert!(AbandonStatement::decode(&enc[..enc.len() - 1]).is_err());
    }
}
