//! Initial KEM keys: what genesis shards are sealed to, instead of the
//! long-term identity.
//!
//! `vault keygen` makes, beside the identity, one epoch key in its initial
//! form (vault id all zero, epoch 0: "the first vault this identity
//! holds") and writes two files (docs/formats.md):
//!
//! - `NAME.ipub` (`PQVJ`): the public half, signed by the identity, so
//!   `vault create` seals genesis shards to a key that identity vouched
//!   for;
//! - `NAME.ikey` (`PQVO`): the secret half, which the validator moves into
//!   its wrapped key ring at start, erasing the file, and erases from the
//!   ring once no vault it holds is at an epoch sealed to it (D45).
//!
//! An attacker who archives genesis shards and later steals a validator's
//! identity key therefore opens nothing once the vault left epoch 1 (issue
//! 10, attack 5, for epoch 1 as D42 closed it for later epochs).

use crate::codec::{FormatError, Kind, Reader, Writer};
use crate::epoch_key::{EpochKey, EpochKeyError, EpochPublicKey};
use crate::identity::{Fingerprint, PublicIdentity, SecretIdentity};
use crate::kem::hybrid::{HybridPublicKey, Suite};
use crate::manifest::VaultId;
use crate::operator_signed;
use crate::sign::SignError;
use thiserror::Error;
use zeroize::Zeroizing;

/// Format of the signed public statement (`NAME.ipub`).
pub const PUBLIC_KIND: Kind = Kind {
    magic: *b"PQVJ",
    name: "pqvault initial kem key",
    version: 1,
};

/// Format of the secret file (`NAME.ikey`).
pub const SECRET_KIND: Kind = Kind {
    magic: *b"PQVO",
    name: "pqvault initial kem secret key",
    version: 1,
};

/// The vault id an initial key names: no vault yet.
pub const INITIAL_VAULT: VaultId = VaultId::from_bytes([0u8; 16]);
/// The epoch an initial key names: before the first.
pub const INITIAL_EPOCH: u64 = 0;

/// Signature domain of the public statement.
const DOMAIN: &str = "initial kem key v1";
/// Largest public identity inside a statement.
const MAX_IDENTITY: usize = 16 * 1024;

/// Why an initial key could not be made, read or trusted.
#[derive(Debug, Error)]
pub enum InitialKeyError {
    /// The encoding is malformed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The key inside is invalid.
    #[error(transparent)]
    Key(#[from] EpochKeyError),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The statement is not the named identity's.
    #[error("initial KEM key refused: {0}")]
    Refused(String),
}

/// Whether `key` is an initial key (seals epoch 1 of any vault) rather than
/// the key of one (vault, epoch).
pub fn is_initial(key: &EpochPublicKey) -> bool {
    key.vault_id == INITIAL_VAULT && key.epoch == INITIAL_EPOCH
}

/// A fresh initial key pair for `identity`: the signed public statement
/// (`PQVJ`) and the secret file (`PQVO`), in that order.
pub fn generate(
    identity: &SecretIdentity,
) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), InitialKeyError> {
    let key = EpochKey::generate(identity.public().suite(), INITIAL_VAULT, INITIAL_EPOCH)?;
    Ok((
        sign_public(identity, key.public())?,
        encode_secret(identity, &key),
    ))
}

/// Signs `key` (an initial key) as `identity`'s: suite, the three public
/// keys, then the identity and its signature over all of it.
pub fn sign_public(
    identity: &SecretIdentity,
    key: &EpochPublicKey,
) -> Result<Vec<u8>, InitialKeyError> {
    if !is_initial(key) {
        return Err(InitialKeyError::Refused(
            "not an initial key (it names a vault or an epoch)".into(),
        ));
    }
    let mut w = Writer::new(PUBLIC_KIND);
    w.u16(key.suite.id())
        .bytes(&key.kem.x25519)
        .bytes(&key.kem.mlkem)
        .bytes(&key.kem.hqc);
    Ok(operator_signed::finish_signed(w, identity, DOMAIN)?)
}

