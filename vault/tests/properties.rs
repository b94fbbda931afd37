//! Properties of every signed or versioned format, over generated values:
//! decoding what was encoded gives the value back (and the same bytes), and
//! any change to a signed object makes it fail verification.

use proptest::prelude::*;
use std::sync::OnceLock;
use vault::epoch::{verify_step, EpochCertificate, Transition};
use vault::identity::{Fingerprint, PublicIdentity, SecretIdentity};
use vault::kem::hybrid::Suite;
use vault::manifest::{Manifest, ManifestBody, ShardEntry, VaultId};
use vault::shamir::Share;
use vault::share::ShareRecord;
use zeroize::Zeroizing;

/// An operator and six validators of each suite, made once.
fn ids() -> &'static (SecretIdentity, Vec<SecretIdentity>) {
    static IDS: OnceLock<(SecretIdentity, Vec<SecretIdentity>)> = OnceLock::new();
    IDS.get_or_init(|| {
        let op = SecretIdentity::generate("operator").unwrap();
        let v = (0..6)
            .map(|i| {
                let suite = Suite::ALL[i % 2];
                SecretIdentity::generate_with_suite(&format!("validator-{i}"), suite).unwrap()
            })
            .collect();
        (op, v)
    })
}

fn body(
    n: u8,
    t: u8,
    id: [u8; 16],
    epoch: u64,
    secret_len: u32,
    seeds: &[[u8; 32]],
) -> ManifestBody {
    let (_, v) = ids();
    ManifestBody {
        suite: Suite::DEFAULT,
        vault_id: VaultId::from_bytes(id),
        epoch,
        created_unix: epoch.wrapping_mul(31),
        threshold: t,
        n,
        secret_len,
        secret_commitment: seeds[0],
        shards: (1..=n)
            .map(|k| ShardEntry {
                index: k,
                recipient: v[usize::from(k) - 1].public().fingerprint(),
                recipient_name: v[usize::from(k) - 1].public().name().to_string(),
                blob_hash: seeds[usize::from(k) % seeds.len()],
                share_commitment: seeds[(usize::from(k) + 1) % seeds.len()],
            })
            .collect(),
    }
}

prop_compose! {
    fn bodies()(n in 2u8..=6)(
        n in Just(n),
        t in 2u8..=n,
        id in any::<[u8; 16]>(),
        epoch in 1u64..u64::MAX,
        secret_len in 1u32..=4096,
        seeds in proptest::collection::vec(any::<[u8; 32]>(), 1..4),
    ) -> ManifestBody {
        body(n, t, id, epoch, secret_len, &seeds)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// `PQVU`: every field back, and the same bytes again.
    #[test]
    fn share_records_round_trip(
        id in any::<[u8; 16]>(),
        epoch in 1u64..,
        (n, t, index) in (2u8..=255).prop_flat_map(|n| (Just(n), 2..=n, 1..=n)),
        value in proptest::collection::vec(any::<u8>(), vault::share::BLIND_LEN + 1..300),
    ) {
        let rec = ShareRecord {
            vault_id: VaultId::from_bytes(id),
            epoch,
            threshold: t,
            n,
            share: Share { index, value: Zeroizing::new(value.clone()) },
        };
        let bytes = rec.encode();
        let back = ShareRecord::decode(&bytes).unwrap();
        prop_assert_eq!(back.vault_id, rec.vault_id);
        prop_assert_eq!((back.epoch, back.threshold, back.n), (epoch, t, n));
        prop_assert_eq!(back.share.index, index);
        prop_assert_eq!(&back.share.value[..], &value[..]);
        prop_assert_eq!(&back.encode()[..], &bytes[..]);
    }

    /// `PQVM`: the body comes back equal, the signature verifies with the
    /// signer pinned, and any flipped byte fails decoding or verification.
    #[test]
    fn manifests_round_trip_and_every_mutation_fails(
        b in bodies(),
        pos in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let (op, _) = ids();
        let bytes = Manifest::sign(&b, op.public(), op.signing_key()).unwrap();
        let m = Manifest::decode(&bytes).unwrap();
        prop_assert_eq!(m.body(), &b);
        let fp = op.public().fingerprint();
        prop_assert!(m.verify(Some(&fp)).is_ok());
        let mut bad = bytes.clone();
        bad[pos.index(bytes.len())] ^= flip;
        let verdict = Manifest::decode(&bad).map(|m| m.verify(Some(&fp)).is_ok());
        prop_assert!(!matches!(verdict, Ok(true)), "byte {} accepted", pos.index(bytes.len()));
    }

    /// `PQVI` and `PQVK` of both suites: the same identity, the same bytes.
    #[test]
    fn identities_round_trip(which in 0usize..6) {
        let (_, v) = ids();
        let k = &v[which];
        let pub_bytes = k.public().encode();
        let p = PublicIdentity::decode(&pub_bytes).unwrap();
        prop_assert!(&p == k.public());
        prop_assert_eq!(p.encode(), pub_bytes);
        let key_bytes = k.encode();
        let back = SecretIdentity::decode(&key_bytes).unwrap();
        prop_assert_eq!(&back.encode()[..], &key_bytes[..]);
    }
}

/// Genesis manifest, epoch-2 manifest, certificate bytes, and the byte
/// ranges of the signers' display names in the certificate.
type Certified = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<(usize, usize)>);

