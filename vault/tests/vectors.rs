//! Published version-1 test vectors (`tests/vectors/v1/`, TEST KEYS ONLY,
//! see `tests/vectors/README.md`).
//!
//! These files were written once by the `vault` CLI and are never
//! regenerated. Every future build must still decode, verify, unseal and
//! recover them: a change to a file format, a hash or KDF label, the
//! fingerprint definition or the combiner makes this test fail. A new
//! format version must keep reading version 1 (see `docs/formats.md`).
//!
//! The last test re-derives the documented constructions (fingerprint,
//! signed message, share commitment, hybrid combiner and AEAD) straight
//! from the bytes with aws-lc-rs primitives, so `docs/formats.md` and the
//! code cannot drift apart silently.

mod common;

use aws_lc_rs::signature::{UnparsedPublicKey, ED25519, ML_DSA_65};
use common::sha256;
use std::path::PathBuf;
use vault::identity::{PublicIdentity, SecretIdentity};
use vault::kem::hqc_r4::Hqc192R4;
use vault::kem::mlkem::MlKem768;
use vault::kem::x25519::X25519;
use vault::kem::Kem;
use vault::manifest::{Manifest, ManifestError, VerifiedManifest};
use vault::recover::{check_record, check_sealed, recover, Candidate};
use vault::seal::{SealError, SealedShard};
use vault::share::ShareRecord;

/// Fingerprint of `TEST-ONLY-operator` (from `vault inspect --json`).
const OPERATOR_FINGERPRINT: &str =
    "ce2f56f517f28b98b64ceee73753a1cc5f58f79bb4c0412cede9f8d99f11d933";
/// Fingerprints of `TEST-ONLY-validator-1..=3`, in index order.
const VALIDATOR_FINGERPRINTS: [&str; 3] = [
    "e2e45920286eb0acf41480c91070021e1be8fb746a391ab4f9603bb6fb9d8820",
    "b325aeb221ac40512d0368618fc3504a5bb2b944f1dc46fea1200fe33ec0e9fd",
    "d893073b9182c04926c55d606eca10c34bbebd2e2ea39873908fec92516afd7f",
];
/// The vault id recorded in the manifest and every shard.
const VAULT_ID: &str = "2862026094e48c8385032420c1476195";
/// The manifest's secret commitment.
const SECRET_COMMITMENT: &str = "925f17c5e808b2da3aa3cee39e7859c76839c6e2997125187b82b2fee41f9409";
/// The secret, as also stored in `expected-secret.txt`.
const SECRET: &[u8] = b"pqvault test vector v1 - not a real secret";

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/v1")
        .join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(path(rel)).unwrap_or_else(|e| panic!("cannot read vector {rel}: {e}"))
}

fn validator_name(i: u8) -> String {
    format!("TEST-ONLY-validator-{i}")
}

fn public(name: &str) -> PublicIdentity {
    PublicIdentity::decode(&read(&format!("keys/{name}.pub"))).unwrap()
}

fn key(i: u8) -> SecretIdentity {
    SecretIdentity::decode(&read(&format!("keys/{}.key", validator_name(i)))).unwrap()
}

fn keys() -> Vec<SecretIdentity> {
    (1..=3).map(key).collect()
}

fn shard(i: u8) -> Vec<u8> {
    read(&format!("vault/shard-{i:03}-{}.shard", validator_name(i)))
}

fn manifest() -> VerifiedManifest {
    let op = public("TEST-ONLY-operator");
    assert_eq!(op.fingerprint().to_hex(), OPERATOR_FINGERPRINT);
    Manifest::decode(&read("vault/manifest.pqvm"))
        .unwrap()
        .verify(Some(&op.fingerprint()))
        .unwrap()
}

fn expected_secret() -> Vec<u8> {
    let s = read("expected-secret.txt");
    assert_eq!(s, SECRET, "expected-secret.txt changed");
    s
}

#[test]
fn fingerprints_are_pinned() {
    let op = public("TEST-ONLY-operator");
    assert_eq!(op.name(), "TEST-ONLY-operator");
    assert_eq!(op.fingerprint().to_hex(), OPERATOR_FINGERPRINT);
    let op_key = SecretIdentity::decode(&read("keys/TEST-ONLY-operator.key")).unwrap();
    assert!(op_key.public() == &op);
    for i in 1..=3u8 {
        let p = public(&validator_name(i));
        assert_eq!(p.name(), validator_name(i));
        assert_eq!(
            p.fingerprint().to_hex(),
            VALIDATOR_FINGERPRINTS[usize::from(i) - 1]
        );
        // The secret key file embeds exactly the published identity.
        assert!(key(i).public() == &p);
    }
}

