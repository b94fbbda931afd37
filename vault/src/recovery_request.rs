//! Recovery through the validators: the operator's signed request for a
//! vault's shares (`PQVG`) and a holder's answer (`PQVH`), its share
//! sealed to a one-time key named in the request.
//!
//! Once validators rotate their keys the operator cannot open current
//! shards; instead it generates a throwaway identity, signs a request
//! naming the vault, the epoch, that identity's public half, a fresh nonce
//! and the time, and sends it to every holder. A holder that accepts it
//! (signed by the vault's trusted signer, current epoch, fresh) seals its
//! share record to the one-time key ([`crate::seal`]); only whoever holds
//! the one-time secret key can open any answer, so a replayed request gives
//! nothing to anyone else. Layouts: docs/formats.md, "`PQVG` recovery
//! request".

use crate::codec::{FormatError, Kind, Reader, Writer};
use crate::identity::{Fingerprint, PublicIdentity, SecretIdentity};
use crate::manifest::VaultId;
use crate::seal::{self, SealError, SealedShard};
use crate::share::{ShareRecord, MAX_SHARE_LEN};
use crate::sign::{HybridSignature, SignError};
use aws_lc_rs::digest::{Context, SHA256};
use thiserror::Error;

/// Wire kind of a recovery request.
pub const REQUEST_KIND: Kind = Kind {
    magic: *b"PQVG",
    name: "pqvault recovery request",
    version: 1,
};

/// Wire kind of a holder's answer to a recovery request.
pub const ANSWER_KIND: Kind = Kind {
    magic: *b"PQVH",
    name: "pqvault recovery answer",
    version: 1,
};

/// Signature domain of recovery requests.
pub const REQUEST_SIG_DOMAIN: &str = "recovery-request";
/// Prefix of a request's digest (what an answer names).
pub const REQUEST_DIGEST_LABEL: &[u8] = b"pqvault/v1 recovery-request";
/// Length of the request nonce.
pub const NONCE_LEN: usize = 32;
/// Largest identity (`PQVI`) inside a request.
const MAX_IDENTITY_LEN: usize = 16 * 1024;
/// Largest request accepted (two identities, a signature, fixed fields).
pub const MAX_REQUEST_LEN: usize = 64 * 1024;
/// Largest sealed share inside an answer: a maximal `PQVS`.
const MAX_SEALED_LEN: usize = MAX_SHARE_LEN + 16 * 1024;
/// Largest answer accepted.
pub const MAX_ANSWER_LEN: usize = MAX_SEALED_LEN + 128;
/// A request older than this (seconds, by the holder's clock) is stale.
pub const MAX_AGE_SECS: u64 = 300;
/// A request may claim to be issued this far (seconds) in the holder's
/// future: the operator's clock may run ahead.
pub const MAX_SKEW_SECS: u64 = 60;

/// Why a request or answer is refused.
#[derive(Debug, Error)]
pub enum RequestError {
    /// Malformed bytes.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Signed by someone other than the vault's trusted signer.
    #[error("recovery request signed by {signer}, not the vault's trusted signer {trusted}")]
    UntrustedSigner {
        /// Short fingerprint of the signer.
        signer: String,
        /// Short fingerprint of the trusted signer.
        trusted: String,
    },
    /// The signature does not verify.
    #[error("recovery request signature: {0}")]
    BadSignature(SignError),
    /// Older than [`MAX_AGE_SECS`].
    #[error(
        "recovery request is stale: issued at {issued_at}, now {now} (over {MAX_AGE_SECS} s old)"
    )]
    Stale {
        /// Unix seconds in the request.
        issued_at: u64,
        /// Unix seconds now.
        now: u64,
    },
    /// Further in the future than [`MAX_SKEW_SECS`].
    #[error("recovery request is issued at {issued_at}, {} s ahead of this clock ({now}; {MAX_SKEW_SECS} s allowed)", .issued_at.saturating_sub(*.now))]
    FromTheFuture {
        /// Unix seconds in the request.
        issued_at: u64,
        /// Unix seconds now.
        now: u64,
    },
    /// Signing, or the system RNG, failed.
    #[error("cannot sign the recovery request: {0}")]
    Signing(SignError),
    /// Sealing or opening the share failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// An answer disagrees with the request or with its own sealed share.
    #[error("recovery answer disagrees on {0}")]
    Mismatch(&'static str),
}

