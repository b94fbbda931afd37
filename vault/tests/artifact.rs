//! Artifact format scenarios: the 64-32-10 LIF network at int8 and int4 is
//! packed, signed, verified and checked (golden included); every tampering
//! and policy violation is refused with the right metric reason.

use aws_lc_rs::digest::{digest, SHA256};
use std::io::Cursor;
use vault::artifact::manifest::{chunk_list_digest, FORMAT_V1};
use vault::artifact::payload::pack_format;
use vault::artifact::quant::MetaFile;
use vault::artifact::safetensors;
use vault::artifact::testnet::{self, Net};
use vault::artifact::{
    check_not_rollback, check_not_rollback_held, check_payload, check_payload_body, pack,
    policy::Publisher, ArtifactBody, ArtifactError, SignedArtifact, TrustPolicy, VerifiedArtifact,
    MIN_CHUNK_SIZE,
};
use vault::identity::SecretIdentity;

const NOW: u64 = 1_767_225_600 + 1000;

fn sha(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, b).as_ref());
    out
}

fn publisher(name: &str) -> SecretIdentity {
    SecretIdentity::generate(name).unwrap()
}

fn policy_for(id: &SecretIdentity, models: &[&str]) -> TrustPolicy {
    TrustPolicy::new(vec![Publisher {
        name: id.public().name().to_string(),
        fingerprint: id.public().fingerprint(),
        models: models.iter().map(|m| m.to_string()).collect(),
    }])
    .unwrap()
}

fn packed(net: &Net) -> ArtifactBody {
    pack(
        Cursor::new(&net.safetensors),
        &net.meta(),
        MIN_CHUNK_SIZE,
        NOW,
    )
    .unwrap()
}

/// Recomputes the payload digest and chunk hashes of `body` for `payload`,
/// as a publisher who bypassed `pack`'s checks would.
fn rehash(body: &ArtifactBody, payload: &[u8]) -> ArtifactBody {
    let mut b = body.clone();
    b.payload_len = payload.len() as u64;
    b.chunks = payload.chunks(b.chunk_size as usize).map(sha).collect();
    b.payload_digest = b.expected_payload_digest(sha(payload));
    b
}

fn signed_verified(body: &ArtifactBody, id: &SecretIdentity) -> VerifiedArtifact {
    let s = SignedArtifact::sign(body, id).unwrap();
    SignedArtifact::decode(&s.encode())
        .unwrap()
        .verify(&policy_for(id, &["snn-*"]), NOW)
        .unwrap()
}

fn reason<T: std::fmt::Debug>(r: Result<T, ArtifactError>) -> (&'static str, String) {
    let e = r.unwrap_err();
    (e.reason(), e.to_string())
}

/// Byte offset of tensor `name`'s data in a safetensors file.
fn tensor_at(file: &[u8], name: &str) -> usize {
    let h = safetensors::parse_file(file).unwrap();
    (h.data_start() + h.get(name).unwrap().begin) as usize
}

#[test]
fn int8_and_int4_pack_sign_verify_and_golden() {
    let id = publisher("TEST-ONLY-publisher");
    for bits in [8, 4] {
        let net = testnet::small(bits);
        let body = packed(&net);
        assert_eq!(body.name, "snn-demo");
        assert_eq!(body.quant.layers[0].bits, bits);
        assert!(body.quant.golden.is_some());
        let signed = SignedArtifact::sign(&body, &id).unwrap();
        let bytes = signed.encode();
        let back = SignedArtifact::decode(&bytes).unwrap();
        assert_eq!(back.digest(), sha(&bytes));
        assert_eq!(back.body(), &body);
        let v = back.verify(&policy_for(&id, &["snn-*"]), NOW).unwrap();
        assert_eq!(v.name(), "snn-demo");
        assert_eq!(v.version(), &semver::Version::new(1, 0, 0));
        assert_eq!(v.payload_len(), net.safetensors.len() as u64);
        assert_eq!(v.format_version(), 2);
        assert_eq!(
            v.payload_digest(),
            chunk_list_digest(v.payload_len(), v.chunk_size(), v.chunks())
        );
        assert_eq!(v.chunks().len(), 1);
        assert_eq!(v.manifest_digest(), sha(&bytes));
        assert_eq!(v.encoded(), &bytes[..]);
        assert_eq!(v.publisher().fingerprint(), id.public().fingerprint());
        check_payload(&v, Cursor::new(&net.safetensors)).unwrap();
    }
}

#[test]
fn multi_chunk_payload_names_the_bad_chunk() {
    let id = publisher("TEST-ONLY-publisher");
    let net = testnet::large(200_000);
    assert!(net.safetensors.len() > 3 * MIN_CHUNK_SIZE as usize);
    let body = pack(
        Cursor::new(&net.safetensors),
        &net.meta(),
        MIN_CHUNK_SIZE,
        NOW,
    )
    .unwrap();
    assert_eq!(body.chunks.len(), net.safetensors.len().div_ceil(65536));
    let v = signed_verified(&body, &id);
    check_payload(&v, Cursor::new(&net.safetensors)).unwrap();
    // The last chunk is short and hashed as such.
    let last = net.safetensors.chunks(65536).last().unwrap();
    assert_eq!(v.chunks().last().unwrap(), &sha(last));

    let mut bad = net.safetensors.clone();
    bad[2 * 65536 + 17] ^= 0x01;
    let (r, msg) = reason(check_payload(&v, Cursor::new(&bad)));
    assert_eq!(r, "chunk");
    assert!(msg.contains("chunk 2 "), "{msg}");
}