#[test]
fn manifest_verifies_with_the_pinned_operator() {
    let m = manifest();
    assert_eq!(m.signer().name(), "TEST-ONLY-operator");
    let b = m.body();
    assert_eq!(b.vault_id.to_string(), VAULT_ID);
    assert_eq!(b.suite.id(), 1);
    assert_eq!(b.suite.name(), "x25519-mlkem768-hqc192r4");
    assert_eq!((b.threshold, b.n, b.epoch), (2, 3, 1));
    assert_eq!(b.secret_len as usize, expected_secret().len());
    assert_eq!(b.secret_len, 42);
    assert_eq!(hex::encode(b.secret_commitment), SECRET_COMMITMENT);
    assert_eq!(b.shards.len(), 3);
    for (e, i) in b.shards.iter().zip(1u8..) {
        assert_eq!(e.index, i);
        assert_eq!(e.recipient_name, validator_name(i));
        assert_eq!(
            e.recipient.to_hex(),
            VALIDATOR_FINGERPRINTS[usize::from(i) - 1]
        );
        assert_eq!(e.blob_hash, sha256(&shard(i)));
    }
    // The operator is not a recipient.
    assert!(b
        .shards
        .iter()
        .all(|e| e.recipient.to_hex() != OPERATOR_FINGERPRINT));

    // Pinned to anyone else, the same manifest is refused.
    let other = public(&validator_name(1)).fingerprint();
    let err = Manifest::decode(&read("vault/manifest.pqvm"))
        .unwrap()
        .verify(Some(&other))
        .unwrap_err();
    assert!(
        matches!(err, ManifestError::UntrustedSigner { .. }),
        "{err}"
    );
}

#[test]
fn every_shard_unseals_and_matches_its_commitment() {
    let m = manifest();
    let keys = keys();
    for i in 1..=3u8 {
        let bytes = shard(i);
        let (sealed, entry) = check_sealed(&m, &bytes).unwrap();
        assert_eq!(entry.index, i);
        let h = &sealed.header;
        assert_eq!(h.vault_id.to_string(), VAULT_ID);
        assert_eq!((h.epoch, h.index, h.threshold, h.n), (1, i, 2, 3));
        assert_eq!(
            h.recipient.to_hex(),
            VALIDATOR_FINGERPRINTS[usize::from(i) - 1]
        );

        let rec = SealedShard::parse(&bytes)
            .unwrap()
            .open(&keys[usize::from(i) - 1])
            .unwrap();
        assert_eq!(rec.share.index, i);
        assert_eq!(rec.share.value.len(), SECRET.len() + 32);
        check_record(&m, &rec).unwrap();

        // Another validator's key is named as the wrong one.
        let wrong = &keys[usize::from(i) % 3];
        let err = SealedShard::parse(&bytes).unwrap().open(wrong).unwrap_err();
        assert!(matches!(err, SealError::WrongRecipient { .. }), "{err}");
    }
}

#[test]
fn every_pair_of_shards_recovers_the_secret() {
    let m = manifest();
    let keys = keys();
    let expected = expected_secret();
    let shards: Vec<Vec<u8>> = (1..=3).map(shard).collect();
    for (a, b) in [(1u8, 2u8), (1, 3), (2, 3)] {
        let c = [
            Candidate::Sealed {
                source: format!("shard {a}"),
                bytes: &shards[usize::from(a) - 1],
            },
            Candidate::Sealed {
                source: format!("shard {b}"),
                bytes: &shards[usize::from(b) - 1],
            },
        ];
        let r = recover(&m, &c, &keys).unwrap();
        assert_eq!(&r.secret[..], &expected[..], "shards {a} and {b}");
        assert_eq!(r.used, vec![a, b]);
        assert!(r.rejected.is_empty());
    }
}