/// A decoded recovery request (see [`RecoveryRequest::verify`] before
/// acting on it).
#[derive(Clone)]
pub struct RecoveryRequest {
    /// Vault whose share is asked for.
    pub vault_id: VaultId,
    /// The epoch the operator recovers (the holder's current one).
    pub epoch: u64,
    /// When the operator signed it, Unix seconds.
    pub issued_at: u64,
    /// Fresh random bytes: no two requests are alike.
    pub nonce: [u8; NONCE_LEN],
    /// The one-time public identity answers are sealed to.
    pub recovery_key: PublicIdentity,
    /// Who signed it (must be the vault's trusted signer).
    pub signer: PublicIdentity,
    signature: HybridSignature,
    signed_len: usize,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for RecoveryRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryRequest")
            .field("vault_id", &self.vault_id)
            .field("epoch", &self.epoch)
            .field("issued_at", &self.issued_at)
            .field("nonce", &hex::encode(self.nonce))
            .field("recovery_key", &self.recovery_key.fingerprint())
            .field("signer", &self.signer.fingerprint())
            .finish()
    }
}

impl RecoveryRequest {
    /// Signs a request with `operator` for `vault_id` at `epoch`, answers
    /// sealed to `recovery_key`, with a fresh nonce.
    pub fn sign(
        operator: &SecretIdentity,
        vault_id: VaultId,
        epoch: u64,
        issued_at: u64,
        recovery_key: &PublicIdentity,
    ) -> Result<Self, RequestError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| RequestError::Signing(SignError::Internal("rng")))?;
        let mut w = Writer::new(REQUEST_KIND);
        w.bytes(vault_id.as_bytes())
            .u64(epoch)
            .u64(issued_at)
            .bytes(&nonce)
            .var_bytes(&recovery_key.encode())
            .var_bytes(&operator.public().encode());
        let sig = operator
            .signing_key()
            .sign(REQUEST_SIG_DOMAIN, w.as_slice())
            .map_err(RequestError::Signing)?;
        w.bytes(&sig.ed25519).bytes(&sig.mldsa);
        Self::decode(&w.finish())
    }

    /// Decodes a request (untrusted bytes); checks structure only.
    pub fn decode(bytes: &[u8]) -> Result<Self, RequestError> {
        if bytes.len() > MAX_REQUEST_LEN {
            return Err(FormatError::TooLong {
                field: "recovery request",
                len: bytes.len(),
                max: MAX_REQUEST_LEN,
            }
            .into());
        }
        let mut r = Reader::open(bytes, REQUEST_KIND)?;
        let vault_id = VaultId::from_bytes(r.array("vault id")?);
        let epoch = r.u64("epoch")?;
        let issued_at = r.u64("issued at")?;
        let nonce = r.array::<NONCE_LEN>("nonce")?;
        let recovery_key = PublicIdentity::decode(r.var_bytes("recovery key", MAX_IDENTITY_LEN)?)
            .map_err(|e| FormatError::invalid("recovery key", e.to_string()))?;
        let signer = PublicIdentity::decode(r.var_bytes("signer identity", MAX_IDENTITY_LEN)?)
            .map_err(|e| FormatError::invalid("signer identity", e.to_string()))?;
        let signed_len = r.position();
        let signature = HybridSignature::read(&mut r)?;
        r.finish()?;
        if epoch == 0 {
            return Err(FormatError::invalid("epoch", "epochs start at 1").into());
        }
        Ok(RecoveryRequest {
            vault_id,
            epoch,
            issued_at,
            nonce,
            recovery_key,
            signer,
            signature,
            signed_len,
            bytes: bytes.to_vec(),
        })
    }

    /// The encoding (exactly the bytes decoded or signed).
    pub fn encode(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 over [`REQUEST_DIGEST_LABEL`] and the encoding: what an
    /// answer names, and how logs name a request.
    pub fn digest(&self) -> [u8; 32] {
        let mut ctx = Context::new(&SHA256);
        ctx.update(REQUEST_DIGEST_LABEL);
        ctx.update(&self.bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// Checks that `trusted` signed it and the signature verifies.
    pub fn verify(&self, trusted: &Fingerprint) -> Result<(), RequestError> {
        let signer = self.signer.fingerprint();
        if signer != *trusted {
            return Err(RequestError::UntrustedSigner {
                signer: signer.short(),
                trusted: trusted.short(),
            });
        }
        self.signer
            .verifying_key()
            .verify(
                REQUEST_SIG_DOMAIN,
                &self.bytes[..self.signed_len],
                &self.signature,
            )
            .map_err(RequestError::BadSignature)
    }

    /// Checks the issued-at time against `now` (Unix seconds): at most
    /// [`MAX_AGE_SECS`] old, at most [`MAX_SKEW_SECS`] ahead.
    pub fn check_fresh(&self, now: u64) -> Result<(), RequestError> {
        if self.issued_at > now.saturating_add(MAX_SKEW_SECS) {
            return Err(RequestError::FromTheFuture {
                issued_at: self.issued_at,
                now,
            });
        }
        if now.saturating_sub(self.issued_at) > MAX_AGE_SECS {
            return Err(RequestError::Stale {
                issued_at: self.issued_at,
                now,
            });
        }
        Ok(())
    }

    /// A holder's answer: `record` sealed to the request's one-time key.
    /// The caller has verified the request and that `record` is its
    /// current share of this vault and epoch.
    pub fn answer(&self, record: &ShareRecord) -> Result<Vec<u8>, RequestError> {
        if record.vault_id != self.vault_id {
            return Err(RequestError::Mismatch("vault id"));
        }
        if record.epoch != self.epoch {
            return Err(RequestError::Mismatch("epoch"));
        }
        let sealed = seal::seal(record, self.recovery_key.suite(), &self.recovery_key)?;
        Ok(RecoveryAnswer {
            vault_id: self.vault_id,
            epoch: self.epoch,
            index: record.share.index,
            request: self.digest(),
            sealed,
        }
        .encode())
    }
}

/// A holder's answer: its share, sealed to the request's one-time key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryAnswer {
    /// Vault.
    pub vault_id: VaultId,
    /// Epoch of the share.
    pub epoch: u64,
    /// The holder's share index.
    pub index: u8,
    /// Digest of the request answered ([`RecoveryRequest::digest`]).
    pub request: [u8; 32],
    /// A `PQVS` sealed to the one-time recovery key.
    pub sealed: Vec<u8>,
}

impl RecoveryAnswer {
    /// Encodes: `"PQVH" u16=1 vault_id:[16] epoch:u64 index:u8
    /// request:[32] sealed:var`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(ANSWER_KIND);
        w.bytes(self.vault_id.as_bytes())
            .u64(self.epoch)
            .u8(self.index)
            .bytes(&self.request)
            .var_bytes(&self.sealed);
        w.finish()
    }

    /// Decodes an answer (untrusted bytes); checks structure only.
    pub fn decode(bytes: &[u8]) -> Result<Self, RequestError> {
        let mut r = Reader::open(bytes, ANSWER_KIND)?;
        let vault_id = VaultId::from_bytes(r.array("vault id")?);
        let epoch = r.u64("epoch")?;
        let index = r.u8("share index")?;
        let request = r.array::<32>("request digest")?;
        let sealed = r.var_bytes("sealed share", MAX_SEALED_LEN)?.to_vec();
        r.finish()?;
        if index == 0 {
            return Err(FormatError::invalid("share index", "share indices start at 1").into());
        }
        Ok(RecoveryAnswer {
            vault_id,
            epoch,
            index,
            request,
            sealed,
        })
    }

    /// Opens the sealed share with the one-time `key`, checking that the
    /// answer is to `request` and that its fields, the sealed header and
    /// the share agree. The share still has to be checked against the
    /// manifest ([`crate::recover::check_record`]).
    pub fn open(
        &self,
        request: &RecoveryRequest,
        key: &SecretIdentity,
    ) -> Result<ShareRecord, RequestError> {
        if self.request != request.digest() {
            return Err(RequestError::Mismatch("request digest"));
        }
        if self.vault_id != request.vault_id {
            return Err(RequestError::Mismatch("vault id"));
        }
        if self.epoch != request.epoch {
            return Err(RequestError::Mismatch("epoch"));
        }
        let shard = SealedShard::parse(&self.sealed)?;
        let h = &shard.header;
        if h.vault_id != self.vault_id {
            return Err(RequestError::Mismatch("sealed vault id"));
        }
        if h.epoch != self.epoch {
            return Err(RequestError::Mismatch("sealed epoch"));
        }
        if h.index != self.index {
            return Err(RequestError::Mismatch("sealed share index"));
        }
        Ok(shard.open(key)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shamir::Share;
    use std::sync::OnceLock;
    use zeroize::Zeroizing;

    /// Operator, one-time key, someone else.
    fn ids() -> &'static (SecretIdentity, SecretIdentity, SecretIdentity) {
        static IDS: OnceLock<(SecretIdentity, SecretIdentity, SecretIdentity)> = OnceLock::new();
        IDS.get_or_init(|| {
            (
                SecretIdentity::generate("operator").unwrap(),
                SecretIdentity::generate("one-time").unwrap(),
                SecretIdentity::generate("validator").unwrap(),
            )
        })
    }

    const VAULT: [u8; 16] = [9; 16];

    fn request() -> RecoveryRequest {
        let (op, one, _) = ids();
        RecoveryRequest::sign(op, VaultId::from_bytes(VAULT), 3, 1_000_000, one.public()).unwrap()
    }

    fn record() -> ShareRecord {
        ShareRecord {
            vault_id: VaultId::from_bytes(VAULT),
            epoch: 3,
            threshold: 2,
            n: 3,
            share: Share {
                index: 2,
                value: Zeroizing::new(vec![0x42; 40]),
            },
        }
    }

    #[test]
    fn round_trip_verify_answer_open() {
        let (op, one, other) = ids();
        let req = request();
        let again = RecoveryRequest::decode(req.encode()).unwrap();
        assert_eq!(again.encode(), req.encode());
        assert_eq!(again.epoch, 3);
        assert_eq!(again.issued_at, 1_000_000);
        assert_eq!(again.recovery_key.fingerprint(), one.public().fingerprint());
        again.verify(&op.public().fingerprint()).unwrap();
        let err = again.verify(&other.public().fingerprint()).unwrap_err();
        assert!(matches!(err, RequestError::UntrustedSigner { .. }), "{err}");

        let bytes = again.answer(&record()).unwrap();
        let answer = RecoveryAnswer::decode(&bytes).unwrap();
        assert_eq!(answer.encode(), bytes);
        assert_eq!(answer.index, 2);
        let rec = answer.open(&req, one).unwrap();
        assert_eq!(&rec.share.value[..], &[0x42; 40][..]);
        // Nobody else opens it, not even the signer.
        let err = answer.open(&req, op).unwrap_err();
        assert!(
            matches!(err, RequestError::Seal(SealError::WrongRecipient { .. })),
            "{err}"
        );
        // An answer to another request is refused.
        let other_req = request();
        assert_ne!(other_req.nonce, req.nonce, "fresh nonce per request");
        let err = answer.open(&other_req, one).unwrap_err();
        assert!(
            matches!(err, RequestError::Mismatch("request digest")),
            "{err}"
        );
    }

    #[test]
    fn freshness_window() {
        let req = request();
        req.check_fresh(1_000_000).unwrap();
        req.check_fresh(1_000_000 + MAX_AGE_SECS).unwrap();
        req.check_fresh(1_000_000 - MAX_SKEW_SECS).unwrap();
        assert!(matches!(
            req.check_fresh(1_000_000 + MAX_AGE_SECS + 1),
            Err(RequestError::Stale { .. })
        ));
        let err = req.check_fresh(1_000_000 - MAX_SKEW_SECS - 1).unwrap_err();
        assert!(matches!(err, RequestError::FromTheFuture { .. }), "{err}");
        assert!(err.to_string().contains("61 s ahead"), "{err}");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let req = request();
        let bytes = req.encode();
        for cut in 0..bytes.len() {
            assert!(
                RecoveryRequest::decode(&bytes[..cut]).is_err(),
                "request cut at {cut}"
            );
        }
        let answer = req.answer(&record()).unwrap();
        for cut in 0..answer.len() {
            assert!(
                RecoveryAnswer::decode(&answer[..cut]).is_err(),
                "answer cut at {cut}"
            );
        }
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(matches!(
            RecoveryRequest::decode(&long),
            Err(RequestError::Format(FormatError::TrailingBytes {
                count: 1
            }))
        ));
    }

    #[test]
    fn any_flipped_byte_fails_decoding_or_verification() {
        let op = ids().0.public().fingerprint();
        let bytes = request().encode().to_vec();
        // Every fixed field, a stride through the identities, the signatures.
        let positions = (0..80)
            .chain((80..bytes.len()).step_by(41))
            .chain(bytes.len() - 8..bytes.len());
        for pos in positions {
            let mut bad = bytes.clone();
            bad[pos] ^= 0x01;
            let ok = RecoveryRequest::decode(&bad).and_then(|r| r.verify(&op));
            assert!(ok.is_err(), "flipping byte {pos} was not detected");
        }
    }

    #[test]
    fn answers_for_another_vault_or_epoch_are_not_made() {
        let req = request();
        let mut rec = record();
        rec.epoch = 2;
        assert!(matches!(
            req.answer(&rec),
            Err(RequestError::Mismatch("epoch"))
        ));
    }
}
