//! Sealed shards: a share record encrypted to one recipient.
//!
//! Layout (all integers big-endian; see `docs/formats.md`):
//!
//! ```text
//! "PQVS" version:u16                                      \
//! suite:u16 vault_id:[16] epoch:u64 index:u8 t:u8 n:u8    |  header = AEAD associated data
//! recipient_fingerprint:[32]                              |
//! [version 2 only: epoch_key_fingerprint:[32]]            /
//! x25519_ct:[32] mlkem_ct:[1088] hqc_ct:[8978]            (suites 1 and 2)
//! payload_len:u32 payload:[payload_len]                   AES-256-GCM(share record) || tag
//! ```
//!
//! Version 1 is sealed to the recipient identity's KEM key (genesis shards
//! from `vault create`, pieces in transit); version 2 to an epoch key the
//! recipient generated for this vault and epoch alone
//! ([`crate::epoch_key`]), named by its fingerprint. The AEAD key comes
//! from the hybrid KEM and is used exactly once, so the nonce is fixed at
//! zero. The key derivation binds every KEM ciphertext and the fingerprint
//! of the key sealed to (the identity's in version 1, the epoch key's in
//! version 2); the AEAD binds the header.

use crate::codec::{FormatError, Kind, Reader, Writer};
use crate::epoch_key::{EpochKey, EpochPublicKey};
use crate::identity::{Fingerprint, PublicIdentity, SecretIdentity};
use crate::kem::hybrid::{self, HybridCiphertext, Suite, UnknownSuite};
use crate::kem::mlkem::MlKem768;
use crate::kem::x25519::X25519;
use crate::kem::{Kem, KemError};
use crate::manifest::VaultId;
use crate::share::{ShareRecord, MAX_SHARE_LEN};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use thiserror::Error;
use zeroize::Zeroizing;

/// File kind of a sealed shard (`*.shard`).
pub const SHARD_KIND: Kind = Kind {
    magic: *b"PQVS",
    name: "pqvault sealed shard",
    version: 1,
};

/// Version 2 of the sealed shard: sealed to an epoch key.
pub const EPOCH_SHARD_KIND: Kind = Kind {
    version: 2,
    ..SHARD_KIND
};

/// AES-GCM tag length.
const TAG_LEN: usize = 16;
/// Upper bound on the payload: a maximal share record plus its tag.
const MAX_PAYLOAD_LEN: usize = MAX_SHARE_LEN + 64 + TAG_LEN;

/// Why sealing or unsealing failed. Each failure class is its own variant.
#[derive(Debug, Error)]
pub enum SealError {
    /// The bytes are not a well-formed sealed shard (bad magic, unsupported
    /// version, truncated, trailing bytes, bad field).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The header names a KEM suite this build does not know.
    #[error(transparent)]
    UnknownSuite(#[from] UnknownSuite),
    /// The recipient's keys belong to another suite than the one asked for.
    #[error(
        "cannot seal with suite {suite}: the recipient {recipient} has {recipient_suite} keys"
    )]
    SuiteMismatch {
        /// Suite asked for.
        suite: Suite,
        /// The recipient's fingerprint.
        recipient: Fingerprint,
        /// The suite of the recipient's keys.
        recipient_suite: Suite,
    },
    /// The key offered is not the shard's recipient.
    #[error("wrong key: shard is sealed to {shard_for}, key is {key}")]
    WrongRecipient {
        /// Fingerprint in the shard header.
        shard_for: Fingerprint,
        /// Fingerprint of the key offered.
        key: Fingerprint,
    },
    /// Decryption failed: the header, a KEM ciphertext or the payload was
    /// modified, or the shard was not sealed to this key's KEM keys.
    #[error(
        "sealed shard failed authentication: header, KEM ciphertexts or payload were modified"
    )]
    AuthenticationFailed,
    /// The decrypted share disagrees with the authenticated header.
    #[error("decrypted share disagrees with the shard header on {0}")]
    HeaderMismatch(&'static str),
    /// The shard is sealed to an epoch key, which only its validator holds
    /// and erases once the vault moves on; an identity key cannot open it.
    #[error(
        "shard is sealed to epoch key {key} of its validator, not to an identity key: \
         recover through the holders (`vault mesh recover`), or, for a genesis shard, \
         offer the validator's initial key (NAME.ikey) if you still hold it"
    )]
    EpochKeyNeeded {
        /// Fingerprint of the epoch key.
        key: Fingerprint,
    },
    /// The epoch key offered is not the one the shard is sealed to.
    #[error("wrong epoch key: shard is sealed to {shard_for}, key is {key}")]
    WrongEpochKey {
        /// Epoch key fingerprint in the shard header (none for version 1).
        shard_for: String,
        /// Fingerprint of the key offered.
        key: Fingerprint,
    },
    /// The epoch key the shard is sealed to is not held: erased after its
    /// epoch, or never made by this holder.
    #[error("the epoch key this shard is sealed to ({key}) is not held here: erased once the vault moved past its epoch, or never made here")]
    EpochKeyGone {
        /// Fingerprint of the missing key.
        key: Fingerprint,
    },
    /// Encapsulation to the recipient failed (bad recipient key).
    #[error("cannot seal to recipient: {0}")]
    Kem(KemError),
    /// The AEAD library failed while sealing.
    #[error("AEAD failure while sealing")]
    Aead,
}

