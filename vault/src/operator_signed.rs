//! The closing `signer identity ‖ hybrid signature` of a statement the
//! operator signs (`PQVL` transition policies, `PQVN` membership
//! statements), written and checked one way.

use crate::codec::{FormatError, Reader, Writer};
use crate::identity::{Fingerprint, PublicIdentity, SecretIdentity};
use crate::sign::{HybridSignature, SignError};

/// Appends `key`'s public identity and its signature, under `domain`, over
/// every byte written so far, and returns the finished statement.
pub fn finish_signed(
    mut w: Writer,
    key: &SecretIdentity,
    domain: &str,
) -> Result<Vec<u8>, SignError> {
    w.var_bytes(&key.public().encode());
    let sig = key.signing_key().sign(domain, w.as_slice())?;
    w.bytes(&sig.ed25519).bytes(&sig.mldsa);
    Ok(w.finish())
}

/// Reads the closing signer and signature after the body `r` stands at,
/// and checks that the signer is `trusted` (the operator of `whose`, named
/// in the refusal) and that the signature covers every byte before it
/// under `domain`. Malformed bytes are a [`FormatError`]; a wrong signer or
/// signature goes through `refused`.
pub fn verify_tail<E: From<FormatError>>(
    mut r: Reader<'_>,
    trusted: &Fingerprint,
    domain: &str,
    whose: &str,
    refused: impl Fn(String) -> E,
) -> Result<(), E> {
    let signer = PublicIdentity::decode(r.var_bytes("signer identity", 16 * 1024)?)
        .map_err(|e| FormatError::invalid("signer identity", e.to_string()))?;
    let signed = r.consumed().to_vec();
    let sig = HybridSignature::read(&mut r)?;
    r.finish()?;
    if signer.fingerprint() != *trusted {
        return Err(refused(format!(
            "signed by {}, not the {whose}'s operator {}",
            signer.fingerprint().short(),
            trusted.short()
        )));
    }
    signer
        .verifying_key()
        .verify(domain, &signed, &sig)
        .map_err(|e| refused(e.to_string()))
}