#[test]
fn tampering_matrix() {
    let id = publisher("TEST-ONLY-publisher");
    let net = testnet::small(8);
    let body = packed(&net);
    let signed = SignedArtifact::sign(&body, &id).unwrap();
    let bytes = signed.encode();
    let policy = policy_for(&id, &["snn-*"]);
    let v = signed.verify(&policy, NOW).unwrap();

    // A payload byte (inside fc2.weight).
    let mut p = net.safetensors.clone();
    let at = tensor_at(&p, "fc2.weight") + 3;
    p[at] ^= 0x10;
    assert_eq!(reason(check_payload(&v, Cursor::new(&p))).0, "chunk");
    // A truncated or extended payload.
    let short = &net.safetensors[..net.safetensors.len() - 1];
    assert_eq!(reason(check_payload(&v, Cursor::new(short))).0, "digest");
    let mut long = net.safetensors.clone();
    long.push(0);
    assert_eq!(reason(check_payload(&v, Cursor::new(&long))).0, "digest");

    // A manifest field: the version string (1.0.0 -> 1.0.1) and the created
    // time, found by their encodings.
    let pos = bytes.windows(5).position(|w| w == b"1.0.0").unwrap();
    let mut m = bytes.clone();
    m[pos + 4] = b'1';
    let r = SignedArtifact::decode(&m).and_then(|s| s.verify(&policy, NOW));
    assert_eq!(reason(r).0, "signature");
    let mut m = bytes.clone();
    m[pos + 5 + 7] ^= 1; // low byte of created_unix
    let r = SignedArtifact::decode(&m).and_then(|s| s.verify(&policy, NOW));
    assert_eq!(reason(r).0, "signature");

    // The signature, both halves.
    for back in [1, 3309 + 1] {
        let mut m = bytes.clone();
        let at = m.len() - back;
        m[at] ^= 0x01;
        let r = SignedArtifact::decode(&m).and_then(|s| s.verify(&policy, NOW));
        assert_eq!(reason(r).0, "signature", "byte -{back}");
    }

    // A truncated manifest is a format error.
    let r = SignedArtifact::decode(&bytes[..bytes.len() - 1]);
    assert_eq!(reason(r).0, "format");

    // Unknown publisher, name outside delegation.
    let other = publisher("TEST-ONLY-other");
    assert_eq!(
        reason(signed_decode(&bytes).verify(&policy_for(&other, &["*"]), NOW)).0,
        "policy"
    );
    let (r, msg) = reason(signed_decode(&bytes).verify(&policy_for(&id, &["kws-*"]), NOW));
    assert_eq!(r, "policy");
    assert!(msg.contains("may not publish model \"snn-demo\""), "{msg}");

    // Expired.
    let mut b = body.clone();
    b.expires_unix = Some(NOW);
    let s = SignedArtifact::sign(&b, &id).unwrap();
    assert_eq!(reason(s.verify(&policy, NOW)).0, "expired");
    assert!(s.verify(&policy, NOW - 1).is_ok());

    // Older version; equal version with other content.
    let older = semver::Version::new(1, 0, 0);
    let newer = semver::Version::parse("1.0.1-rc.1").unwrap();
    assert_eq!(reason(check_not_rollback(&v, Some(&newer))).0, "rollback");
    assert_eq!(reason(check_not_rollback(&v, Some(&older))).0, "rollback");
    check_not_rollback(&v, Some(&semver::Version::parse("1.0.0-rc.9").unwrap())).unwrap();
    check_not_rollback(&v, None).unwrap();
    check_not_rollback_held(&v, Some((&older, &v.manifest_digest()))).unwrap();
    assert_eq!(
        reason(check_not_rollback_held(&v, Some((&older, &[0u8; 32])))).0,
        "rollback"
    );
}

/// Format 2 defines the payload digest over the signed chunk list: a
/// manifest whose digest does not follow from its chunks (a publisher's
/// inconsistency) is refused at signing, at encoding and at decoding,
/// before any payload is read.
#[test]
fn a_v2_manifest_whose_digest_is_not_its_chunk_list_is_refused() {
    let id = publisher("TEST-ONLY-publisher");
    let net = testnet::large(200_000);
    let body = packed(&net);
    assert_eq!(body.format_version, 2);
    assert!(body.chunks.len() > 3);
    // The digest a format-1 publisher would write: refused under format 2.
    let mut bad = body.clone();
    bad.payload_digest = sha(&net.safetensors);
    let (r, msg) = reason(SignedArtifact::sign(&bad, &id));
    assert_eq!(r, "format", "{msg}");
    assert!(msg.contains("does not match the chunk list"), "{msg}");
    assert_eq!(reason(bad.encode_draft()).0, "format");
    // Two chunks swapped: the chunk list no longer gives the digest.
    let mut swapped = body.clone();
    swapped.chunks.swap(0, 1);
    assert_eq!(reason(SignedArtifact::sign(&swapped, &id)).0, "format");
    // A signed manifest with one bit of its digest flipped: refused by the
    // decoder (the signature is not even looked at).
    let bytes = SignedArtifact::sign(&body, &id).unwrap().encode();
    let at = bytes
        .windows(32)
        .position(|w| w == body.payload_digest)
        .unwrap();
    let mut m = bytes.clone();
    m[at + 31] ^= 1;
    let (r, msg) = reason(SignedArtifact::decode(&m));
    assert_eq!(r, "format", "{msg}");
    let draft = body.encode_draft().unwrap();
    let mut d = draft.clone();
    let at = d
        .windows(32)
        .position(|w| w == body.payload_digest)
        .unwrap();
    d[at] ^= 0x80;
    assert_eq!(reason(ArtifactBody::decode_draft(&d)).0, "format");
    // A format this build does not know.
    let mut future = body.clone();
    future.format_version = 3;
    assert_eq!(reason(SignedArtifact::sign(&future, &id)).0, "format");
    let mut m = bytes.clone();
    m[5] = 3;
    let (r, msg) = reason(SignedArtifact::decode(&m));
    assert_eq!(r, "format");
    assert!(msg.contains("version 3"), "{msg}");
}

