//! Published recovery-request test vectors (`tests/vectors/recovery-v1/`,
//! TEST KEYS ONLY, see `tests/vectors/README.md`): a `PQVG` request signed
//! by the suite-2 `TEST-ONLY-operator` for the suite-2 vector vault at
//! epoch 1, and a `PQVH` answer carrying share 1 of that vault sealed to
//! the request's one-time key `TEST-ONLY-recovery`.
//!
//! Written once by `write_recovery_vectors` (ignored; run it with
//! `PQVAULT_WRITE_VECTORS=1 cargo test -p vault --test recovery_vectors --
//! --ignored` only to make a new version's set) and never regenerated.

use std::path::PathBuf;
use vault::identity::{PublicIdentity, SecretIdentity};
use vault::manifest::{Manifest, VaultId, VerifiedManifest};
use vault::recovery_request::{
    RecoveryAnswer, RecoveryRequest, RequestError, REQUEST_DIGEST_LABEL, REQUEST_SIG_DOMAIN,
};
use vault::seal::SealError;
use vault::sign::HybridSignature;

const OPERATOR_FINGERPRINT: &str =
    "f36d62b119ccd7515014b0c56600fbf6722afbe9d65df20e36fd09b6de4e029d";
const VAULT_ID: &str = "1eeb975e3295f1b2b8e2ea5991321413";
const ISSUED_AT: u64 = 1_796_000_000;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(dir().join(rel)).unwrap_or_else(|e| panic!("cannot read vector {rel}: {e}"))
}

fn suite2_manifest() -> VerifiedManifest {
    let op = PublicIdentity::decode(&read("v1-suite2/keys/TEST-ONLY-operator.pub")).unwrap();
    Manifest::decode(&read("v1-suite2/vault/manifest.pqvm"))
        .unwrap()
        .verify(Some(&op.fingerprint()))
        .unwrap()
}

#[test]
fn the_request_decodes_verifies_and_has_the_documented_layout() {
    let bytes = read("recovery-v1/request.pqvg");
    let req = RecoveryRequest::decode(&bytes).unwrap();
    assert_eq!(
        req.encode(),
        &bytes[..],
        "decode then encode gives the file"
    );
    assert_eq!(req.vault_id.to_string(), VAULT_ID);
    assert_eq!(req.epoch, 1);
    assert_eq!(req.issued_at, ISSUED_AT);
    let one_time = PublicIdentity::decode(&read("recovery-v1/TEST-ONLY-recovery.pub")).unwrap();
    assert_eq!(req.recovery_key.fingerprint(), one_time.fingerprint());
    assert_eq!(req.signer.fingerprint().to_hex(), OPERATOR_FINGERPRINT);
    req.verify(&req.signer.fingerprint()).unwrap();
    let v1 = PublicIdentity::decode(&read("v1-suite2/keys/TEST-ONLY-validator-1.pub")).unwrap();
    assert!(matches!(
        req.verify(&v1.fingerprint()),
        Err(RequestError::UntrustedSigner { .. })
    ));
    req.check_fresh(ISSUED_AT + 300).unwrap();
    assert!(matches!(
        req.check_fresh(ISSUED_AT + 301),
        Err(RequestError::Stale { .. })
    ));

    // The layout of docs/formats.md, from the raw bytes.
    assert_eq!(&bytes[0..4], b"PQVG");
    assert_eq!(u16::from_be_bytes([bytes[4], bytes[5]]), 1);
    assert_eq!(hex::encode(&bytes[6..22]), VAULT_ID);
    assert_eq!(u64::from_be_bytes(bytes[22..30].try_into().unwrap()), 1);
    assert_eq!(
        u64::from_be_bytes(bytes[30..38].try_into().unwrap()),
        ISSUED_AT
    );
    assert_eq!(&bytes[38..70], &req.nonce[..]);
    let l1 = u32::from_be_bytes(bytes[70..74].try_into().unwrap()) as usize;
    assert_eq!(
        &bytes[74..74 + l1],
        &read("recovery-v1/TEST-ONLY-recovery.pub")[..]
    );
    let at = 74 + l1;
    let l2 = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    assert_eq!(
        &bytes[at + 4..at + 4 + l2],
        &read("v1-suite2/keys/TEST-ONLY-operator.pub")[..]
    );
    let signed = at + 4 + l2;
    assert_eq!(bytes.len(), signed + 64 + 3309);
    let sig = HybridSignature {
        ed25519: bytes[signed..signed + 64].try_into().unwrap(),
        mldsa: bytes[signed + 64..].to_vec(),
    };
    req.signer
        .verifying_key()
        .verify(REQUEST_SIG_DOMAIN, &bytes[..signed], &sig)
        .unwrap();
    let mut digest_input = REQUEST_DIGEST_LABEL.to_vec();
    digest_input.extend_from_slice(&bytes);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &digest_input);
    assert_eq!(&req.digest()[..], digest.as_ref());
}

