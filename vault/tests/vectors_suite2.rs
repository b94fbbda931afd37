//! Published suite-2 test vectors (`tests/vectors/v1-suite2/`, TEST KEYS
//! ONLY, see `tests/vectors/README.md`): format version 1 files whose KEM
//! suite is 2, `x25519-mlkem768-hqc192v5` (HQC version 5).
//!
//! Written once by the `vault` CLI and never regenerated. Every later build
//! must still decode, verify, unseal and recover them; the last test
//! re-derives the documented layout and the combiner from the bytes with
//! plain aws-lc-rs primitives and the HQC v5 component alone.

mod common;

use common::sha256;
use std::path::PathBuf;
use vault::identity::{PublicIdentity, SecretIdentity};
use vault::kem::hqc_v5::Hqc192V5;
use vault::kem::mlkem::MlKem768;
use vault::kem::x25519::X25519;
use vault::kem::Kem;
use vault::manifest::{Manifest, VerifiedManifest};
use vault::recover::{recover, Candidate};
use vault::seal::SealedShard;

const OPERATOR_FINGERPRINT: &str =
    "f36d62b119ccd7515014b0c56600fbf6722afbe9d65df20e36fd09b6de4e029d";
const VALIDATOR_FINGERPRINTS: [&str; 3] = [
    "7d668df97a3e056b32b37b7e07aad2db5d3cc61af85b0b546a0f6f448ca53d04",
    "e53b7f4b8204c9b490a69564d609707ca79f41f410ec4d49cbdcc71c79cfa603",
    "bcedf28aa4313ff42e1c67bcb156824ce98e69fd737a5d1f179634a6f53d0676",
];
const VAULT_ID: &str = "1eeb975e3295f1b2b8e2ea5991321413";
const SECRET_COMMITMENT: &str = "0fdfb36f4dd2bd4d27c2883d0315f14723deb984922e227f0bc0caf067bb3133";
const SECRET: &[u8] = b"pqvault test vector suite 2 - not a real secret";

fn read(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/v1-suite2");
    std::fs::read(p.join(rel)).unwrap_or_else(|e| panic!("cannot read vector {rel}: {e}"))
}

fn validator(i: u8) -> String {
    format!("TEST-ONLY-validator-{i}")
}

fn key(i: u8) -> SecretIdentity {
    SecretIdentity::decode(&read(&format!("keys/{}.key", validator(i)))).unwrap()
}

fn shard(i: u8) -> Vec<u8> {
    read(&format!("vault/shard-{i:03}-{}.shard", validator(i)))
}

fn manifest() -> VerifiedManifest {
    let op = PublicIdentity::decode(&read("keys/TEST-ONLY-operator.pub")).unwrap();
    assert_eq!(op.fingerprint().to_hex(), OPERATOR_FINGERPRINT);
    Manifest::decode(&read("vault/manifest.pqvm"))
        .unwrap()
        .verify(Some(&op.fingerprint()))
        .unwrap()
}

#[test]
fn identities_manifest_and_shards_open_with_pinned_values() {
    assert_eq!(read("expected-secret.txt"), SECRET);
    let m = manifest();
    let b = m.body();
    assert_eq!(
        (b.suite.id(), b.suite.name()),
        (2, "x25519-mlkem768-hqc192v5")
    );
    assert_eq!(b.vault_id.to_string(), VAULT_ID);
    assert_eq!(hex::encode(b.secret_commitment), SECRET_COMMITMENT);
    assert_eq!((b.threshold, b.n, b.epoch), (2, 3, 1));
    for i in 1..=3u8 {
        let k = key(i);
        let p = PublicIdentity::decode(&read(&format!("keys/{}.pub", validator(i)))).unwrap();
        assert!(k.public() == &p);
        assert_eq!(p.suite().id(), 2);
        assert_eq!(
            p.fingerprint().to_hex(),
            VALIDATOR_FINGERPRINTS[usize::from(i) - 1]
        );
        let rec = SealedShard::parse(&shard(i)).unwrap().open(&k).unwrap();
        assert_eq!(rec.share.index, i);
        vault::recover::check_record(&m, &rec).unwrap();
    }
    let keys: Vec<_> = (1..=3).map(key).collect();
    let shards: Vec<_> = (1..=3).map(shard).collect();
    for (a, c) in [(1usize, 2usize), (1, 3), (2, 3)] {
        let cands = [
            Candidate::Sealed {
                source: format!("shard {a}"),
                bytes: &shards[a - 1],
            },
            Candidate::Sealed {
                source: format!("shard {c}"),
                bytes: &shards[c - 1],
            },
        ];
        assert_eq!(&recover(&m, &cands, &keys).unwrap().secret[..], SECRET);
    }
    let share = read("share-2.pqvu");
    let cands = [
        Candidate::Unsealed {
            source: "share-2.pqvu".into(),
            bytes: &share,
        },
        Candidate::Sealed {
            source: "shard 3".into(),
            bytes: &shards[2],
        },
    ];
    assert_eq!(&recover(&m, &cands, &keys).unwrap().secret[..], SECRET);
}