/// Format 1 keeps its whole-payload SHA-256: packed, signed, decoded and
/// checked as before, and a payload whose chunks all match a format-1
/// manifest with a wrong digest is still refused by that pass.
#[test]
fn v1_manifests_keep_their_whole_payload_digest() {
    let id = publisher("TEST-ONLY-publisher");
    let policy = policy_for(&id, &["snn-*"]);
    let net = testnet::large(200_000);
    let body = pack_format(
        Cursor::new(&net.safetensors),
        &net.meta(),
        MIN_CHUNK_SIZE,
        NOW,
        FORMAT_V1,
    )
    .unwrap();
    assert_eq!(body.payload_digest, sha(&net.safetensors));
    let bytes = SignedArtifact::sign(&body, &id).unwrap().encode();
    assert_eq!(&bytes[..6], b"PQVA\x00\x01");
    let v = signed_decode(&bytes).verify(&policy, NOW).unwrap();
    assert_eq!(v.format_version(), 1);
    check_payload(&v, Cursor::new(&net.safetensors)).unwrap();
    vault::artifact::payload::check_payload_digest(&v, Cursor::new(&net.safetensors)).unwrap();
    // Every chunk right, the signed digest wrong: only format 1's pass
    // can tell, and it does.
    let mut wrong = body.clone();
    wrong.payload_digest[0] ^= 1;
    let w = signed_verified(&wrong, &id);
    assert_eq!(
        reason(check_payload(&w, Cursor::new(&net.safetensors))).0,
        "digest"
    );
    assert_eq!(
        reason(vault::artifact::payload::check_payload_digest(
            &w,
            Cursor::new(&net.safetensors)
        ))
        .0,
        "digest"
    );
}

fn signed_decode(bytes: &[u8]) -> SignedArtifact {
    SignedArtifact::decode(bytes).unwrap()
}

/// Metadata tampering: refused at pack (metadata, naming tensor and field),
/// and refused by check_payload even when a publisher signed it.
#[test]
fn metadata_tampering_is_refused_at_pack_and_verify() {
    let id = publisher("TEST-ONLY-publisher");
    let net = testnet::small(8);
    let body = packed(&net);

    // A scale changed in the payload.
    let mut p = net.safetensors.clone();
    let at = tensor_at(&p, "fc1.scale") + 4 * 5;
    let s = f32::from_le_bytes(p[at..at + 4].try_into().unwrap()) * 1.01;
    p[at..at + 4].copy_from_slice(&s.to_le_bytes());
    let (r, msg) = reason(pack(Cursor::new(&p), &net.meta(), MIN_CHUNK_SIZE, NOW));
    assert_eq!(r, "metadata");
    assert!(
        msg.contains("tensor \"fc1.scale\": scale: channel 5"),
        "{msg}"
    );
    let v = signed_verified(&rehash(&body, &p), &id);
    assert_eq!(reason(check_payload(&v, Cursor::new(&p))).0, "metadata");

    // A dtype changed in the payload header (I8 -> U8 for fc1.weight).
    let mut p = net.safetensors.clone();
    let hdr_end = 8 + u64::from_le_bytes(p[..8].try_into().unwrap()) as usize;
    let json = String::from_utf8(p[8..hdr_end].to_vec()).unwrap();
    let k = json.find("\"fc1.weight\":{\"dtype\":\"I8\"").unwrap() + 23;
    p[8 + k] = b'U';
    let (r, msg) = reason(pack(Cursor::new(&p), &net.meta(), MIN_CHUNK_SIZE, NOW));
    assert_eq!(r, "metadata");
    assert!(
        msg.contains("tensor \"fc1.weight\": dtype: U8 but bits = 8 needs I8"),
        "{msg}"
    );
    let v = signed_verified(&rehash(&body, &p), &id);
    assert_eq!(reason(check_payload(&v, Cursor::new(&p))).0, "metadata");

    // A weight out of the symmetric range (-128).
    let mut p = net.safetensors.clone();
    let at = tensor_at(&p, "fc2.weight") + 33;
    p[at] = 0x80;
    let (r, msg) = reason(pack(Cursor::new(&p), &net.meta(), MIN_CHUNK_SIZE, NOW));
    assert_eq!(r, "metadata");
    assert!(
        msg.contains("tensor \"fc2.weight\": value: weight [1, 1] = -128"),
        "{msg}"
    );

    // Manifest metadata signed by the publisher but inconsistent with the
    // payload: a clipping range, then a golden expected count.
    let mut b = body.clone();
    b.quant.layers[1].clip[3] *= 2.0;
    let v = signed_verified(&b, &id);
    let (r, msg) = reason(check_payload(&v, Cursor::new(&net.safetensors)));
    assert_eq!(r, "metadata");
    assert!(
        msg.contains("tensor \"fc2.scale\": scale: channel 3"),
        "{msg}"
    );
    let mut b = body.clone();
    b.quant.golden.as_mut().unwrap().expected[1] += 1;
    let v = signed_verified(&b, &id);
    let (r, msg) = reason(check_payload(&v, Cursor::new(&net.safetensors)));
    assert_eq!(r, "golden");
    assert!(msg.contains("output 1 spiked"), "{msg}");
    // A changed golden input flips at least one count.
    let mut b = body.clone();
    for s in b.quant.golden.as_mut().unwrap().input.iter_mut() {
        *s = !*s;
    }
    assert_eq!(
        reason(check_payload_body(&b, Cursor::new(&net.safetensors))).0,
        "golden"
    );
}

