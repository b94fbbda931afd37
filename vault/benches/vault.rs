//! Benchmarks for the vault core.
//!
//! Measured (criterion group / benchmark):
//!
//! Both KEM suites side by side in one run: suite 1
//! (`x25519-mlkem768-hqc192r4`, HQC round 4 via pqcrypto-hqc) and suite 2
//! (`x25519-mlkem768-hqc192v5`, HQC v5 via hqc-kem); benchmark ids carry the
//! suite or component name.
//!
//! - `keygen/*`: each component KEM alone (X25519, ML-KEM-768, both HQC-192
//!   revisions), the hybrid key pair per suite, and a full
//!   [`SecretIdentity`] per suite (hybrid KEM plus hybrid signing keys).
//! - `encapsulate/*`, `decapsulate/*`: each component alone and the hybrid
//!   per suite (three components plus the combiner), to compare the hybrid
//!   against the sum of its parts.
//! - `seal/*`: sealing a 64-byte share record to a recipient, and parsing
//!   plus opening the sealed shard, per suite.
//! - `shamir/*`: 4-of-7 split and combine of a 32-byte and a 1 MiB secret.
//! - `vault/*`: `create` end to end for 7 recipients (threshold auto, so 4),
//!   and `recover` from 4 of the 7 sealed shards, per suite.
//! - `robust/*`: `recover` from all 7 unsealed shares of a 4-of-7 vault
//!   (32-byte secret) with one liar, whose commitment the manifest lists:
//!   Berlekamp-Welch decoding corrects and names it. Unsealed shares, so
//!   the figure is the checks and the decoding, not HQC. Baselines: the
//!   same recovery from 4 honest shares, and `decode` alone.
//!
//! All keys, ciphertexts and vaults are prepared once, outside the timed
//! closures. Sample sizes and measurement times are kept small because HQC
//! operations take milliseconds; the whole run finishes in a few minutes.
//!
//! Run: `cargo bench -p vault --bench vault`

use criterion::{
    criterion_group, criterion_main, measurement::WallTime, BenchmarkGroup, BenchmarkId, Criterion,
    Throughput,
};
use std::hint::black_box;
use std::time::Duration;
use vault::create::{create, NewVault};
use vault::identity::SecretIdentity;
use vault::kem::hqc_r4::Hqc192R4;
use vault::kem::hqc_v5::Hqc192V5;
use vault::kem::hybrid::{self, Suite};
use vault::kem::mlkem::MlKem768;
use vault::kem::x25519::X25519;
use vault::kem::{Kem, KeyPair};
use vault::manifest::{Manifest, ManifestBody, ShardEntry, VaultId};
use vault::policy::{Policy, ThresholdSpec};
use vault::recover::{recover, Candidate};
use vault::seal::{self, SealedShard};
use vault::shamir;
use vault::share::{secret_commitment, ShareRecord, BLIND_LEN};
use zeroize::Zeroizing;

/// Shamir parameters used throughout: 4 of 7.
const T: u8 = 4;
const N: u8 = 7;

/// A group with a small sample size and short warm-up/measurement times.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g
}

/// Key generation: the components, the hybrid, and a full identity.
fn keygen(c: &mut Criterion) {
    let mut g = group(c, "keygen");
    g.bench_function(X25519::NAME, |b| b.iter(|| X25519::generate().unwrap()));
    g.bench_function(MlKem768::NAME, |b| b.iter(|| MlKem768::generate().unwrap()));
    g.bench_function(Hqc192R4::NAME, |b| b.iter(|| Hqc192R4::generate().unwrap()));
    g.bench_function(Hqc192V5::NAME, |b| b.iter(|| Hqc192V5::generate().unwrap()));
    for suite in Suite::ALL {
        g.bench_function(BenchmarkId::new("hybrid", suite), |b| {
            b.iter(|| hybrid::generate(suite).unwrap())
        });
        g.bench_function(BenchmarkId::new("identity", suite), |b| {
            b.iter(|| SecretIdentity::generate_with_suite(black_box("bench"), suite).unwrap())
        });
    }
    g.finish();
}

/// A component key pair with one ciphertext to it.
struct Fixture {
    kp: KeyPair,
    ct: Vec<u8>,
}

fn fixture<K: Kem>() -> Fixture {
    let kp = K::generate().unwrap();
    let ct = K::encapsulate(&kp.public).unwrap().ciphertext;
    Fixture { kp, ct }
}