/// Reads a `PQVJ` statement and checks its signature by the identity it
/// embeds; returns the key and that identity. Whose statement to trust is
/// the caller's decision: [`verify_public`] pins it.
pub fn open_public(bytes: &[u8]) -> Result<(EpochPublicKey, PublicIdentity), InitialKeyError> {
    let mut r = Reader::open(bytes, PUBLIC_KIND)?;
    let suite = Suite::from_id_or_err(r.u16("initial key suite")?)
        .map_err(|e| FormatError::invalid("initial key suite", e.to_string()))?;
    let kem = HybridPublicKey::read(&mut r, suite)?;
    kem.check(suite)
        .map_err(|e| FormatError::invalid("initial key", e.to_string()))?;
    let signer = {
        let mut peek = r.clone();
        PublicIdentity::decode(peek.var_bytes("signer identity", MAX_IDENTITY)?)
            .map_err(|e| FormatError::invalid("signer identity", e.to_string()))?
    };
    operator_signed::verify_tail(
        r,
        &signer.fingerprint(),
        DOMAIN,
        &format!("identity {}", signer.name()),
        InitialKeyError::Refused,
    )?;
    let key = EpochPublicKey {
        suite,
        vault_id: INITIAL_VAULT,
        epoch: INITIAL_EPOCH,
        kem,
    };
    Ok((key, signer))
}

/// Reads a `PQVJ` statement and checks that `identity` signed it and that
/// the key is of `identity`'s suite. Returns the key to seal to.
pub fn verify_public(
    bytes: &[u8],
    identity: &PublicIdentity,
) -> Result<EpochPublicKey, InitialKeyError> {
    let (key, signer) = open_public(bytes)?;
    if signer.fingerprint() != identity.fingerprint() {
        return Err(InitialKeyError::Refused(format!(
            "signed by identity {} ({}), not by {} ({})",
            signer.name(),
            signer.fingerprint().short(),
            identity.name(),
            identity.fingerprint().short()
        )));
    }
    if key.suite != identity.suite() {
        return Err(InitialKeyError::Refused(format!(
            "its KEM suite {} is not the identity's {}",
            key.suite,
            identity.suite()
        )));
    }
    Ok(key)
}

/// The secret file: the owner's identity fingerprint, then the key pair.
pub fn encode_secret(identity: &SecretIdentity, key: &EpochKey) -> Zeroizing<Vec<u8>> {
    let mut w = Writer::new(SECRET_KIND);
    w.bytes(identity.public().fingerprint().as_bytes());
    key.write(&mut w);
    Zeroizing::new(w.finish())
}

/// Reads a `PQVO` secret file: whose it is, and the initial key pair.
pub fn decode_secret(bytes: &[u8]) -> Result<(Fingerprint, EpochKey), InitialKeyError> {
    let mut r = Reader::open(bytes, SECRET_KIND)?;
    let owner = Fingerprint::from_bytes(r.array("owner fingerprint")?);
    let key = EpochKey::read(&mut r)?;
    r.finish()?;
    if !is_initial(key.public()) {
        return Err(FormatError::invalid(
            "initial key",
            "names a vault or an epoch: not an initial key",
        )
        .into());
    }
    Ok((owner, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_verifies_for_its_identity_only() {
        let alice = SecretIdentity::generate("alice").unwrap();
        let bob = SecretIdentity::generate("bob").unwrap();
        let (public, secret) = generate(&alice).unwrap();
        let key = verify_public(&public, alice.public()).unwrap();
        let (owner, pair) = decode_secret(&secret).unwrap();
        assert_eq!(owner, alice.public().fingerprint());
        assert_eq!(pair.fingerprint(), key.fingerprint());

        // Bob's identity does not vouch for Alice's key.
        assert!(matches!(
            verify_public(&public, bob.public()),
            Err(InitialKeyError::Refused(_))
        ));
        // Nor does a statement with any key byte changed verify.
        let mut forged = public.clone();
        forged[12] ^= 1;
        assert!(verify_public(&forged, alice.public()).is_err());
        // Bob re-signing Alice's key makes it Bob's statement, not Alice's.
        let stolen = sign_public(&bob, &key).unwrap();
        assert!(verify_public(&stolen, alice.public()).is_err());
        assert!(verify_public(&stolen, bob.public()).is_ok());
    }

    #[test]
    fn only_initial_keys_are_signed_or_read_as_such() {
        let alice = SecretIdentity::generate("alice").unwrap();
        let epoch = EpochKey::generate(Suite::DEFAULT, VaultId::from_bytes([3; 16]), 2).unwrap();
        assert!(sign_public(&alice, epoch.public()).is_err());
        let bytes = encode_secret(&alice, &epoch);
        assert!(decode_secret(&bytes).is_err());
    }
}