/// The authenticated header of a sealed shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardHeader {
    /// KEM suite.
    pub suite: Suite,
    /// Vault id.
    pub vault_id: VaultId,
    /// Epoch.
    pub epoch: u64,
    /// Share index (evaluation point).
    pub index: u8,
    /// Threshold.
    pub threshold: u8,
    /// Number of shares.
    pub n: u8,
    /// Recipient identity fingerprint.
    pub recipient: Fingerprint,
    /// The epoch key the shard is sealed to (version 2); `None` when it
    /// is sealed to the recipient identity's KEM key (version 1).
    pub epoch_key: Option<Fingerprint>,
}

/// A parsed (not yet decrypted) sealed shard.
pub struct SealedShard {
    /// The authenticated header.
    pub header: ShardHeader,
    ciphertext: HybridCiphertext,
    aad: Vec<u8>,
    payload: Vec<u8>,
}

impl SealedShard {
    /// Parses the structure without decrypting; checks sizes and the suite.
    pub fn parse(bytes: &[u8]) -> Result<Self, SealError> {
        let (mut r, version) = Reader::open_any(bytes, &[SHARD_KIND, EPOCH_SHARD_KIND])?;
        let suite_id = r.u16("kem suite")?;
        let suite = Suite::from_id_or_err(suite_id)?;
        let header = ShardHeader {
            suite,
            vault_id: VaultId::from_bytes(r.array("vault id")?),
            epoch: r.u64("epoch")?,
            index: r.u8("share index")?,
            threshold: r.u8("threshold")?,
            n: r.u8("share count")?,
            recipient: Fingerprint::from_bytes(r.array("recipient fingerprint")?),
            epoch_key: None,
        };
        let mut header = header;
        if version == EPOCH_SHARD_KIND.version {
            header.epoch_key = Some(Fingerprint::from_bytes(r.array("epoch key fingerprint")?));
        }
        crate::share::check_params(header.epoch, header.threshold, header.n, header.index)?;
        let aad = r.consumed().to_vec();
        let ciphertext = HybridCiphertext {
            x25519: r
                .take(X25519::CIPHERTEXT_LEN, "x25519 ciphertext")?
                .to_vec(),
            mlkem: r
                .take(MlKem768::CIPHERTEXT_LEN, "ml-kem-768 ciphertext")?
                .to_vec(),
            hqc: r
                .take(suite.hqc_ciphertext_len(), "hqc-192 ciphertext")?
                .to_vec(),
        };
        let payload = r.var_bytes("encrypted payload", MAX_PAYLOAD_LEN)?.to_vec();
        r.finish()?;
        if payload.len() < TAG_LEN {
            return Err(
                FormatError::invalid("encrypted payload", "shorter than the AEAD tag").into(),
            );
        }
        Ok(SealedShard {
            header,
            ciphertext,
            aad,
            payload,
        })
    }

    /// Decrypts with identity `key` and checks the share against the
    /// header. A version 2 shard needs its epoch key instead
    /// ([`SealedShard::open_with_epoch_key`]).
    pub fn open(&self, key: &SecretIdentity) -> Result<ShareRecord, SealError> {
        let h = &self.header;
        let mine = key.public().fingerprint();
        if mine != h.recipient {
            return Err(SealError::WrongRecipient {
                shard_for: h.recipient,
                key: mine,
            });
        }
        if let Some(key) = h.epoch_key {
            return Err(SealError::EpochKeyNeeded { key });
        }
        self.decrypt(key.kem(), &h.recipient)
    }