/// Encapsulation and decapsulation: each component alone, then the hybrid.
fn kem_ops(c: &mut Criterion) {
    let x = fixture::<X25519>();
    let m = fixture::<MlKem768>();
    let h4 = fixture::<Hqc192R4>();
    let h5 = fixture::<Hqc192V5>();
    let ids: Vec<_> = Suite::ALL
        .into_iter()
        .map(|suite| {
            let id = SecretIdentity::generate_with_suite("bench", suite).unwrap();
            let fp = id.public().fingerprint();
            let (hct, _) = hybrid::encapsulate(suite, id.public().kem(), &fp).unwrap();
            (suite, id, fp, hct)
        })
        .collect();

    let mut g = group(c, "encapsulate");
    g.bench_function(X25519::NAME, |b| {
        b.iter(|| X25519::encapsulate(black_box(&x.kp.public)).unwrap())
    });
    g.bench_function(MlKem768::NAME, |b| {
        b.iter(|| MlKem768::encapsulate(black_box(&m.kp.public)).unwrap())
    });
    g.bench_function(Hqc192R4::NAME, |b| {
        b.iter(|| Hqc192R4::encapsulate(black_box(&h4.kp.public)).unwrap())
    });
    g.bench_function(Hqc192V5::NAME, |b| {
        b.iter(|| Hqc192V5::encapsulate(black_box(&h5.kp.public)).unwrap())
    });
    for (suite, id, fp, _) in &ids {
        g.bench_function(BenchmarkId::new("hybrid", suite), |b| {
            b.iter(|| hybrid::encapsulate(*suite, black_box(id.public().kem()), fp).unwrap())
        });
    }
    g.finish();

    let mut g = group(c, "decapsulate");
    g.bench_function(X25519::NAME, |b| {
        b.iter(|| X25519::decapsulate(black_box(&x.kp.secret), black_box(&x.ct)).unwrap())
    });
    g.bench_function(MlKem768::NAME, |b| {
        b.iter(|| MlKem768::decapsulate(black_box(&m.kp.secret), black_box(&m.ct)).unwrap())
    });
    g.bench_function(Hqc192R4::NAME, |b| {
        b.iter(|| Hqc192R4::decapsulate(black_box(&h4.kp.secret), black_box(&h4.ct)).unwrap())
    });
    g.bench_function(Hqc192V5::NAME, |b| {
        b.iter(|| Hqc192V5::decapsulate(black_box(&h5.kp.secret), black_box(&h5.ct)).unwrap())
    });
    for (suite, id, fp, hct) in &ids {
        g.bench_function(BenchmarkId::new("hybrid", suite), |b| {
            b.iter(|| hybrid::decapsulate(*suite, black_box(id.kem()), black_box(hct), fp).unwrap())
        });
    }
    g.finish();
}

/// Sealing and opening one share record with a 64-byte share value.
fn seal_ops(c: &mut Criterion) {
    let mut g = group(c, "seal");
    for suite in Suite::ALL {
        seal_suite(&mut g, suite);
    }
    g.finish();
}

fn seal_suite(g: &mut BenchmarkGroup<'_, WallTime>, suite: Suite) {
    let id = SecretIdentity::generate_with_suite("bench", suite).unwrap();
    let record = ShareRecord {
        vault_id: VaultId::from_bytes([1; 16]),
        epoch: 1,
        threshold: T,
        n: N,
        share: shamir::Share {
            index: 3,
            value: Zeroizing::new(vec![0x42; 64]),
        },
    };
    let blob = seal::seal(&record, suite, id.public()).unwrap();

    g.bench_function(BenchmarkId::new("seal_64B", suite), |b| {
        b.iter(|| seal::seal(black_box(&record), suite, id.public()).unwrap())
    });
    g.bench_function(BenchmarkId::new("unseal_64B", suite), |b| {
        b.iter(|| {
            SealedShard::parse(black_box(&blob))
                .unwrap()
                .open(&id)
                .unwrap()
        })
    });
    // What a holder pays per epoch for its fresh epoch key (D42): generate
    // the key pair and seal its share to it (the ring write is disk-bound
    // and not included).
    g.bench_function(
        BenchmarkId::new("epoch_key_generate_and_seal_64B", suite),
        |b| {
            b.iter(|| {
                let key =
                    vault::epoch_key::EpochKey::generate(suite, record.vault_id, record.epoch)
                        .unwrap();
                seal::seal_to_epoch_key(black_box(&record), id.public().fingerprint(), key.public())
                    .unwrap()
            })
        },
    );
}

/// Shamir 4-of-7 split and combine for a 32-byte and a 1 MiB secret.
fn shamir_ops(c: &mut Criterion) {
    let mut g = group(c, "shamir");
    for len in [32usize, 1 << 20] {
        let secret = vec![0x5au8; len];
        let shares = shamir::split(&secret, T, N).unwrap();
        g.throughput(Throughput::Bytes(len as u64));
        if len > 32 {
            // A 1 MiB split takes ~20 ms: fewer samples keep the run short.
            g.sample_size(10);
        }
        g.bench_with_input(BenchmarkId::new("split_4of7", len), &secret, |b, s| {
            b.iter(|| shamir::split(black_box(s), T, N).unwrap())
        });
        g.bench_with_input(
            BenchmarkId::new("combine_4", len),
            &shares[..usize::from(T)],
            |b, s| b.iter(|| shamir::combine(black_box(s)).unwrap()),
        );
    }
    g.finish();
}

/// `create` for 7 recipients and `recover` from 4 of the 7 shards.
fn end_to_end(c: &mut Criterion) {
    let mut g = group(c, "vault");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for suite in Suite::ALL {
        end_to_end_suite(&mut g, suite);
    }
    g.finish();
}