#[test]
fn unsealed_share_plus_a_sealed_shard_recovers_the_secret() {
    let m = manifest();
    let keys = keys();
    let expected = expected_secret();
    let share = read("share-2.pqvu");

    let rec = ShareRecord::decode(&share).unwrap();
    assert_eq!(rec.vault_id.to_string(), VAULT_ID);
    assert_eq!((rec.epoch, rec.threshold, rec.n), (1, 2, 3));
    assert_eq!(rec.share.index, 2);
    check_record(&m, &rec).unwrap();
    // It is exactly what validator 2 unseals from its shard.
    let opened = SealedShard::parse(&shard(2))
        .unwrap()
        .open(&keys[1])
        .unwrap();
    assert_eq!(&opened.encode()[..], &share[..]);

    for other in [1u8, 3] {
        let sealed = shard(other);
        let c = [
            Candidate::Unsealed {
                source: "share-2.pqvu".into(),
                bytes: &share,
            },
            Candidate::Sealed {
                source: format!("shard {other}"),
                bytes: &sealed,
            },
        ];
        let r = recover(&m, &c, &keys).unwrap();
        assert_eq!(&r.secret[..], &expected[..], "share 2 and shard {other}");
        let mut used = vec![2, other];
        used.sort();
        assert_eq!(r.used, used);
    }
}

/// Offsets and constructions exactly as `docs/formats.md` states them.
#[test]
fn documented_layout_and_constructions_hold() {
    let be32 = |b: &[u8], o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let be16 = |b: &[u8], o: usize| u16::from_be_bytes(b[o..o + 2].try_into().unwrap());

    // PQVI: magic, version, var name (L bytes), then 7726 bytes of keys.
    let op = read("keys/TEST-ONLY-operator.pub");
    assert_eq!(&op[..6], b"PQVI\x00\x01");
    let l = be32(&op, 6);
    assert_eq!(&op[10..10 + l], b"TEST-ONLY-operator");
    assert_eq!(op.len(), 7736 + l);
    assert_eq!(be16(&op, 10 + l), 1, "kem suite");
    assert_eq!(be16(&op, 5750 + l), 1, "signature suite");
    let mut fp_input = b"pqvault/v1 identity".to_vec();
    fp_input.extend_from_slice(&op[10 + l..]);
    assert_eq!(hex::encode(sha256(&fp_input)), OPERATOR_FINGERPRINT);
    let op_ed25519 = &op[5752 + l..5784 + l];
    let op_mldsa = &op[5784 + l..7736 + l];

    // PQVK: magic, version, var PQVI, then 7082 bytes of secrets.
    let k = read("keys/TEST-ONLY-operator.key");
    assert_eq!(&k[..6], b"PQVK\x00\x01");
    assert_eq!(&k[10..10 + be32(&k, 6)], &op[..]);
    assert_eq!(k.len(), op.len() + 7092);

    // PQVM: fixed part 78 bytes, entries, var signer, 64 + 3309 signature.
    let mf = read("vault/manifest.pqvm");
    assert_eq!(&mf[..8], b"PQVM\x00\x01\x00\x01");
    assert_eq!(hex::encode(&mf[8..24]), VAULT_ID);
    assert_eq!(u64::from_be_bytes(mf[24..32].try_into().unwrap()), 1);
    assert_eq!((mf[40], mf[41], be32(&mf, 42)), (2, 3, 42));
    assert_eq!(hex::encode(&mf[46..78]), SECRET_COMMITMENT);
    let mut o = 78;
    let mut share_commitments = Vec::new();
    for i in 1..=3u8 {
        assert_eq!(mf[o], i);
        let name_len = be32(&mf, o + 33);
        assert_eq!(&mf[o + 37..o + 37 + name_len], validator_name(i).as_bytes());
        assert_eq!(
            &mf[o + 37 + name_len..o + 69 + name_len],
            &sha256(&shard(i))
        );
        share_commitments.push(mf[o + 69 + name_len..o + 101 + name_len].to_vec());
        o += 101 + name_len;
    }
    let signer_len = be32(&mf, o);
    assert_eq!(&mf[o + 4..o + 4 + signer_len], &op[..]);
    let signed_len = o + 4 + signer_len;
    assert_eq!(mf.len(), signed_len + 64 + 3309);
    let mut msg = b"pqvault/v1 sig".to_vec();
    msg.push(8);
    msg.extend_from_slice(b"manifest");
    msg.extend_from_slice(&mf[..signed_len]);
    UnparsedPublicKey::new(&ED25519, op_ed25519)
        .verify(&msg, &mf[signed_len..signed_len + 64])
        .expect("Ed25519 half over the documented message");
    UnparsedPublicKey::new(&ML_DSA_65, op_mldsa)
        .verify(&msg, &mf[signed_len + 64..])
        .expect("ML-DSA-65 half over the documented message");

    // PQVU: 37 bytes of context and length, then the share value.
    let share = read("share-2.pqvu");
    assert_eq!(&share[..6], b"PQVU\x00\x01");
    assert_eq!(hex::encode(&share[6..22]), VAULT_ID);
    assert_eq!((share[30], share[31], share[32]), (2, 3, 2));
    let value = &share[37..];
    assert_eq!(be32(&share, 33), value.len());
    assert_eq!(value.len(), SECRET.len() + 32);
    let mut c = b"pqvault/v1 share-commitment".to_vec();
    c.extend_from_slice(&share[6..22]); // vault id
    c.extend_from_slice(&share[22..30]); // epoch, u64 BE
    c.push(2); // index
    c.extend_from_slice(&(value.len() as u64).to_be_bytes());
    c.extend_from_slice(value);
    assert_eq!(&sha256(&c)[..], &share_commitments[1][..]);

    // PQVS: 67-byte header (the AAD), three KEM ciphertexts, var payload.
    let s = shard(2);
    assert_eq!(&s[..8], b"PQVS\x00\x01\x00\x01");
    assert_eq!(&s[8..24], &mf[8..24]);
    assert_eq!((s[32], s[33], s[34]), (2, 2, 3));
    assert_eq!(hex::encode(&s[35..67]), VALIDATOR_FINGERPRINTS[1]);
    assert_eq!(be32(&s, 10165), s.len() - 10169);
    assert_eq!(s.len() - 10169, share.len() + 16);

    // The combiner and the AEAD, recomputed with plain HMAC and AES-GCM.
    let v2 = key(2);
    let ss_x = X25519::decapsulate(&v2.kem().x25519, &s[67..99]).unwrap();
    let ss_m = MlKem768::decapsulate(&v2.kem().mlkem, &s[99..1187]).unwrap();
    let ss_h = Hqc192R4::decapsulate(&v2.kem().hqc, &s[1187..10165]).unwrap();
    assert_eq!((ss_x.len(), ss_m.len(), ss_h.len()), (32, 32, 64));
    let label: &[u8] = b"pqvault/v1 hybrid-kem x25519-mlkem768-hqc192r4";
    let plain = common::open_as_documented(label, 1, &s, &ss_x, &ss_m, &ss_h);
    assert_eq!(&plain[..], &share[..]);
}