/// meta.toml edits refused at pack, each naming the field.
#[test]
fn inconsistent_meta_files_are_refused() {
    let net = testnet::small(4);
    let text = &net.meta_toml;
    let cases: Vec<(String, &str)> = vec![
        (
            text.replacen("weight_zero_point = 0", "weight_zero_point = 2", 1),
            "tensor \"fc1.weight\": zero_point",
        ),
        (
            text.replacen("activation_zero_point = 0", "activation_zero_point = -1", 1),
            "layer \"fc1\": activation_zero_point",
        ),
        (
            text.replacen("bits = 4", "bits = 8", 1),
            "tensor \"fc1.weight\": dtype: U8 but bits = 8 needs I8",
        ),
        (text.replacen("bits = 4", "bits = 6", 1), "bits"),
        (text.replacen("outputs = 32", "outputs = 31", 1), "clip"),
        (text.replacen("clip = [", "clip = [-1.0, ", 1), "clip"),
        (
            text.replacen("clip = [", "clip = [0.5, ", 1).replacen(
                "outputs = 32",
                "outputs = 33",
                1,
            ),
            "layer \"fc2\": inputs",
        ),
        (
            text.replacen("activation_scale = ", "activation_scale = -", 1),
            "activation_scale",
        ),
        (text.replacen("beta = 0.875", "beta = 1.25", 1), "beta"),
        (
            text.replacen("reset = \"subtract\"", "reset = \"hold\"", 1),
            "syntax",
        ),
        (
            text.replacen(
                "weight_scheme = \"per-channel-symmetric\"",
                "weight_scheme = \"per-tensor-asymmetric\"",
                1,
            ),
            "syntax",
        ),
        (
            text.replacen("expected = [", "expected = [99, ", 1),
            "golden: expected",
        ),
        (
            text.replacen("version = \"1.0.0\"", "version = \"1.0\"", 1),
            "version",
        ),
        (
            text.replacen("name = \"snn-demo\"", "name = \"SNN Demo\"", 1),
            "model name",
        ),
        (
            text.replacen("scale = \"fc2.scale\"", "scale = \"fc1.scale\"", 1),
            "named by more than one",
        ),
    ];
    for (t, want) in cases {
        let r = MetaFile::parse(&t)
            .map_err(ArtifactError::from)
            .and_then(|m| pack(Cursor::new(&net.safetensors), &m, MIN_CHUNK_SIZE, NOW));
        let (_, msg) = reason(r);
        assert!(msg.contains(want), "want {want:?}, got {msg}");
    }
    // A golden expectation that the network does not produce.
    let mut m = net.meta();
    m.golden.as_mut().unwrap().expected[0] ^= 1;
    assert_eq!(
        reason(pack(Cursor::new(&net.safetensors), &m, MIN_CHUNK_SIZE, NOW)).0,
        "golden"
    );
    // An extra tensor not described by the metadata.
    let mut tensors: Vec<_> = {
        let h = safetensors::parse_file(&net.safetensors).unwrap();
        h.tensors
            .iter()
            .map(|t| {
                let s = (h.data_start() + t.begin) as usize;
                (t.clone(), net.safetensors[s..s + t.len() as usize].to_vec())
            })
            .collect()
    };
    tensors.push((
        safetensors::TensorInfo {
            name: "extra".into(),
            dtype: safetensors::Dtype::F32,
            shape: vec![1],
            begin: 0,
            end: 4,
        },
        vec![0; 4],
    ));
    let data: Vec<_> = tensors
        .iter()
        .map(|(t, b)| safetensors::TensorData {
            name: &t.name,
            dtype: t.dtype,
            shape: t.shape.clone(),
            data: b,
        })
        .collect();
    let extra = safetensors::write(&data);
    let (_, msg) = reason(pack(Cursor::new(&extra), &net.meta(), MIN_CHUNK_SIZE, NOW));
    assert!(
        msg.contains("tensor \"extra\": name: is in the payload but not described"),
        "{msg}"
    );
}

#[test]
fn drafts_round_trip_and_kinds_do_not_mix() {
    let id = publisher("TEST-ONLY-publisher");
    let body = packed(&testnet::small(8));
    let draft = body.encode_draft().unwrap();
    assert_eq!(&draft[..4], b"PQVD");
    assert_eq!(ArtifactBody::decode_draft(&draft).unwrap(), body);
    assert_eq!(reason(SignedArtifact::decode(&draft)).0, "format");
    let signed = SignedArtifact::sign(&body, &id).unwrap().encode();
    assert_eq!(&signed[..4], b"PQVA");
    assert_eq!(reason(ArtifactBody::decode_draft(&signed)).0, "format");
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn fixtures() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
        static F: OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = OnceLock::new();
        F.get_or_init(|| {
            let id = publisher("TEST-ONLY-publisher");
            let net = testnet::small(4);
            let body = packed(&net);
            let signed = SignedArtifact::sign(&body, &id).unwrap().encode();
            (signed, body.encode_draft().unwrap(), net.safetensors)
        })
    }

    fn mutate(base: &[u8], edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
        let mut b = base.to_vec();
        for &(pos, v) in edits {
            let n = b.len();
            b[pos % n] ^= v;
        }
        b.truncate(b.len() - cut % (b.len() + 1));
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Neither manifest decoder panics on mutated or truncated input.
        #[test]
        fn manifest_decode_never_panics(
            edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..4),
            cut in any::<usize>(),
            head in any::<bool>(),
        ) {
            let (signed, draft, _) = fixtures();
            // Mutations near the start hit the length and count fields.
            let edits: Vec<_> = edits.iter().map(|&(p, v)| (if head { p % 400 } else { p }, v)).collect();
            let _ = SignedArtifact::decode(&mutate(signed, &edits, cut % 64));
            let _ = SignedArtifact::decode(&mutate(signed, &edits, cut));
            let _ = ArtifactBody::decode_draft(&mutate(draft, &edits, cut % 64));
        }

        /// The safetensors parser and the payload checks never panic.
        #[test]
        fn safetensors_and_payload_checks_never_panic(
            edits in proptest::collection::vec((0usize..400, 1u8..=255), 0..4),
            cut in 0usize..64,
        ) {
            let (_, draft, st) = fixtures();
            let p = mutate(st, &edits, cut);
            let _ = safetensors::parse_file(&p);
            let body = ArtifactBody::decode_draft(draft).unwrap();
            let _ = check_payload_body(&rehash(&body, &p), Cursor::new(&p));
        }
    }
}

