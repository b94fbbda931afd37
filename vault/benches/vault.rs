//! Benchmarks for the vault core: key generation, each KEM alone and the
//! hybrid, sealing, Shamir split/combine (32 B and 1 MiB), and vault
//! creation and recovery end to end (7 shards, 4 of 7).
//!
//! Run: `cargo bench -p vault --bench vault`
//!
//! The figures the issue asks for: hybrid encapsulation against the sum of
//! its three components (`encapsulate/*`), and `vault/create_7`.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use vault::create::{create, NewVault};
use vault::identity::SecretIdentity;
use vault::kem::hqc::Hqc192;
use vault::kem::hybrid::{self, Suite};
use vault::kem::mlkem::MlKem768;
use vault::kem::x25519::X25519;
use vault::kem::Kem;
use vault::manifest::{Manifest, VaultId};
use vault::policy::{Policy, ThresholdSpec};
use vault::recover::{recover, Candidate};
use vault::seal::{self, SealedShard};
use vault::shamir::{self, Share};
use vault::share::ShareRecord;
use zeroize::Zeroizing;

fn quick<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g
}

fn component<K: Kem>(c: &mut Criterion) {
    let kp = K::generate().unwrap();
    let enc = K::encapsulate(&kp.public).unwrap();
    quick(c, "keygen").bench_function(K::NAME, |b| b.iter(|| K::generate().unwrap()));
    quick(c, "encapsulate").bench_function(K::NAME, |b| {
        b.iter(|| K::encapsulate(black_box(&kp.public)).unwrap())
    });
    quick(c, "decapsulate").bench_function(K::NAME, |b| {
        b.iter(|| K::decapsulate(black_box(&kp.secret), black_box(&enc.ciphertext)).unwrap())
    });
}

fn kems(c: &mut Criterion) {
    component::<X25519>(c);
    component::<MlKem768>(c);
    component::<Hqc192>(c);

    let id = SecretIdentity::generate("bench").unwrap();
    let fp = id.public().fingerprint();
    let (ct, _) = hybrid::encapsulate(Suite::DEFAULT, id.public().kem(), &fp).unwrap();
    quick(c, "keygen").bench_function("hybrid", |b| b.iter(|| hybrid::generate().unwrap()));
    quick(c, "keygen").bench_function("identity", |b| {
        b.iter(|| SecretIdentity::generate("b").unwrap())
    });
    quick(c, "encapsulate").bench_function("hybrid", |b| {
        b.iter(|| hybrid::encapsulate(Suite::DEFAULT, black_box(id.public().kem()), &fp).unwrap())
    });
    quick(c, "decapsulate").bench_function("hybrid", |b| {
        b.iter(|| {
            hybrid::decapsulate(Suite::DEFAULT, black_box(id.kem()), black_box(&ct), &fp).unwrap()
        })
    });

    let record = ShareRecord {
        vault_id: VaultId::from_bytes([1; 16]),
        epoch: 1,
        threshold: 4,
        n: 7,
        share: Share {
            index: 3,
            value: Zeroizing::new(vec![0x42; 64]),
        },
    };
    let blob = seal::seal(&record, Suite::DEFAULT, id.public()).unwrap();
    quick(c, "seal").bench_function("seal_64B", |b| {
        b.iter(|| seal::seal(black_box(&record), Suite::DEFAULT, id.public()).unwrap())
    });
    quick(c, "seal").bench_function("unseal_64B", |b| {
        b.iter(|| {
            SealedShard::parse(black_box(&blob))
                .unwrap()
                .open(&id)
                .unwrap()
        })
    });
}

fn shamir_bench(c: &mut Criterion) {
    let mut g = quick(c, "shamir");
    for len in [32usize, 1 << 20] {
        let secret = vec![0x5au8; len];
        let shares = shamir::split(&secret, 4, 7).unwrap();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("split_4of7", len), &secret, |b, s| {
            b.iter(|| shamir::split(black_box(s), 4, 7).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("combine_4", len), &shares[..4], |b, s| {
            b.iter(|| shamir::combine(black_box(s)).unwrap())
        });
    }
}

fn end_to_end(c: &mut Criterion) {
    let op = SecretIdentity::generate("op").unwrap();
    let keys: Vec<SecretIdentity> = (0..7)
        .map(|i| SecretIdentity::generate(&format!("v{i}")).unwrap())
        .collect();
    let pubs: Vec<_> = keys.iter().map(|k| k.public().clone()).collect();
    let req = NewVault {
        secret: Some(&[7u8; 32]),
        recipients: &pubs,
        threshold: ThresholdSpec::Auto(Policy::Majority),
        signer: &op,
        created_unix: 1,
    };
    let mut g = quick(c, "vault");
    g.bench_function("create_7", |b| b.iter(|| create(black_box(&req)).unwrap()));
    let v = create(&req).unwrap();
    let m = Manifest::decode(&v.manifest)
        .unwrap()
        .verify(Some(&op.public().fingerprint()))
        .unwrap();
    g.bench_function("recover_4_of_7", |b| {
        b.iter_batched(
            || {
                v.shards[3..]
                    .iter()
                    .map(|s| Candidate::Sealed {
                        source: String::new(),
                        bytes: &s.bytes,
                    })
                    .collect::<Vec<_>>()
            },
            |cands: Vec<Candidate<'_>>| recover(&m, &cands, &keys).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, kems, shamir_bench, end_to_end);
criterion_main!(benches);
