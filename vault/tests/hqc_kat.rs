//! HQC-192 version 5 known-answer tests, from vectors pinned in the repo
//! (`tests/vectors/hqc192v5/`, see its README): the official HQC-3 vectors
//! of the reference implementation that `hqc-kem` 0.1.0-rc.0 tracks. Upstream
//! changed its vectors once after v5 without a new version tag; pinning them
//! here means a dependency update that changes HQC's output fails this test
//! instead of silently making new shards unreadable by older builds.
//!
//! Each vector's randomness comes from the KAT PRNG, SHAKE256(seed || 0x00):
//! the first 32 bytes are the key seed, then 24 bytes of message and 16 of
//! salt for the encapsulation, exactly what `Hqc192V5` draws from aws-lc-rs.

use aws_lc_rs::digest::{digest, SHA256};
use hqc_kem::hqc192;
use shake::{ExtendableOutput, Shake256, Update, XofReader};
use std::path::PathBuf;
use vault::kem::hqc_v5::Hqc192V5;
use vault::kem::Kem;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/hqc192v5")
}

/// The KAT PRNG's first 72 bytes: key seed, message, salt.
fn kat_randomness(seed: &[u8]) -> ([u8; 32], [u8; 24], [u8; 16]) {
    let mut h = Shake256::default();
    h.update(seed);
    h.update(&[0x00]);
    let mut r = h.finalize_xof();
    let (mut ks, mut m, mut salt) = ([0u8; 32], [0u8; 24], [0u8; 16]);
    r.read(&mut ks);
    r.read(&mut m);
    r.read(&mut salt);
    (ks, m, salt)
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(digest(&SHA256, b))
}

/// Runs one vector; returns (pk, sk, ct, ss).
fn run(seed: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let (key_seed, m, salt) = kat_randomness(seed);
    let (ek, dk) = hqc192::generate_key_deterministic(&key_seed);
    let (ct, ss) = ek.encapsulate_deterministic(&m, &salt).unwrap();
    (
        ek.as_ref().to_vec(),
        dk.as_ref().to_vec(),
        ct.as_ref().to_vec(),
        ss.as_ref().to_vec(),
    )
}

#[test]
fn first_five_official_vectors_byte_for_byte() {
    let text = std::fs::read_to_string(vectors_dir().join("kat-first-5.rsp")).unwrap();
    let mut fields = std::collections::HashMap::new();
    let mut checked = 0;
    let mut check = |f: &std::collections::HashMap<String, Vec<u8>>| {
        let (pk, sk, ct, ss) = run(&f["seed"]);
        assert_eq!(pk, f["pk"], "pk of vector {checked}");
        assert_eq!(sk, f["sk"], "sk of vector {checked}");
        assert_eq!(ct, f["ct"], "ct of vector {checked}");
        assert_eq!(ss, f["ss"], "ss of vector {checked}");
        // The pqvault component accepts the key pair and decapsulates to ss.
        Hqc192V5::check_public_key(&pk).unwrap();
        Hqc192V5::check_key_pair(&sk, &pk).unwrap();
        assert_eq!(&Hqc192V5::decapsulate(&sk, &ct).unwrap()[..], &ss[..]);
        checked += 1;
    };
    for line in text.lines() {
        let Some((k, v)) = line.split_once(" = ") else {
            continue;
        };
        if k == "count" {
            if !fields.is_empty() {
                check(&fields);
                fields.clear();
            }
            continue;
        }
        fields.insert(k.to_string(), hex::decode(v).unwrap());
    }
    check(&fields);
    assert_eq!(checked, 5);
}

#[test]
fn all_hundred_official_vectors_by_digest() {
    let text = std::fs::read_to_string(vectors_dir().join("kat-100.digests")).unwrap();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 6, "{line}");
        let (pk, sk, ct, ss) = run(&hex::decode(f[1]).unwrap());
        assert_eq!(sha256_hex(&pk), f[2], "pk of vector {}", f[0]);
        assert_eq!(sha256_hex(&sk), f[3], "sk of vector {}", f[0]);
        assert_eq!(sha256_hex(&ct), f[4], "ct of vector {}", f[0]);
        assert_eq!(hex::encode(&ss), f[5], "ss of vector {}", f[0]);
        n += 1;
    }
    assert_eq!(n, 100);
}