/// Offsets and constructions exactly as `docs/formats.md` and
/// `docs/combiner.md` state them for suite 2.
#[test]
fn documented_suite_2_layout_and_combiner_hold() {
    let be32 = |b: &[u8], o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let be16 = |b: &[u8], o: usize| u16::from_be_bytes(b[o..o + 2].try_into().unwrap());

    // PQVI: magic, version 1, var name (L bytes), then 7718 bytes of keys:
    // suite 2, x25519 32, ML-KEM 1184, HQC v5 4514, sig suite, 32, 1952.
    let v2 = read(&format!("keys/{}.pub", validator(2)));
    assert_eq!(&v2[..6], b"PQVI\x00\x01");
    let l = be32(&v2, 6);
    assert_eq!(v2.len(), 10 + l + 7718);
    assert_eq!(be16(&v2, 10 + l), 2, "kem suite");
    assert_eq!(
        be16(&v2, 10 + l + 2 + 32 + 1184 + 4514),
        1,
        "signature suite"
    );
    let mut fp_input = b"pqvault/v1 identity".to_vec();
    fp_input.extend_from_slice(&v2[10 + l..]);
    assert_eq!(hex::encode(sha256(&fp_input)), VALIDATOR_FINGERPRINTS[1]);

    // PQVK: magic, version 1, var PQVI, then 7098 bytes of secrets:
    // x25519 32, ML-KEM 2400, HQC v5 4602, Ed25519 seed 32, ML-DSA seed 32.
    let k = read(&format!("keys/{}.key", validator(2)));
    assert_eq!(&k[..6], b"PQVK\x00\x01");
    assert_eq!(&k[10..10 + be32(&k, 6)], &v2[..]);
    assert_eq!(k.len(), 10 + v2.len() + 7098);
    let secrets = &k[10 + v2.len()..];
    let (sk_x, sk_m, sk_h) = (&secrets[..32], &secrets[32..2432], &secrets[2432..7034]);

    // PQVS: 67-byte header with suite 2, ciphertexts 32 + 1088 + 8978.
    let s = shard(2);
    assert_eq!(&s[..8], b"PQVS\x00\x01\x00\x02");
    assert_eq!(hex::encode(&s[35..67]), VALIDATOR_FINGERPRINTS[1]);
    assert_eq!(be32(&s, 10165), s.len() - 10169);

    // The components, then the combiner and the AEAD with plain HMAC and
    // AES-GCM.
    let ss_x = X25519::decapsulate(sk_x, &s[67..99]).unwrap();
    let ss_m = MlKem768::decapsulate(sk_m, &s[99..1187]).unwrap();
    let ss_h = Hqc192V5::decapsulate(sk_h, &s[1187..10165]).unwrap();
    assert_eq!((ss_x.len(), ss_m.len(), ss_h.len()), (32, 32, 32));
    let label: &[u8] = b"pqvault/v1 hybrid-kem x25519-mlkem768-hqc192v5";
    let plain = common::open_as_documented(label, 2, &s, &ss_x, &ss_m, &ss_h);
    assert_eq!(&plain[..], &read("share-2.pqvu")[..]);
}