/// `v1/membership-2.pqvn`: a `PQVN` membership removal, version 2,
/// removing `validator-3` and `validator-9`, signed by the operator
/// (`vault mesh remove --offline`, see `tests/vectors/README.md`).
#[test]
fn membership_removal_decodes_from_its_documented_layout() {
    use vault::membership::Removal;
    let b = read("membership-2.pqvn");
    let be32 = |at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    assert_eq!(&b[..4], b"PQVN");
    assert_eq!(u16::from_be_bytes([b[4], b[5]]), 1, "format version");
    assert_eq!(be32(6), 2, "statement version");
    assert_eq!(u16::from_be_bytes([b[10], b[11]]), 2, "removed count");
    assert_eq!(be32(12), 11);
    assert_eq!(&b[16..27], b"validator-3");
    assert_eq!(be32(27), 11);
    assert_eq!(&b[31..42], b"validator-9");
    let signer_len = be32(42);
    let signer = PublicIdentity::decode(&b[46..46 + signer_len]).unwrap();
    assert_eq!(signer.fingerprint().to_hex(), OPERATOR_FINGERPRINT);
    assert_eq!(b.len(), 46 + signer_len + 64 + 3309);

    let r = Removal::open(&b, &public("TEST-ONLY-operator").fingerprint()).unwrap();
    assert_eq!(r.version, 2);
    assert_eq!(
        r.removed.iter().map(String::as_str).collect::<Vec<_>>(),
        ["validator-3", "validator-9"]
    );
    // Only the operator: a validator's fingerprint refuses it.
    assert!(Removal::open(&b, &public(&validator_name(1)).fingerprint()).is_err());
    for cut in [0, 11, 30, b.len() - 1] {
        assert!(Removal::open(&b[..cut], &signer.fingerprint()).is_err());
    }
}

fn removal_vector(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/removal-v1")
        .join(rel)
}

/// Writes `removal-v1/removal-validator-3.pqvz` once (refusing to
/// overwrite): `cargo test -p vault --test vectors -- --ignored
/// generate_certified_removal_vector`. `membership-3.pqvn` beside it is
/// written by the CLI (tests/vectors/README.md).
#[test]
#[ignore]
fn generate_certified_removal_vector() {
    use vault::membership::{CertifiedRemoval, RemovalVote};
    let out = removal_vector("removal-validator-3.pqvz");
    assert!(!out.exists(), "vectors are never regenerated");
    let votes: Vec<Vec<u8>> = (1..=2u8)
        .map(|i| RemovalVote::sign("validator-3", 3, &format!("validator-{i}"), &key(i)).unwrap())
        .collect();
    std::fs::write(out, CertifiedRemoval::encode("validator-3", 3, &votes)).unwrap();
}