/// A 2-of-3 genesis and a certified epoch 2 over it.
fn certified() -> &'static Certified {
    static C: OnceLock<Certified> = OnceLock::new();
    C.get_or_init(|| {
        let (op, v) = ids();
        let g = body(3, 2, [7; 16], 1, 32, &[[1; 32], [2; 32], [3; 32]]);
        let genesis = Manifest::sign(&g, op.public(), op.signing_key()).unwrap();
        let mut b2 = g.clone();
        b2.epoch = 2;
        b2.shards[0].blob_hash = [9; 32];
        let next = Manifest::sign(&b2, v[0].public(), v[0].signing_key()).unwrap();
        let prev = Manifest::decode(&genesis).unwrap().verify(None).unwrap();
        let t = Transition::between(&prev, &Manifest::decode(&next).unwrap());
        let cert = EpochCertificate {
            signatures: (0..3).map(|i| t.sign(&v[i]).unwrap()).collect(),
            transition: t,
        };
        let bytes = cert.encode();
        // Where each signer's display name sits: names are not
        // authenticated (only fingerprints are), so they are the one part
        // of a certificate a change to which need not fail.
        let mut names = Vec::new();
        for (id, _) in &cert.signatures {
            let enc = id.encode();
            let at = bytes.windows(enc.len()).position(|w| w == enc).unwrap();
            let len = id.name().len();
            names.push((at + 10, at + 10 + len));
        }
        (genesis, next, bytes, names)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// `PQVE`: decode(encode) is the same certificate and the same bytes;
    /// any flipped byte outside the signers' display names fails decoding
    /// or `verify_step`.
    #[test]
    fn certificates_round_trip_and_every_mutation_fails(
        pos in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let (genesis, next, bytes, names) = certified();
        let prev = Manifest::decode(genesis).unwrap().verify(None).unwrap();
        let cert = EpochCertificate::decode(bytes).unwrap();
        prop_assert_eq!(&cert.encode(), bytes);
        prop_assert!(verify_step(&prev, next, &cert, 1).is_ok());
        let i = pos.index(bytes.len());
        prop_assume!(!names.iter().any(|(a, b)| (*a..*b).contains(&i)));
        let mut bad = bytes.clone();
        bad[i] ^= flip;
        let ok = EpochCertificate::decode(&bad)
            .map(|c| verify_step(&prev, next, &c, 1).is_ok())
            .unwrap_or(false);
        prop_assert!(!ok, "byte {} accepted", i);
    }
}

#[test]
fn fingerprint_is_what_names_a_signer() {
    // The property above skips display names; this is why that is sound:
    // a renamed signer is the same fingerprint, and a changed key is not.
    let (_, v) = ids();
    let p = v[0].public();
    let renamed = PublicIdentity::decode(&{
        let mut b = p.encode();
        let at = 10; // magic, version, name length
        b[at] = b'V';
        b
    })
    .unwrap();
    assert_eq!(renamed.fingerprint(), p.fingerprint());
    assert_ne!(renamed.name(), p.name());
    let _: Fingerprint = renamed.fingerprint();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Berlekamp-Welch decoding (`vault::decode`): for any secret, (t, n),
    /// k in [t, n] of the shares in any order, and e <= (k - t) / 2 of
    /// them corrupted (a whole-share xor or one byte, always a nonzero
    /// change), decoding returns the secret and names exactly the
    /// corrupted shares.
    #[test]
    fn decoding_corrects_up_to_the_bound_and_names_exactly_the_corrupted(
        secret in proptest::collection::vec(any::<u8>(), 1..48),
        (t, n, k, e) in (2u8..=8)
            .prop_flat_map(|t| (Just(t), t..=14))
            .prop_flat_map(|(t, n)| (Just(t), Just(n), t..=n))
            .prop_flat_map(|(t, n, k)| (Just(t), Just(n), Just(k), 0..=usize::from(k - t) / 2)),
        order in Just((0..14usize).collect::<Vec<_>>()).prop_shuffle(),
        corruptions in proptest::collection::vec(
            (any::<prop::sample::Index>(), 1u8..=255, any::<bool>()),
            6,
        ),
    ) {
        let shares = vault::shamir::split(&secret, t, n).unwrap();
        let mut chosen: Vec<Share> = order
            .into_iter()
            .filter(|&i| i < usize::from(n))
            .take(usize::from(k))
            .map(|i| shares[i].clone())
            .collect();
        let mut corrupted = Vec::new();
        for (share, (at, delta, whole)) in chosen.iter_mut().zip(&corruptions).take(e) {
            if *whole {
                share.value.iter_mut().for_each(|b| *b ^= delta);
            } else {
                let i = at.index(share.value.len());
                share.value[i] ^= delta;
            }
            corrupted.push(share.index);
        }
        corrupted.sort();
        let d = vault::decode::decode(&chosen, t).unwrap();
        prop_assert_eq!(&d.value[..], &secret[..]);
        prop_assert_eq!(d.wrong, corrupted);
        prop_assert_eq!(d.basis.len() + d.agreeing.len() + e, usize::from(k));
    }
}