/// The checked-in `vectors/artifact-v1/` and `vectors/artifact-v2/` files
/// (TEST-ONLY publisher key, the same in both).
mod vectors {
    use super::*;
    use std::path::{Path, PathBuf};
    use vault::identity::PublicIdentity;

    fn dir(format: u16) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/vectors/artifact-v{format}"))
    }

    fn read(format: u16, rel: &str) -> Vec<u8> {
        std::fs::read(dir(format).join(rel)).unwrap()
    }

    const FINGERPRINT: &str = "22dd26908d78fa4ea4f47224aa7919008e5b9d90b396745b265c17d03698d2cb";
    const PAYLOAD_SHA: [(u8, &str); 2] = [
        (
            8,
            "184898428ef736f18dd00750d0c48635711be8fccf29c8a889f2c99e662322a8",
        ),
        (
            4,
            "40511f682429e83a976e838de670bcb7761d318cdf606cafe3a9fb295890e91c",
        ),
    ];
    const GOLDEN: [[u32; 10]; 2] = [
        [0, 11, 4, 9, 0, 0, 10, 5, 1, 6],
        [7, 14, 0, 11, 3, 0, 5, 0, 0, 6],
    ];
    /// (format, bits, payload digest field, manifest digest)
    const PINNED: [(u16, u8, &str, &str); 4] = [
        (
            1,
            8,
            "184898428ef736f18dd00750d0c48635711be8fccf29c8a889f2c99e662322a8",
            "7fd5fb3310292f0532b0e8df47b962a41b799b360561101adacc197122010a59",
        ),
        (
            1,
            4,
            "40511f682429e83a976e838de670bcb7761d318cdf606cafe3a9fb295890e91c",
            "07ca5584aca608171f70624a44618ae0b2a343bd2341118a4538c7865bad53b4",
        ),
        (2, 8, V2_INT8_DIGEST, V2_INT8_MANIFEST),
        (2, 4, V2_INT4_DIGEST, V2_INT4_MANIFEST),
    ];
    const V2_INT8_DIGEST: &str = "1329e3cc7053520593a96e57d184f699c59e402eecf814166aa0475ece88914c";
    const V2_INT8_MANIFEST: &str =
        "4e299bbf91d5ff1490cc0033f66a51370e76c7c289e292109b74b8c299aa01ed";
    const V2_INT4_DIGEST: &str = "943a64fc5fda311b53d2d8a7a9ae3d3bcadb7b23ddc7cb58361b8afdf5fbe8fb";
    const V2_INT4_MANIFEST: &str =
        "c48e9fa8ce607fb5698c02c3230888d6c136e86a1c8f5c16936767a35e35aa02";

    /// Format 2's payload digest, computed from the documented rule
    /// (docs/artifacts.md), not by the library.
    fn documented_chunk_list_digest(len: u64, chunk_size: u32, chunks: &[[u8; 32]]) -> [u8; 32] {
        let mut m = b"pqvault artifact chunk list v2\0".to_vec();
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(&chunk_size.to_be_bytes());
        m.extend_from_slice(&(chunks.len() as u32).to_be_bytes());
        for c in chunks {
            m.extend_from_slice(c);
        }
        sha(&m)
    }

    #[test]
    fn vectors_verify_and_are_pinned() {
        for (format, bits, digest_field, manifest_sha) in PINNED {
            let publisher =
                PublicIdentity::decode(&read(format, "TEST-ONLY-publisher.pub")).unwrap();
            assert_eq!(publisher.fingerprint().to_hex(), FINGERPRINT);
            let policy = TrustPolicy::load(&dir(format).join("trust.toml")).unwrap();
            let sub = format!("snn-int{bits}");
            let at = format!("artifact-v{format}/{sub}");
            let (payload_sha, golden) = if bits == 8 {
                (PAYLOAD_SHA[0].1, GOLDEN[0])
            } else {
                (PAYLOAD_SHA[1].1, GOLDEN[1])
            };
            let payload = read(format, &format!("{sub}/payload.safetensors"));
            let manifest = read(format, &format!("{sub}/artifact.pqva"));
            assert_eq!(hex::encode(sha(&payload)), payload_sha, "{at} payload");
            let signed = SignedArtifact::decode(&manifest).unwrap();
            assert_eq!(hex::encode(signed.digest()), manifest_sha, "{at} manifest");
            let v = signed.verify(&policy, NOW).unwrap();
            assert_eq!(v.format_version(), format);
            assert_eq!(v.publisher().fingerprint().to_hex(), FINGERPRINT);
            assert_eq!(
                hex::encode(v.payload_digest()),
                digest_field,
                "{at} payload digest"
            );
            let want = if format == 1 {
                sha(&payload)
            } else {
                documented_chunk_list_digest(v.payload_len(), v.chunk_size(), v.chunks())
            };
            assert_eq!(v.payload_digest(), want, "{at}: the documented digest rule");
            assert_eq!(v.created(), 1_767_225_600);
            assert_eq!(v.expires(), None);
            check_payload(&v, Cursor::new(&payload)).unwrap();
            vault::artifact::payload::check_payload_digest(&v, Cursor::new(&payload)).unwrap();
            // The golden-check vector: the integer LIF pass gives these
            // counts on every machine.
            let g = v.body().quant.golden.as_ref().unwrap();
            assert_eq!(g.expected, golden, "{at} golden");
            let mut r = Cursor::new(&payload);
            let counts = vault::artifact::payload::golden_counts(
                &v.body().quant,
                &mut r,
                payload.len() as u64,
            )
            .unwrap();
            assert_eq!(counts.as_deref(), Some(&golden[..]));

            // The generator, the meta file and pack reproduce the files.
            let net = testnet::small(bits);
            assert_eq!(net.safetensors, payload, "{at}: testnet changed");
            let meta_text = String::from_utf8(read(format, &format!("{sub}/meta.toml"))).unwrap();
            assert_eq!(net.meta_toml, meta_text, "{at}: meta.toml changed");
            let meta = MetaFile::parse(&meta_text).unwrap();
            let body = pack_format(Cursor::new(&payload), &meta, 65536, NOW, format).unwrap();
            assert_eq!(&body, v.body());
            if format == 2 {
                // What `pack` writes today.
                assert_eq!(
                    pack(Cursor::new(&payload), &meta, 65536, NOW).unwrap(),
                    body
                );
            }
            let draft = read(format, &format!("{sub}/artifact.pqvd"));
            assert_eq!(body.encode_draft().unwrap(), draft);
            assert_eq!(&ArtifactBody::decode_draft(&draft).unwrap(), v.body());
            // The signed manifest is the draft body under the PQVA magic,
            // then the publisher identity and the signature.
            assert_eq!(&manifest[..4], b"PQVA");
            assert_eq!(&manifest[4..draft.len()], &draft[4..]);
            let pub_bytes = read(format, "TEST-ONLY-publisher.pub");
            let at = draft.len();
            assert_eq!(
                u32::from_be_bytes(manifest[at..at + 4].try_into().unwrap()) as usize,
                pub_bytes.len()
            );
            assert_eq!(&manifest[at + 4..at + 4 + pub_bytes.len()], &pub_bytes[..]);
            assert_eq!(manifest.len(), at + 4 + pub_bytes.len() + 64 + 3309);
        }
    }

    /// Byte offsets documented in docs/artifacts.md hold for the vectors of
    /// both versions; only the version and the payload digest differ.
    #[test]
    fn documented_layout_holds() {
        for format in [1u16, 2] {
            let draft = read(format, "snn-int8/artifact.pqvd");
            assert_eq!(&draft[..4], b"PQVD");
            assert_eq!(&draft[4..6], &format.to_be_bytes());
            let name_len = u32::from_be_bytes(draft[6..10].try_into().unwrap()) as usize;
            assert_eq!(&draft[10..10 + name_len], b"snn-demo");
            let mut p = 10 + name_len;
            let vlen = u32::from_be_bytes(draft[p..p + 4].try_into().unwrap()) as usize;
            assert_eq!(&draft[p + 4..p + 4 + vlen], b"1.0.0");
            p += 4 + vlen;
            let u64_at = |o: usize| u64::from_be_bytes(draft[o..o + 8].try_into().unwrap());
            assert_eq!(u64_at(p), 1_767_225_600); // created
            assert_eq!(u64_at(p + 8), 0); // expires: none
            assert_eq!(u64_at(p + 16), 2824); // payload length
            let payload = read(format, "snn-int8/payload.safetensors");
            let digest = if format == 1 {
                sha(&payload)
            } else {
                documented_chunk_list_digest(2824, 65536, &[sha(&payload)])
            };
            assert_eq!(&draft[p + 24..p + 56], &digest);
            assert_eq!(&draft[p + 56..p + 60], &65536u32.to_be_bytes());
            assert_eq!(&draft[p + 60..p + 64], &1u32.to_be_bytes());
            assert_eq!(&draft[p + 64..p + 96], &sha(&payload)); // one chunk = whole payload
            assert_eq!(&draft[p + 96..p + 98], &2u16.to_be_bytes()); // layers
        }
    }
}