    /// Decrypts a version 2 shard with its epoch key and checks the share
    /// against the header.
    pub fn open_with_epoch_key(&self, key: &EpochKey) -> Result<ShareRecord, SealError> {
        let fp = key.fingerprint();
        if self.header.epoch_key != Some(fp) {
            return Err(SealError::WrongEpochKey {
                shard_for: self
                    .header
                    .epoch_key
                    .map_or("the identity key (version 1)".into(), |k| k.to_string()),
                key: fp,
            });
        }
        self.decrypt(key.secret(), &fp)
    }

    fn decrypt(
        &self,
        secret: &hybrid::HybridSecretKey,
        bound: &Fingerprint,
    ) -> Result<ShareRecord, SealError> {
        let h = &self.header;
        // Any KEM rejection is folded into one error: no decryption oracle.
        let aead_key = hybrid::decapsulate(h.suite, secret, &self.ciphertext, bound)
            .map_err(|_| SealError::AuthenticationFailed)?;
        let mut buf = Zeroizing::new(self.payload.clone());
        let plain = aead(&aead_key)?
            .open_in_place(nonce(), Aad::from(&self.aad[..]), &mut buf[..])
            .map_err(|_| SealError::AuthenticationFailed)?;
        let record = ShareRecord::decode(plain)?;
        check_matches(h, &record)?;
        Ok(record)
    }
}

/// Seals `record` to `recipient`.
pub fn seal(
    record: &ShareRecord,
    suite: Suite,
    recipient: &PublicIdentity,
) -> Result<Vec<u8>, SealError> {
    if recipient.suite() != suite {
        return Err(SealError::SuiteMismatch {
            suite,
            recipient: recipient.fingerprint(),
            recipient_suite: recipient.suite(),
        });
    }
    let fp = recipient.fingerprint();
    seal_to(record, suite, fp, None, recipient.kem(), &fp)
}

/// Seals `record`, the share of identity `recipient`, to that recipient's
/// epoch key `key` (format version 2). The key must serve the record's
/// vault and epoch, or be the recipient's initial key and the record of
/// epoch 1 (`vault create`'s, [`crate::initial_key`]).
pub fn seal_to_epoch_key(
    record: &ShareRecord,
    recipient: Fingerprint,
    key: &EpochPublicKey,
) -> Result<Vec<u8>, SealError> {
    let serves = (key.vault_id == record.vault_id && key.epoch == record.epoch)
        || (crate::initial_key::is_initial(key) && record.epoch == 1);
    if !serves {
        return Err(SealError::HeaderMismatch("epoch key's vault or epoch"));
    }
    let fp = key.fingerprint();
    seal_to(record, key.suite, recipient, Some(fp), &key.kem, &fp)
}

fn seal_to(
    record: &ShareRecord,
    suite: Suite,
    recipient: Fingerprint,
    epoch_key: Option<Fingerprint>,
    kem: &hybrid::HybridPublicKey,
    bound: &Fingerprint,
) -> Result<Vec<u8>, SealError> {
    let header = ShardHeader {
        suite,
        vault_id: record.vault_id,
        epoch: record.epoch,
        index: record.share.index,
        threshold: record.threshold,
        n: record.n,
        recipient,
        epoch_key,
    };
    let mut w = Writer::new(if epoch_key.is_some() {
        EPOCH_SHARD_KIND
    } else {
        SHARD_KIND
    });
    w.u16(suite.id())
        .bytes(header.vault_id.as_bytes())
        .u64(header.epoch)
        .u8(header.index)
        .u8(header.threshold)
        .u8(header.n)
        .bytes(header.recipient.as_bytes());
    if let Some(k) = &epoch_key {
        w.bytes(k.as_bytes());
    }
    let aad = w.as_slice().to_vec();

    let (ct, aead_key) = hybrid::encapsulate(suite, kem, bound).map_err(SealError::Kem)?;
    let mut payload = Zeroizing::new(record.encode().to_vec());
    aead(&aead_key)?
        .seal_in_place_append_tag(nonce(), Aad::from(&aad[..]), &mut *payload)
        .map_err(|_| SealError::Aead)?;
    w.bytes(&ct.x25519)
        .bytes(&ct.mlkem)
        .bytes(&ct.hqc)
        .var_bytes(&payload);
    Ok(w.finish())
}

fn aead(key: &[u8; hybrid::KEY_LEN]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Aead)
}

/// The key is used once, so a fixed nonce is safe.
fn nonce() -> Nonce {
    Nonce::assume_unique_for_key([0u8; NONCE_LEN])
}