/// Epoch 2 of the suite-2 vault (`v1-suite2/epoch-2/`): every share
/// re-sealed under epoch 2 (what a repair's `prepare` does), the manifest
/// signed by validator-1 as the round's leader, and a `PQVE` certificate
/// signed by validators 1 and 2 (quorum(2, 3) = 2). Written once by
/// [`generate_epoch_2_vectors`]; the certificate is checked both ways:
/// fields at the offsets `docs/formats.md` gives, and re-encoding gives the
/// same bytes; the chain verifies from the operator and recovers.
#[test]
fn epoch_2_certificate_both_ways_and_the_chain_recovers() {
    use vault::epoch::{verify_chain, EpochCertificate};
    let genesis_bytes = read("vault/manifest.pqvm");
    let m2 = read("epoch-2/manifest.pqvm");
    let ce = read("epoch-2/step-2.pqve");

    // Decode: the documented layout.
    assert_eq!(&ce[..6], b"PQVE\x00\x01");
    assert_eq!(hex::encode(&ce[6..22]), VAULT_ID);
    assert_eq!(u64::from_be_bytes(ce[22..30].try_into().unwrap()), 1);
    assert_eq!(&ce[30..62], &sha256(&genesis_bytes)[..]);
    assert_eq!(&ce[62..94], &sha256(&m2)[..]);
    assert_eq!(ce[94], 2, "two signers");
    let cert = EpochCertificate::decode(&ce).unwrap();
    assert_eq!(cert.transition.from_epoch, 1);
    assert_eq!(cert.transition.vault_id.to_string(), VAULT_ID);
    let signers: Vec<String> = cert
        .signatures
        .iter()
        .map(|(id, _)| id.fingerprint().to_hex())
        .collect();
    assert_eq!(signers, VALIDATOR_FINGERPRINTS[..2]);
    let mut o = 95;
    for (id, sig) in &cert.signatures {
        let p = u32::from_be_bytes(ce[o..o + 4].try_into().unwrap()) as usize;
        assert_eq!(&ce[o + 4..o + 4 + p], &id.encode()[..]);
        assert_eq!(&ce[o + 4 + p..o + 4 + p + 64], &sig.ed25519[..]);
        assert_eq!(&ce[o + 68 + p..o + 68 + p + 3309], &sig.mldsa[..]);
        o += 4 + p + 64 + 3309;
    }
    assert_eq!(o, ce.len());
    // Encode: the decoded certificate gives the same bytes.
    assert_eq!(cert.encode(), ce);

    // The chain from the pinned operator, and epoch 2 recovers the secret.
    let latest = verify_chain(manifest(), &[(m2.clone(), cert)]).unwrap();
    assert_eq!(latest.body().epoch, 2);
    assert_eq!(
        latest.signer().fingerprint().to_hex(),
        VALIDATOR_FINGERPRINTS[0]
    );
    let keys: Vec<_> = (1..=3).map(key).collect();
    let shards: Vec<_> = (1..=3u8)
        .map(|i| read(&format!("epoch-2/shard-{i:03}-{}.shard", validator(i))))
        .collect();
    let cands = [
        Candidate::Sealed {
            source: "epoch-2 shard 2".into(),
            bytes: &shards[1],
        },
        Candidate::Sealed {
            source: "epoch-2 shard 3".into(),
            bytes: &shards[2],
        },
    ];
    assert_eq!(&recover(&latest, &cands, &keys).unwrap().secret[..], SECRET);
    // An epoch-1 shard is stale under the epoch-2 manifest.
    let old = [Candidate::Sealed {
        source: "epoch-1 shard 1".into(),
        bytes: &shard(1)[..],
    }];
    let err = recover(&latest, &old, &keys).err().unwrap().to_string();
    assert!(err.contains("stale"), "{err}");
}

/// Writes `v1-suite2/epoch-2/` once (it refuses to overwrite): run with
/// `cargo test -p vault --test vectors_suite2 -- --ignored`. Then
/// `vault/tests/vectors/v1-suite2/make_pqvc.py` lays the `PQVC` proof out
/// from the docs.
#[test]
#[ignore = "writes the epoch-2 vectors; run once, by hand"]
fn generate_epoch_2_vectors() {
    use vault::epoch::{EpochCertificate, Transition};
    use vault::manifest::shard_hash;
    use vault::share::ShareRecord;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/v1-suite2/epoch-2");
    assert!(
        !dir.exists(),
        "the epoch-2 vectors exist: never regenerate them"
    );
    std::fs::create_dir_all(&dir).unwrap();
    let g = manifest();
    let keys: Vec<_> = (1..=3).map(key).collect();
    let mut body = g.body().clone();
    body.epoch = 2;
    for i in 1..=3u8 {
        let k = &keys[usize::from(i) - 1];
        let old = SealedShard::parse(&shard(i)).unwrap().open(k).unwrap();
        let next = ShareRecord {
            vault_id: old.vault_id,
            epoch: 2,
            threshold: old.threshold,
            n: old.n,
            share: old.share.clone(),
        };
        let sealed = vault::seal::seal(&next, g.body().suite, k.public()).unwrap();
        let e = &mut body.shards[usize::from(i) - 1];
        e.blob_hash = shard_hash(&sealed);
        e.share_commitment = next.commitment();
        let name = format!("shard-{i:03}-{}.shard", validator(i));
        std::fs::write(dir.join(name), &sealed).unwrap();
    }
    let m2 = Manifest::sign(&body, keys[0].public(), keys[0].signing_key()).unwrap();
    let t = Transition::between(&g, &Manifest::decode(&m2).unwrap());
    let cert = EpochCertificate {
        signatures: vec![t.sign(&keys[0]).unwrap(), t.sign(&keys[1]).unwrap()],
        transition: t,
    };
    std::fs::write(dir.join("manifest.pqvm"), &m2).unwrap();
    std::fs::write(dir.join("step-2.pqve"), cert.encode()).unwrap();
}