/// The `vault artifact` subcommands, run as a real process.
mod cli {
    use super::*;
    use std::path::Path;
    use std::process::{Command, Output};

    fn vault(args: &[&str], cwd: &Path) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vault"))
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap()
    }

    fn ok(o: &Output) -> String {
        assert!(
            o.status.success(),
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn fails(o: &Output) -> String {
        assert!(!o.status.success(), "unexpected success");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    #[test]
    fn pack_sign_verify_inspect_and_refusals() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let net = testnet::small(4);
        std::fs::write(d.join("model.safetensors"), &net.safetensors).unwrap();
        std::fs::write(d.join("meta.toml"), &net.meta_toml).unwrap();
        let bad = net
            .meta_toml
            .replacen("weight_zero_point = 0", "weight_zero_point = 1", 1);
        std::fs::write(d.join("bad.toml"), bad).unwrap();
        ok(&vault(
            &["keygen", "--name", "TEST-ONLY-pub", "--out", "keys"],
            d,
        ));
        let pack = |meta: &str, out: &str| {
            vault(
                &[
                    "artifact",
                    "pack",
                    "--tensors",
                    "model.safetensors",
                    "--meta",
                    meta,
                    "--chunk-size",
                    "65536",
                    "--out",
                    out,
                ],
                d,
            )
        };

        let err = fails(&pack("bad.toml", "refused"));
        assert!(err.contains("tensor \"fc1.weight\": zero_point"), "{err}");
        assert!(!d.join("refused").exists(), "a refused pack wrote files");

        // `pack --sign` refuses an expiry that has already passed, and
        // writes nothing.
        let stale = net.meta_toml.replacen(
            "created = 1767225600\n",
            "created = 1767225600\nexpires = 1767225700\n",
            1,
        );
        std::fs::write(d.join("stale.toml"), stale).unwrap();
        let err = fails(&vault(
            &[
                "artifact",
                "pack",
                "--tensors",
                "model.safetensors",
                "--meta",
                "stale.toml",
                "--sign",
                "keys/TEST-ONLY-pub.key",
                "--out",
                "stale",
            ],
            d,
        ));
        assert!(err.contains("is not in the future"), "{err}");
        assert!(!d.join("stale").exists(), "a refused pack wrote files");

        let out = ok(&pack("meta.toml", "art"));
        assert!(out.contains("golden check passes"), "{out}");
        assert!(d.join("art/payload.safetensors").exists());
        assert!(d.join("art/artifact.pqvd").exists());
        assert!(!d.join("art/artifact.pqva").exists());
        let err = fails(&pack("meta.toml", "art"));
        assert!(err.contains("already exists"), "{err}");

        ok(&vault(
            &["artifact", "sign", "--key", "keys/TEST-ONLY-pub.key", "art"],
            d,
        ));
        std::fs::write(
            d.join("trust.toml"),
            "version = 1\n[[publisher]]\nname = \"p\"\nidentity = \"keys/TEST-ONLY-pub.pub\"\nmodels = [\"snn-*\"]\n",
        )
        .unwrap();
        let out = ok(&vault(
            &["artifact", "verify", "--policy", "trust.toml", "art"],
            d,
        ));
        assert!(out.contains("artifact ok: snn-demo 1.0.0 by p"), "{out}");
        let err = fails(&vault(
            &[
                "artifact",
                "verify",
                "--policy",
                "trust.toml",
                "--held",
                "1.1.0",
                "art",
            ],
            d,
        ));
        assert!(
            err.contains("version 1.0.0 refused, 1.1.0 is already held"),
            "{err}"
        );

        let json = ok(&vault(&["artifact", "inspect", "art", "--json"], d));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["kind"], "artifact manifest");
        assert_eq!(v["name"], "snn-demo");
        assert_eq!(v["layers"][0]["bits"], 4);
        assert_eq!(v["publisher"]["verified"], false);
        let text = ok(&vault(&["artifact", "inspect", "art/artifact.pqvd"], d));
        assert!(text.starts_with("artifact draft (unsigned)"), "{text}");

        // Another publisher's delegation does not cover the name.
        std::fs::write(
            d.join("narrow.toml"),
            "version = 1\n[[publisher]]\nname = \"p\"\nidentity = \"keys/TEST-ONLY-pub.pub\"\nmodels = [\"kws\"]\n",
        )
        .unwrap();
        let err = fails(&vault(
            &["artifact", "verify", "--policy", "narrow.toml", "art"],
            d,
        ));
        assert!(err.contains("may not publish model \"snn-demo\""), "{err}");

        // A tampered payload byte is named by chunk.
        let p = d.join("art/payload.safetensors");
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 5] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        let err = fails(&vault(
            &["artifact", "verify", "--policy", "trust.toml", "art"],
            d,
        ));
        assert!(err.contains("chunk 0 (bytes 0..1640)"), "{err}");
    }

    /// The names under "Commands:" in a help text (without `help`).
    fn commands(help: &str) -> Vec<String> {
        help.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
            .map(str::to_string)
            .collect()
    }

    /// `vault --help` and `vault artifact --help` summarise the artifact
    /// subcommands: every one of them, push and pull included.
    #[test]
    fn help_lists_every_artifact_subcommand() {
        let tmp = tempfile::tempdir().unwrap();
        let top = ok(&vault(&["--help"], tmp.path()));
        let sub = ok(&vault(&["artifact", "--help"], tmp.path()));
        let names = commands(&sub);
        for want in [
            "pack", "sign", "verify", "inspect", "push", "pull", "abandon",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {sub}");
        }
        let line = top
            .lines()
            .find(|l| l.trim_start().starts_with("artifact "))
            .expect("artifact in vault --help");
        let summary = sub.lines().next().unwrap_or_default();
        for name in &names {
            let word = |text: &str| {
                text.split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|w| w == name)
            };
            assert!(word(line), "vault --help omits `{name}`: {line}");
            assert!(
                word(summary),
                "vault artifact --help omits `{name}`: {summary}"
            );
        }
    }

    /// `verify --held` refuses an equal version too, and says so.
    #[test]
    fn verify_held_wording_matches_its_behaviour() {
        let tmp = tempfile::tempdir().unwrap();
        let help = ok(&vault(&["artifact", "verify", "--help"], tmp.path()));
        let held = help
            .split("--held <VERSION>")
            .nth(1)
            .expect("--held documented");
        let held: String = held.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(held.contains("not newer than it"), "{help}");
        assert!(held.contains("older, or equal"), "{help}");
        assert!(!held.starts_with("Refuse versions older than"), "{help}");
    }

    /// `vault artifact golden` computes the counts the golden check
    /// expects, from a packed artifact or from tensors + meta before
    /// packing: the pinned counts of the test networks.
    #[test]
    fn golden_computes_the_expected_counts() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for bits in [8u8, 4] {
            let net = testnet::small(bits);
            let g = net.quant.golden.as_ref().unwrap();
            let inputs = net.quant.inputs() as usize;
            let sub = d.join(format!("int{bits}"));
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::write(sub.join("model.safetensors"), &net.safetensors).unwrap();
            // meta.toml without its [golden] table: packs, unchecked.
            let meta = net.meta_toml.split("[golden]").next().unwrap().to_string();
            std::fs::write(sub.join("meta.toml"), &meta).unwrap();
            let spikes: String = g
                .input
                .chunks(inputs)
                .map(|r| {
                    r.iter()
                        .map(|&b| if b { '1' } else { '0' })
                        .collect::<String>()
                        + "\n"
                })
                .collect();
            std::fs::write(sub.join("spikes.txt"), format!("# TEST input\n{spikes}")).unwrap();
            let want: Vec<String> = g.expected.iter().map(u32::to_string).collect();
            let want = format!("expected = [{}]", want.join(", "));
            let out = ok(&vault(
                &[
                    "artifact",
                    "golden",
                    "--input",
                    "spikes.txt",
                    "--tensors",
                    "model.safetensors",
                    "--meta",
                    "meta.toml",
                ],
                &sub,
            ));
            assert!(out.contains(&want), "{bits}: {out}");
            ok(&vault(
                &[
                    "artifact",
                    "pack",
                    "--tensors",
                    "model.safetensors",
                    "--meta",
                    "meta.toml",
                    "--out",
                    "art",
                ],
                &sub,
            ));
            let table = ok(&vault(
                &["artifact", "golden", "--input", "spikes.txt", "art"],
                &sub,
            ));
            assert!(table.contains(&want), "{bits}: {table}");
            // The printed table, appended to meta.toml, passes pack's check.
            std::fs::write(sub.join("meta2.toml"), format!("{meta}{table}")).unwrap();
            let packed = ok(&vault(
                &[
                    "artifact",
                    "pack",
                    "--tensors",
                    "model.safetensors",
                    "--meta",
                    "meta2.toml",
                    "--out",
                    "art2",
                ],
                &sub,
            ));
            assert!(packed.contains("golden check passes"), "{packed}");
            // A malformed spike file is refused with its line.
            std::fs::write(sub.join("bad.txt"), "0101\n").unwrap();
            let err = fails(&vault(
                &["artifact", "golden", "--input", "bad.txt", "art"],
                &sub,
            ));
            assert!(err.contains("line 1: 4 spikes"), "{err}");
        }
    }

    /// `vault artifact meta init --tensors FILE` fills in every field the
    /// tensors determine; with the rest given, the file packs as is.
    #[test]
    fn meta_init_fills_every_derivable_field() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let net = testnet::small(8);
        std::fs::write(d.join("model.safetensors"), &net.safetensors).unwrap();
        let out = ok(&vault(
            &[
                "artifact",
                "meta",
                "init",
                "--tensors",
                "model.safetensors",
                "--name",
                "snn-demo",
                "--version",
                "1.0.0",
            ],
            d,
        ));
        assert!(out.contains("fill in the fields marked REQUIRED"), "{out}");
        let text = std::fs::read_to_string(d.join("meta.toml")).unwrap();
        // Never overwritten.
        let err = fails(&vault(
            &[
                "artifact",
                "meta",
                "init",
                "--tensors",
                "model.safetensors",
                "--name",
                "snn-demo",
                "--version",
                "1.0.0",
            ],
            d,
        ));
        assert!(err.contains("meta.toml"), "{err}");
        // Fill the REQUIRED lines per layer with the network's values.
        let mut filled = text.clone();
        for l in &net.quant.layers {
            for (key, v) in [
                (
                    "activation_scale",
                    format!("{:?}", f64::from(l.activation_scale)),
                ),
                ("beta", format!("{:?}", f64::from(l.beta))),
                ("threshold", format!("{:?}", f64::from(l.threshold))),
                (
                    "reset",
                    match l.reset {
                        vault::artifact::quant::Reset::Subtract => "\"subtract\"".into(),
                        vault::artifact::quant::Reset::Zero => "\"zero\"".into(),
                    },
                ),
            ] {
                let at = filled.find(&format!("# {key} = REQUIRED")).unwrap();
                let end = at + filled[at..].find('\n').unwrap();
                filled.replace_range(at..end, &format!("{key} = {v}"));
            }
        }
        let meta = MetaFile::parse(&filled).unwrap();
        let q = meta.quant().unwrap();
        assert_eq!(q.layers.len(), net.quant.layers.len());
        for (a, b) in q.layers.iter().zip(&net.quant.layers) {
            let mut a = a.clone();
            for (x, y) in a.clip.iter().zip(&b.clip) {
                assert!(((x - y) / y).abs() < 1e-6, "{}: clip {x} vs {y}", b.name);
            }
            a.clip = b.clip.clone();
            assert_eq!(&a, b);
        }
        std::fs::write(d.join("filled.toml"), &filled).unwrap();
        ok(&vault(
            &[
                "artifact",
                "pack",
                "--tensors",
                "model.safetensors",
                "--meta",
                "filled.toml",
                "--out",
                "art",
            ],
            d,
        ));
        // All given on the command line: complete and checked at once.
        let out = ok(&vault(
            &[
                "artifact",
                "meta",
                "init",
                "--tensors",
                "model.safetensors",
                "--name",
                "snn-demo",
                "--version",
                "1.0.0",
                "--activation-scale",
                "0.00390625",
                "--beta",
                "0.9",
                "--threshold",
                "1.0",
                "--reset",
                "zero",
                "--out",
                "all.toml",
            ],
            d,
        ));
        assert!(!out.contains("REQUIRED"), "{out}");
        let all = std::fs::read_to_string(d.join("all.toml")).unwrap();
        assert!(!all.contains("= REQUIRED"), "{all}");
        MetaFile::parse(&all).unwrap().quant().unwrap();
    }
}
