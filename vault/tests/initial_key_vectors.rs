//! Published initial-key test vectors (`tests/vectors/initial-key-v1/`,
//! TEST KEYS ONLY, see `tests/vectors/README.md`): the suite-2
//! `TEST-ONLY-validator-1`'s initial KEM key as `vault keygen` writes it,
//! the signed public statement (`PQVJ`, `.ipub`) and the secret file
//! (`PQVO`, `.ikey`), and share 1 of the suite-2 vector vault sealed to it
//! (`PQVS` version 2 at epoch 1, as `vault create` seals genesis shards to
//! initial keys).
//!
//! Written once by `write_initial_key_vectors` (ignored; run it with
//! `PQVAULT_WRITE_VECTORS=1 cargo test -p vault --test initial_key_vectors
//! -- --ignored` only to make a new version's set) and never regenerated.

use std::path::PathBuf;
use vault::identity::{PublicIdentity, SecretIdentity};
use vault::initial_key::{self, InitialKeyError};
use vault::seal::SealedShard;

/// The initial key's fingerprint (`EpochPublicKey::fingerprint`).
const INITIAL_FINGERPRINT: &str =
    "988731cfc5021b119a7434870fc3b1f37f76ba24eb35ecb1bba59fe06c14558c";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(dir().join(rel)).unwrap_or_else(|e| panic!("cannot read vector {rel}: {e}"))
}

fn validator_1() -> SecretIdentity {
    SecretIdentity::decode(&read("v1-suite2/keys/TEST-ONLY-validator-1.key")).unwrap()
}

#[test]
fn the_checked_in_initial_key_verifies_and_opens_its_genesis_shard() {
    let v1 = validator_1();
    let public = initial_key::verify_public(
        &read("initial-key-v1/TEST-ONLY-validator-1.ipub"),
        v1.public(),
    )
    .unwrap();
    assert_eq!(public.fingerprint().to_hex(), INITIAL_FINGERPRINT);
    assert!(initial_key::is_initial(&public));
    let (owner, key) =
        initial_key::decode_secret(&read("initial-key-v1/TEST-ONLY-validator-1.ikey")).unwrap();
    assert_eq!(owner, v1.public().fingerprint());
    assert_eq!(key.fingerprint(), public.fingerprint());

    // The genesis shard opens with the initial key only, to the same
    // record as the identity-sealed (version 1) shard of that vault.
    let shard = SealedShard::parse(&read(
        "initial-key-v1/shard-001-TEST-ONLY-validator-1.shard",
    ))
    .unwrap();
    assert_eq!(shard.header.epoch, 1);
    assert_eq!(shard.header.epoch_key, Some(public.fingerprint()));
    let record = shard.open_with_epoch_key(&key).unwrap();
    let v1_record = SealedShard::parse(&read(
        "v1-suite2/vault/shard-001-TEST-ONLY-validator-1.shard",
    ))
    .unwrap()
    .open(&v1)
    .unwrap();
    assert_eq!(record.encode(), v1_record.encode());
    assert!(shard.open(&v1).is_err(), "the identity does not open it");

    // Another identity's statement is refused.
    let v2 = PublicIdentity::decode(&read("v1-suite2/keys/TEST-ONLY-validator-2.pub")).unwrap();
    assert!(matches!(
        initial_key::verify_public(&read("initial-key-v1/TEST-ONLY-validator-1.ipub"), &v2),
        Err(InitialKeyError::Refused(_))
    ));
}

/// Writes the set (run once; see the module docs).
#[test]
#[ignore = "writes the published vectors; run only to make a new set"]
fn write_initial_key_vectors() {
    if std::env::var_os("PQVAULT_WRITE_VECTORS").is_none() {
        return;
    }
    let out = dir().join("initial-key-v1");
    assert!(
        !out.join("TEST-ONLY-validator-1.ipub").exists(),
        "published vectors are never regenerated"
    );
    std::fs::create_dir_all(&out).unwrap();
    let v1 = validator_1();
    let (public, secret) = initial_key::generate(&v1).unwrap();
    std::fs::write(out.join("TEST-ONLY-validator-1.ipub"), &public).unwrap();
    std::fs::write(out.join("TEST-ONLY-validator-1.ikey"), &secret[..]).unwrap();
    let key = initial_key::verify_public(&public, v1.public()).unwrap();
    let record = SealedShard::parse(&read(
        "v1-suite2/vault/shard-001-TEST-ONLY-validator-1.shard",
    ))
    .unwrap()
    .open(&v1)
    .unwrap();
    let sealed = vault::seal::seal_to_epoch_key(&record, v1.public().fingerprint(), &key).unwrap();
    std::fs::write(out.join("shard-001-TEST-ONLY-validator-1.shard"), sealed).unwrap();
    println!("initial key fingerprint {}", key.fingerprint().to_hex());
}