fn check_matches(h: &ShardHeader, r: &ShareRecord) -> Result<(), SealError> {
    let mismatch = if r.vault_id != h.vault_id {
        Some("vault id")
    } else if r.epoch != h.epoch {
        Some("epoch")
    } else if r.share.index != h.index {
        Some("share index")
    } else if r.threshold != h.threshold {
        Some("threshold")
    } else if r.n != h.n {
        Some("share count")
    } else {
        None
    };
    match mismatch {
        Some(field) => Err(SealError::HeaderMismatch(field)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shamir::Share;
    use std::sync::OnceLock;

    fn ids() -> &'static (SecretIdentity, SecretIdentity) {
        static IDS: OnceLock<(SecretIdentity, SecretIdentity)> = OnceLock::new();
        IDS.get_or_init(|| {
            (
                SecretIdentity::generate("alice").unwrap(),
                SecretIdentity::generate("bob").unwrap(),
            )
        })
    }

    fn record(value: &[u8]) -> ShareRecord {
        ShareRecord {
            vault_id: VaultId::from_bytes([7; 16]),
            epoch: 3,
            threshold: 2,
            n: 3,
            share: Share {
                index: 2,
                value: Zeroizing::new(value.to_vec()),
            },
        }
    }

    fn sealed() -> Vec<u8> {
        seal(&record(&[0x42; 64]), Suite::DEFAULT, ids().0.public()).unwrap()
    }

    #[test]
    fn round_trip() {
        let blob = sealed();
        let shard = SealedShard::parse(&blob).unwrap();
        assert_eq!(shard.header.index, 2);
        let rec = shard.open(&ids().0).unwrap();
        assert_eq!(&rec.share.value[..], &[0x42; 64][..]);
    }

    fn epoch_sealed() -> (crate::epoch_key::EpochKey, Vec<u8>) {
        let r = record(&[0x42; 64]);
        let key =
            crate::epoch_key::EpochKey::generate(Suite::DEFAULT, r.vault_id, r.epoch).unwrap();
        let blob = seal_to_epoch_key(&r, ids().0.public().fingerprint(), key.public()).unwrap();
        (key, blob)
    }

    #[test]
    fn an_epoch_key_shard_opens_only_with_its_key() {
        let (key, blob) = epoch_sealed();
        let shard = SealedShard::parse(&blob).unwrap();
        assert_eq!(shard.header.epoch_key, Some(key.fingerprint()));
        assert_eq!(shard.header.recipient, ids().0.public().fingerprint());
        let rec = shard.open_with_epoch_key(&key).unwrap();
        assert_eq!(&rec.share.value[..], &[0x42; 64][..]);
        // The recipient's identity key is not the key: named, not tried.
        let err = shard.open(&ids().0).unwrap_err();
        assert!(matches!(err, SealError::EpochKeyNeeded { .. }), "{err}");
        assert!(err.to_string().contains("vault mesh recover"), "{err}");
        // Another epoch key of the same vault and epoch.
        let (other, _) = epoch_sealed();
        let err = shard.open_with_epoch_key(&other).unwrap_err();
        assert!(matches!(err, SealError::WrongEpochKey { .. }), "{err}");
        // A version 1 shard is not opened by an epoch key.
        let err = SealedShard::parse(&sealed())
            .unwrap()
            .open_with_epoch_key(&key)
            .unwrap_err();
        assert!(matches!(err, SealError::WrongEpochKey { .. }), "{err}");
        // A key made for another epoch is refused at sealing.
        let mut later = record(&[1; 64]);
        later.epoch = 4;
        assert!(seal_to_epoch_key(&later, ids().0.public().fingerprint(), key.public()).is_err());
    }

    #[test]
    fn an_epoch_key_shard_with_any_header_byte_changed_fails_authentication() {
        let (key, blob) = epoch_sealed();
        // Version and magic are checked by parsing; every other header
        // byte, the epoch key fingerprint included, is bound by the AEAD
        // or the key derivation. (The recipient and key fingerprint are
        // also compared by name first.)
        let header_len = 6 + 2 + 16 + 8 + 3 + 32 + 32;
        for at in 8..header_len {
            let mut bad = blob.clone();
            bad[at] ^= 0x01;
            let Ok(shard) = SealedShard::parse(&bad) else {
                continue;
            };
            assert!(shard.open_with_epoch_key(&key).is_err(), "byte {at}");
        }
    }

    #[test]
    fn wrong_key_is_named() {
        let blob = sealed();
        let err = SealedShard::parse(&blob)
            .unwrap()
            .open(&ids().1)
            .unwrap_err();
        assert!(matches!(err, SealError::WrongRecipient { .. }), "{err}");
    }

    #[test]
    fn truncation_version_suite_magic_are_distinct() {
        let blob = sealed();
        for cut in [0, 3, 5, 20, 100, 5000, blob.len() - 1] {
            let err = SealedShard::parse(&blob[..cut]).err().expect("must fail");
            assert!(
                matches!(
                    err,
                    SealError::Format(FormatError::Truncated { .. })
                        | SealError::Format(FormatError::BadMagic { .. })
                ),
                "cut {cut}: {err}"
            );
        }
        let mut v = blob.clone();
        v[5] = 9;
        assert!(matches!(
            SealedShard::parse(&v),
            Err(SealError::Format(FormatError::UnsupportedVersion {
                found: 9,
                ..
            }))
        ));
        let mut s = blob.clone();
        s[7] = 9;
        let err = SealedShard::parse(&s).err().expect("unknown suite");
        assert!(matches!(err, SealError::UnknownSuite(UnknownSuite(9))));
        assert!(err.to_string().contains("unknown KEM suite id 9"), "{err}");
        let mut m = blob.clone();
        m[0] = b'X';
        assert!(matches!(
            SealedShard::parse(&m),
            Err(SealError::Format(FormatError::BadMagic { .. }))
        ));
        let mut t = blob.clone();
        t.push(0);
        assert!(matches!(
            SealedShard::parse(&t),
            Err(SealError::Format(FormatError::TrailingBytes { count: 1 }))
        ));
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let blob = sealed();
        let key = &ids().0;
        // Every header byte, a stride through the KEM ciphertexts, and the
        // whole payload (tag included).
        let header_end = 6 + 2 + 16 + 8 + 3 + 32;
        let payload_start = blob.len() - (record(&[0x42; 64]).encode().len() + TAG_LEN);
        let positions = (0..header_end)
            .chain((header_end..payload_start).step_by(61))
            .chain(payload_start - 4..blob.len());
        for pos in positions {
            let mut bad = blob.clone();
            bad[pos] ^= 0x01;
            let result = SealedShard::parse(&bad).and_then(|s| s.open(key));
            assert!(result.is_err(), "flipping byte {pos} was not detected");
        }
    }

    #[test]
    fn header_fields_are_authenticated() {
        let blob = sealed();
        // Flip the epoch's low byte: parse succeeds, authentication fails.
        let mut bad = blob.clone();
        bad[6 + 2 + 16 + 7] ^= 1;
        let err = SealedShard::parse(&bad)
            .unwrap()
            .open(&ids().0)
            .unwrap_err();
        assert!(matches!(err, SealError::AuthenticationFailed), "{err}");
    }

    /// Suite 2 rejects implicitly: whichever byte of the HQC ciphertext is
    /// flipped, opening fails with the one authentication error, never a
    /// KEM error that would tell which component objected.
    #[test]
    fn a_flipped_hqc_ciphertext_byte_gives_the_uniform_error() {
        let blob = sealed();
        let key = &ids().0;
        let header_end = 6 + 2 + 16 + 8 + 3 + 32;
        let hqc_start = header_end + 32 + 1088;
        let hqc_len = Suite::X25519MlKem768Hqc192V5.hqc_ciphertext_len();
        let mut positions: Vec<usize> = (hqc_start..hqc_start + hqc_len).step_by(97).collect();
        positions.extend([hqc_start, hqc_start + 4481, hqc_start + hqc_len - 1]);
        for pos in positions {
            let mut bad = blob.clone();
            bad[pos] ^= 0x80;
            let err = SealedShard::parse(&bad)
                .expect("sizes unchanged")
                .open(key)
                .unwrap_err();
            assert!(
                matches!(err, SealError::AuthenticationFailed),
                "byte {pos}: {err}"
            );
        }
    }

    #[test]
    fn suite_1_still_seals_and_opens() {
        let old =
            SecretIdentity::generate_with_suite("old", Suite::X25519MlKem768Hqc192R4).unwrap();
        let blob = seal(
            &record(&[7; 40]),
            Suite::X25519MlKem768Hqc192R4,
            old.public(),
        )
        .unwrap();
        let shard = SealedShard::parse(&blob).unwrap();
        assert_eq!(shard.header.suite, Suite::X25519MlKem768Hqc192R4);
        assert_eq!(&shard.open(&old).unwrap().share.value[..], &[7; 40][..]);
        // A key of one suite is never used with the other.
        let err = seal(&record(&[7; 40]), Suite::DEFAULT, old.public()).unwrap_err();
        assert!(matches!(err, SealError::SuiteMismatch { .. }), "{err}");
        assert!(
            err.to_string().contains("x25519-mlkem768-hqc192r4 keys"),
            "{err}"
        );
    }
}