#[test]
fn the_answer_opens_with_the_one_time_key_to_a_share_of_the_manifest() {
    let req = RecoveryRequest::decode(&read("recovery-v1/request.pqvg")).unwrap();
    let bytes = read("recovery-v1/answer.pqvh");
    let answer = RecoveryAnswer::decode(&bytes).unwrap();
    assert_eq!(answer.encode(), bytes, "decode then encode gives the file");
    assert_eq!(&bytes[0..4], b"PQVH");
    assert_eq!(u16::from_be_bytes([bytes[4], bytes[5]]), 1);
    assert_eq!(hex::encode(&bytes[6..22]), VAULT_ID);
    assert_eq!(u64::from_be_bytes(bytes[22..30].try_into().unwrap()), 1);
    assert_eq!(bytes[30], 1, "share index");
    assert_eq!(&bytes[31..63], &req.digest()[..]);
    let len = u32::from_be_bytes(bytes[63..67].try_into().unwrap()) as usize;
    assert_eq!(bytes.len(), 67 + len);
    assert_eq!(&bytes[..4], b"PQVH");
    assert_eq!(&bytes[67..71], b"PQVS");

    let one_time = SecretIdentity::decode(&read("recovery-v1/TEST-ONLY-recovery.key")).unwrap();
    let record = answer.open(&req, &one_time).unwrap();
    assert_eq!(record.share.index, 1);
    vault::recover::check_record(&suite2_manifest(), &record).unwrap();
    // Nobody else opens it, not even the shard's own validator.
    let v1 = SecretIdentity::decode(&read("v1-suite2/keys/TEST-ONLY-validator-1.key")).unwrap();
    assert!(matches!(
        answer.open(&req, &v1),
        Err(RequestError::Seal(SealError::WrongRecipient { .. }))
    ));
}

/// Writes the set (run once; see the module docs).
#[test]
#[ignore = "writes the published vectors; run only to make a new set"]
fn write_recovery_vectors() {
    if std::env::var_os("PQVAULT_WRITE_VECTORS").is_none() {
        return;
    }
    let out = dir().join("recovery-v1");
    assert!(
        !out.join("request.pqvg").exists(),
        "published vectors are never regenerated"
    );
    std::fs::create_dir_all(&out).unwrap();
    let one_time = SecretIdentity::generate("TEST-ONLY-recovery").unwrap();
    std::fs::write(out.join("TEST-ONLY-recovery.key"), &one_time.encode()[..]).unwrap();
    std::fs::write(
        out.join("TEST-ONLY-recovery.pub"),
        one_time.public().encode(),
    )
    .unwrap();
    let operator = SecretIdentity::decode(&read("v1-suite2/keys/TEST-ONLY-operator.key")).unwrap();
    let vault_id = VaultId::from_bytes(hex::decode(VAULT_ID).unwrap().try_into().unwrap());
    let req = RecoveryRequest::sign(&operator, vault_id, 1, ISSUED_AT, one_time.public()).unwrap();
    std::fs::write(out.join("request.pqvg"), req.encode()).unwrap();
    let v1 = SecretIdentity::decode(&read("v1-suite2/keys/TEST-ONLY-validator-1.key")).unwrap();
    let record = vault::seal::SealedShard::parse(&read(
        "v1-suite2/vault/shard-001-TEST-ONLY-validator-1.shard",
    ))
    .unwrap()
    .open(&v1)
    .unwrap();
    std::fs::write(out.join("answer.pqvh"), req.answer(&record).unwrap()).unwrap();
}