fn end_to_end_suite(g: &mut BenchmarkGroup<'_, WallTime>, suite: Suite) {
    let operator = SecretIdentity::generate("operator").unwrap();
    let keys: Vec<SecretIdentity> = (0..N)
        .map(|i| SecretIdentity::generate_with_suite(&format!("validator-{i}"), suite).unwrap())
        .collect();
    let recipients: Vec<_> = keys.iter().map(|k| k.public().clone()).collect();
    let secret = [7u8; 32];
    let req = NewVault {
        initial_keys: &[],
        secret: Some(&secret),
        recipients: &recipients,
        threshold: ThresholdSpec::Auto(Policy::Majority),
        signer: &operator,
        created_unix: 1,
    };

    let created = create(&req).unwrap();
    assert_eq!((created.threshold, created.n), (T, N));
    let manifest = Manifest::decode(&created.manifest)
        .unwrap()
        .verify(Some(&operator.public().fingerprint()))
        .unwrap();
    // The last four shards: recovery opens each with its recipient's key.
    let candidates: Vec<Candidate<'_>> = created.shards[usize::from(N - T)..]
        .iter()
        .map(|s| Candidate::Sealed {
            source: format!("shard-{}", s.index),
            bytes: &s.bytes,
        })
        .collect();

    g.bench_function(BenchmarkId::new("create_7", suite), |b| {
        b.iter(|| create(black_box(&req)).unwrap())
    });
    g.bench_function(BenchmarkId::new("recover_4_of_7", suite), |b| {
        b.iter(|| recover(&manifest, black_box(&candidates), &keys).unwrap())
    });
}

/// `recover` from 7 unsealed shares, t = 4, one of them a lie the manifest
/// commits to (attack 7), 32-byte secret.
fn robust(c: &mut Criterion) {
    let operator = SecretIdentity::generate("operator").unwrap();
    let holders: Vec<SecretIdentity> = (0..N)
        .map(|i| SecretIdentity::generate(&format!("validator-{i}")).unwrap())
        .collect();
    let vault_id = VaultId::from_bytes([2; 16]);
    let secret = [7u8; 32];
    let mut payload = secret.to_vec();
    payload.extend_from_slice(&[0x33; BLIND_LEN]);
    let mut records: Vec<ShareRecord> = shamir::split(&payload, T, N)
        .unwrap()
        .into_iter()
        .map(|share| ShareRecord {
            vault_id,
            epoch: 2,
            threshold: T,
            n: N,
            share,
        })
        .collect();
    records[1].share.value.iter_mut().for_each(|b| *b ^= 0x5a);
    let body = ManifestBody {
        suite: Suite::DEFAULT,
        vault_id,
        epoch: 2,
        created_unix: 1,
        threshold: T,
        n: N,
        secret_len: secret.len() as u32,
        secret_commitment: secret_commitment(&vault_id, &secret, &payload[secret.len()..]),
        shards: records
            .iter()
            .zip(&holders)
            .map(|(r, h)| ShardEntry {
                index: r.share.index,
                recipient: h.public().fingerprint(),
                recipient_name: h.public().name().to_string(),
                blob_hash: [0; 32],
                share_commitment: r.commitment(),
            })
            .collect(),
    };
    let manifest = Manifest::decode(
        &Manifest::sign(&body, operator.public(), operator.signing_key()).unwrap(),
    )
    .unwrap()
    .verify(None)
    .unwrap();
    let files: Vec<Zeroizing<Vec<u8>>> = records.iter().map(|r| r.encode()).collect();
    let candidates: Vec<Candidate<'_>> = files
        .iter()
        .enumerate()
        .map(|(i, bytes)| Candidate::Unsealed {
            source: format!("share-{}", i + 1),
            bytes,
        })
        .collect();
    let r = recover(&manifest, &candidates, &[]).unwrap();
    assert_eq!((&r.secret[..], r.corrected()), (&secret[..], vec![2]));

    // Baselines: the same recovery from t honest shares (no decoding), and
    // the decoding alone.
    let honest: Vec<Candidate<'_>> = files
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != 1)
        .take(usize::from(T))
        .map(|(i, bytes)| Candidate::Unsealed {
            source: format!("share-{}", i + 1),
            bytes,
        })
        .collect();
    let shares: Vec<shamir::Share> = records.iter().map(|r| r.share.clone()).collect();

    let mut g = group(c, "robust");
    g.bench_function("recover_7_shares_t4_1_liar_32B", |b| {
        b.iter(|| recover(&manifest, black_box(&candidates), &[]).unwrap())
    });
    g.bench_function("recover_4_honest_shares_t4_32B", |b| {
        b.iter(|| recover(&manifest, black_box(&honest), &[]).unwrap())
    });
    g.bench_function("decode_7_shares_t4_1_liar_32B", |b| {
        b.iter(|| vault::decode::decode(black_box(&shares), T).unwrap())
    });
    g.finish();
}

criterion_group!(benches, keygen, kem_ops, seal_ops, shamir_ops, end_to_end, robust);
criterion_main!(benches);