/// `removal-v1/membership-3.pqvn` (a `PQVN` of format version 2: policy
/// time 600 s, `validator-8` readmitted at 3) and
/// `removal-v1/removal-validator-3.pqvz` (a `PQVZ` of two `PQVT` votes,
/// by `validator-1` and `validator-2` with the v1 test keys): decoded from
/// their documented layouts, then checked as a validator would.
#[test]
fn certified_removal_decodes_from_its_documented_layout() {
    use std::collections::BTreeMap;
    use vault::membership::{removal_quorum, CertifiedRemoval, MembershipError, Removal};
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let be16 = |b: &[u8], at: usize| usize::from(u16::from_be_bytes([b[at], b[at + 1]]));

    let n = std::fs::read(removal_vector("membership-3.pqvn")).unwrap();
    assert_eq!(&n[..4], b"PQVN");
    assert_eq!(be16(&n, 4), 2, "format version");
    assert_eq!(be32(&n, 6), 3, "statement version");
    assert_eq!(be16(&n, 10), 1, "removed count");
    assert_eq!(be32(&n, 12), 11);
    assert_eq!(&n[16..27], b"validator-9");
    assert_eq!(be32(&n, 27), 600, "policy time");
    assert_eq!(be16(&n, 31), 1, "readmitted count");
    assert_eq!(be32(&n, 33), 11);
    assert_eq!(&n[37..48], b"validator-8");
    assert_eq!(be32(&n, 48), 3, "readmitted at");
    let signer_len = be32(&n, 52);
    assert_eq!(n.len(), 56 + signer_len + 64 + 3309);
    let op = public("TEST-ONLY-operator").fingerprint();
    let statement = Removal::open(&n, &op).unwrap();
    assert_eq!(statement.dead_after_s, 600);
    assert_eq!(statement.readmitted_at("validator-8"), 3);

    let z = std::fs::read(removal_vector("removal-validator-3.pqvz")).unwrap();
    assert_eq!(&z[..4], b"PQVZ");
    assert_eq!(be16(&z, 4), 1);
    assert_eq!(be32(&z, 6), 11);
    assert_eq!(&z[10..21], b"validator-3");
    assert_eq!(be32(&z, 21), 3, "base version");
    assert_eq!(be16(&z, 25), 2, "vote count");
    // The first vote, a whole PQVT.
    let len = be32(&z, 27);
    let t = &z[31..31 + len];
    assert_eq!(&t[..4], b"PQVT");
    assert_eq!(be16(t, 4), 1);
    assert_eq!(&t[10..21], b"validator-3");
    assert_eq!(be32(t, 21), 3);
    assert_eq!(be32(t, 25), 11);
    assert_eq!(&t[29..40], b"validator-1");
    let id_len = be32(t, 40);
    let voter = PublicIdentity::decode(&t[44..44 + id_len]).unwrap();
    assert_eq!(voter.fingerprint().to_hex(), VALIDATOR_FINGERPRINTS[0]);
    assert_eq!(t.len(), 44 + id_len + 64 + 3309);
    // The signature over everything before it, domain "pqvault/v1
    // removal-vote" (the hybrid signing construction of `PQVM`).
    let c = CertifiedRemoval::open(&z).unwrap();
    assert_eq!(c.votes.len(), 2);
    assert_eq!(c.votes[1].voter, "validator-2");

    // Checked as validator-1 would: three members, each with the key its
    // certificate binds; a quorum of 2.
    let members: BTreeMap<String, Option<vault::identity::Fingerprint>> = (1..=3u8)
        .map(|i| {
            (
                format!("validator-{i}"),
                Some(public(&validator_name(i)).fingerprint()),
            )
        })
        .collect();
    let q = removal_quorum(3, 0);
    assert_eq!(q, 2);
    assert_eq!(c.check(&statement, &members, q).unwrap(), 2);
    assert!(matches!(
        c.check(&statement, &members, 3),
        Err(MembershipError::TooFew {
            counted: 2,
            quorum: 3,
            ..
        })
    ));
    for cut in [0, 10, 30, z.len() - 1] {
        assert!(CertifiedRemoval::open(&z[..cut]).is_err());
    }
}
