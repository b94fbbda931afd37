//! Benchmarks for model artifacts.
//!
//! Measured (criterion group `artifact`):
//!
//! - `check_payload_64MiB/full`: [`check_payload`] on a 64 MiB int8 payload
//!   read from a file (length, SHA-256, 64 chunk hashes, header and metadata
//!   checks, every weight, and a 4-timestep golden run over four 4096x4096
//!   layers); throughput in bytes.
//! - `check_payload_64MiB/no_golden`: the same without the golden check.
//! - `golden_small`: the integer LIF golden run of the 64-32-10 network
//!   (16 timesteps), including reading its 2.8 KB payload.
//! - `verify_manifest`: decoding a signed manifest and verifying it
//!   (hybrid signature, policy).
//!
//! The payloads are built once, outside the timed closures.
//!
//! Run: `cargo bench -p vault --bench artifact`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::fs::File;
use std::hint::black_box;
use std::io::{Cursor, Write};
use std::time::Duration;
use vault::artifact::payload::golden_counts;
use vault::artifact::policy::Publisher;
use vault::artifact::{check_payload, pack, testnet, SignedArtifact, TrustPolicy};
use vault::identity::SecretIdentity;

const NOW: u64 = 1_767_225_600 + 1;

fn artifact(c: &mut Criterion) {
    let id = SecretIdentity::generate("bench-publisher").unwrap();
    let policy = TrustPolicy::new(vec![Publisher {
        name: "bench".into(),
        fingerprint: id.public().fingerprint(),
        models: vec!["snn-*".into()],
    }])
    .unwrap();

    let large = testnet::large(64 << 20);
    let len = large.safetensors.len() as u64;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payload.safetensors");
    File::create(&path)
        .unwrap()
        .write_all(&large.safetensors)
        .unwrap();
    let body = pack(Cursor::new(&large.safetensors), &large.meta(), 1 << 20, NOW).unwrap();
    drop(large);
    let full = SignedArtifact::sign(&body, &id)
        .unwrap()
        .verify(&policy, NOW)
        .unwrap();
    let mut plain = body.clone();
    plain.quant.golden = None;
    let no_golden = SignedArtifact::sign(&plain, &id)
        .unwrap()
        .verify(&policy, NOW)
        .unwrap();

    let mut g = c.benchmark_group("artifact");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Bytes(len));
    g.bench_function("check_payload_64MiB/full", |b| {
        b.iter(|| check_payload(&full, File::open(&path).unwrap()).unwrap())
    });
    g.bench_function("check_payload_64MiB/no_golden", |b| {
        b.iter(|| check_payload(&no_golden, File::open(&path).unwrap()).unwrap())
    });

    let small = testnet::small(8);
    let quant = small.quant.clone();
    g.throughput(Throughput::Elements(1));
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.bench_function("golden_small", |b| {
        b.iter(|| {
            let mut r = Cursor::new(&small.safetensors);
            golden_counts(black_box(&quant), &mut r, small.safetensors.len() as u64).unwrap()
        })
    });
    let small_body = pack(Cursor::new(&small.safetensors), &small.meta(), 1 << 16, NOW).unwrap();
    let encoded = SignedArtifact::sign(&small_body, &id).unwrap().encode();
    g.bench_function("verify_manifest", |b| {
        b.iter(|| {
            SignedArtifact::decode(black_box(&encoded))
                .unwrap()
                .verify(&policy, NOW)
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, artifact);
criterion_main!(benches);
