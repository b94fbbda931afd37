//! Checked-in version-1 files (TEST KEYS, see vectors/README.md) must keep
//! decoding, verifying, unsealing and recovering in every future build.

use std::path::PathBuf;
use vault::identity::{PublicIdentity, SecretIdentity};
use vault::manifest::{Manifest, VerifiedManifest};
use vault::recover::{check_record, recover, Candidate};
use vault::seal::SealedShard;

const OPERATOR_FINGERPRINT: &str =
    "a94b246167a0d33ddd906fa3e4a52c466ad468688b793781b555c57eb940e00a";
const VALIDATOR_1_FINGERPRINT: &str =
    "704718a3ccc699363c28a5a6ee0b24aca29ac54e1ec5f454bb49a59ef39e6375";
const VAULT_ID: &str = "a3f800d483fe3ac36b0399b432655c86";
const SECRET_COMMITMENT: &str = "24cf4a083d804dec0481c28b2b3b65794e6a194b59cd0663b937d4dee3d78fcb";

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/v1")
        .join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn key(i: u8) -> SecretIdentity {
    SecretIdentity::decode(&read(&format!("keys/TEST-ONLY-validator-{i}.key"))).unwrap()
}

fn shard(i: u8) -> Vec<u8> {
    read(&format!("vault/shard-00{i}-TEST-ONLY-validator-{i}.shard"))
}

fn manifest() -> VerifiedManifest {
    let op = PublicIdentity::decode(&read("keys/TEST-ONLY-operator.pub")).unwrap();
    Manifest::decode(&read("vault/manifest.pqvm"))
        .unwrap()
        .verify(Some(&op.fingerprint()))
        .unwrap()
}

#[test]
fn fingerprints_and_manifest_fields_are_stable() {
    let op = PublicIdentity::decode(&read("keys/TEST-ONLY-operator.pub")).unwrap();
    assert_eq!(op.fingerprint().to_hex(), OPERATOR_FINGERPRINT);
    assert_eq!(
        key(1).public().fingerprint().to_hex(),
        VALIDATOR_1_FINGERPRINT
    );
    let m = manifest();
    let b = m.body();
    assert_eq!(b.vault_id.to_string(), VAULT_ID);
    assert_eq!((b.threshold, b.n, b.epoch, b.secret_len), (2, 3, 1, 42));
    assert_eq!(hex::encode(b.secret_commitment), SECRET_COMMITMENT);
    assert_eq!(m.signer().name(), "TEST-ONLY-operator");
}

#[test]
fn every_shard_unseals_and_matches_its_commitment() {
    let m = manifest();
    for i in 1..=3 {
        let rec = SealedShard::parse(&shard(i))
            .unwrap()
            .open(&key(i))
            .unwrap();
        assert_eq!(rec.share.index, i);
        check_record(&m, &rec).unwrap();
    }
}

#[test]
fn every_pair_recovers_the_secret() {
    let m = manifest();
    let expected = read("expected-secret.txt");
    let keys: Vec<SecretIdentity> = (1..=3).map(key).collect();
    let shards: Vec<Vec<u8>> = (1..=3).map(shard).collect();
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let c = [
            Candidate::Sealed {
                source: format!("{a}"),
                bytes: &shards[a],
            },
            Candidate::Sealed {
                source: format!("{b}"),
                bytes: &shards[b],
            },
        ];
        assert_eq!(&recover(&m, &c, &keys).unwrap().secret[..], &expected[..]);
    }
    // An unsealed share file plus one sealed shard.
    let share = read("share-2.pqvu");
    let c = [
        Candidate::Unsealed {
            source: "share-2".into(),
            bytes: &share,
        },
        Candidate::Sealed {
            source: "3".into(),
            bytes: &shards[2],
        },
    ];
    assert_eq!(&recover(&m, &c, &keys).unwrap().secret[..], &expected[..]);
}
