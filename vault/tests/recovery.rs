//! Vault-level scenarios through the public library API: round trips for
//! many (t, n), 255 shards, and every way a bad shard is named.

use std::sync::OnceLock;
use vault::create::{create, CreatedVault, NewVault};
use vault::identity::{PublicIdentity, SecretIdentity};
use vault::kem::hybrid::Suite;
use vault::manifest::{
    shard_hash, Manifest, ManifestBody, ManifestError, ShardEntry, VaultId, VerifiedManifest,
};
use vault::policy::{Policy, ThresholdSpec};
use vault::recover::{recover, Candidate, RecoverError, Rejection};
use vault::seal;
use vault::shamir;
use vault::share::{secret_commitment, ShareRecord, BLIND_LEN};

/// A pool of identities generated once (HQC keygen is not free).
fn pool() -> &'static Vec<SecretIdentity> {
    static POOL: OnceLock<Vec<SecretIdentity>> = OnceLock::new();
    POOL.get_or_init(|| {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|half| {
                    s.spawn(move || {
                        (0..128)
                            .filter(|i| i % 2 == half)
                            .map(|i| SecretIdentity::generate(&format!("v{i}")).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut all: Vec<SecretIdentity> = handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect();
            all.sort_by_key(|k| {
                k.public()
                    .name()
                    .trim_start_matches('v')
                    .parse::<u32>()
                    .unwrap()
            });
            all
        })
    })
}

fn operator() -> &'static SecretIdentity {
    static OP: OnceLock<SecretIdentity> = OnceLock::new();
    OP.get_or_init(|| SecretIdentity::generate("operator").unwrap())
}

fn publics(keys: &[SecretIdentity]) -> Vec<PublicIdentity> {
    keys.iter().map(|k| k.public().clone()).collect()
}

fn make(secret: &[u8], n: usize, threshold: ThresholdSpec) -> CreatedVault {
    create(&NewVault {
        initial_keys: &[],
        secret: Some(secret),
        recipients: &publics(&pool()[..n]),
        threshold,
        signer: operator(),
        created_unix: 1,
    })
    .unwrap()
}

fn verified(v: &CreatedVault) -> VerifiedManifest {
    Manifest::decode(&v.manifest)
        .unwrap()
        .verify(Some(&operator().public().fingerprint()))
        .unwrap()
}

fn sealed<'a>(v: &'a CreatedVault, indices: &[u8]) -> Vec<Candidate<'a>> {
    indices
        .iter()
        .map(|&i| Candidate::Sealed {
            source: format!("shard {i}"),
            bytes: &v.shards[usize::from(i) - 1].bytes,
        })
        .collect()
}

#[test]
fn round_trips_for_many_parameters() {
    let secret = b"correct horse battery staple, post-quantum edition";
    for (t, n) in [(2, 2), (2, 3), (3, 5), (4, 7), (5, 7), (7, 7), (9, 16)] {
        let v = make(secret, n, ThresholdSpec::Exact(t));
        assert_eq!((v.threshold, usize::from(v.n)), (t, n));
        let m = verified(&v);
        // The last t shards, and a spread-out subset.
        let last: Vec<u8> = ((n as u8 - t + 1)..=n as u8).collect();
        let spread: Vec<u8> = (1..=n as u8)
            .rev()
            .step_by(1)
            .filter(|i| i % 2 == 1)
            .chain((1..=n as u8).filter(|i| i % 2 == 0))
            .take(usize::from(t))
            .collect();
        for subset in [last, spread] {
            let r = recover(&m, &sealed(&v, &subset), pool()).unwrap();
            assert_eq!(&r.secret[..], &secret[..], "t={t} n={n} subset={subset:?}");
            assert!(r.rejected.is_empty());
        }
        // t - 1 shards never suffice.
        let few: Vec<u8> = (1..t).collect();
        assert!(matches!(
            recover(&m, &sealed(&v, &few), pool()),
            Err(RecoverError::NotEnoughShares { good, needed, .. }) if good == usize::from(t) - 1 && needed == t
        ));
    }
}

#[test]
fn auto_threshold_follows_policy() {
    let v = make(b"s", 7, ThresholdSpec::Auto(Policy::Majority));
    assert_eq!(v.threshold, 4);
    let v = make(b"s", 7, ThresholdSpec::Auto(Policy::Supermajority));
    assert_eq!(v.threshold, 5);
}

#[test]
fn two_hundred_fifty_five_shards() {
    // 255 distinct recipients: the pool has 128, so add 127 more here.
    let extra: Vec<SecretIdentity> = (0..127)
        .map(|i| SecretIdentity::generate(&format!("x{i}")).unwrap())
        .collect();
    let mut keys: Vec<&SecretIdentity> = pool().iter().collect();
    keys.extend(extra.iter());
    let recipients: Vec<PublicIdentity> = keys.iter().map(|k| k.public().clone()).collect();
    let secret = [0x5au8; 32];
    let v = create(&NewVault {
        initial_keys: &[],
        secret: Some(&secret),
        recipients: &recipients,
        threshold: ThresholdSpec::Auto(Policy::Majority),
        signer: operator(),
        created_unix: 1,
    })
    .unwrap();
    assert_eq!((v.threshold, v.n), (128, 255));
    let m = verified(&v);
    let subset: Vec<u8> = (128..=255).collect();
    // recover() takes a slice of identities: re-decode owned copies.
    let all_keys: Vec<SecretIdentity> = keys
        .iter()
        .map(|k| SecretIdentity::decode(&k.encode()).unwrap())
        .collect();
    let r = recover(&m, &sealed(&v, &subset), &all_keys).unwrap();
    assert_eq!(&r.secret[..], &secret[..]);
}

#[test]
fn refuses_impossible_parameters() {
    let one = publics(&pool()[..1]);
    let three = publics(&pool()[..3]);
    let req = |recipients: &[PublicIdentity], threshold| {
        create(&NewVault {
            initial_keys: &[],
            secret: None,
            recipients,
            threshold,
            signer: operator(),
            created_unix: 1,
        })
        .err()
        .map(|e| e.to_string())
    };
    assert!(req(&one, ThresholdSpec::Auto(Policy::Majority))
        .unwrap()
        .contains("at least 2 recipients"));
    assert!(req(&three, ThresholdSpec::Exact(4))
        .unwrap()
        .contains("exceeds"));
    assert!(req(&three, ThresholdSpec::Exact(1))
        .unwrap()
        .contains("single shard"));
    let dup = vec![three[0].clone(), three[1].clone(), three[0].clone()];
    assert!(req(&dup, ThresholdSpec::Exact(2))
        .unwrap()
        .contains("same identity"));
    let empty: Vec<u8> = Vec::new();
    assert!(create(&NewVault {
        initial_keys: &[],
        secret: Some(&empty),
        recipients: &three,
        threshold: ThresholdSpec::Exact(2),
        signer: operator(),
        created_unix: 1,
    })
    .is_err());
}

/// Builds a vault at a chosen epoch from a known payload, the way a
/// re-sharing round will: same vault id and secret, new polynomial.
fn vault_at_epoch(
    vault_id: VaultId,
    epoch: u64,
    payload: &[u8],
    secret_len: usize,
    keys: &[SecretIdentity],
    t: u8,
) -> (Vec<u8>, Vec<Vec<u8>>, Vec<ShareRecord>) {
    lying_vault_at_epoch(vault_id, epoch, payload, secret_len, keys, t, |_| {})
}

/// [`vault_at_epoch`] where `lie` changes share values before anything is
/// sealed or committed: the manifest then lists the lies' commitments and
/// shard hashes, as a later epoch's manifest lists what holders reported
/// (attack 7). Every lying share passes its own checks.
fn lying_vault_at_epoch(
    vault_id: VaultId,
    epoch: u64,
    payload: &[u8],
    secret_len: usize,
    keys: &[SecretIdentity],
    t: u8,
    lie: impl Fn(&mut [ShareRecord]),
) -> (Vec<u8>, Vec<Vec<u8>>, Vec<ShareRecord>) {
    let n = keys.len() as u8;
    let mut records: Vec<ShareRecord> = shamir::split(payload, t, n)
        .unwrap()
        .into_iter()
        .map(|share| ShareRecord {
            vault_id,
            epoch,
            threshold: t,
            n,
            share,
        })
        .collect();
    lie(&mut records);
    let blobs: Vec<Vec<u8>> = records
        .iter()
        .zip(keys)
        .map(|(r, k)| seal::seal(r, Suite::DEFAULT, k.public()).unwrap())
        .collect();
    let body = ManifestBody {
        suite: Suite::DEFAULT,
        vault_id,
        epoch,
        created_unix: 1,
        threshold: t,
        n,
        secret_len: secret_len as u32,
        secret_commitment: secret_commitment(
            &vault_id,
            &payload[..secret_len],
            &payload[secret_len..],
        ),
        shards: records
            .iter()
            .zip(keys)
            .zip(&blobs)
            .map(|((r, k), b)| ShardEntry {
                index: r.share.index,
                recipient: k.public().fingerprint(),
                recipient_name: k.public().name().to_string(),
                blob_hash: shard_hash(b),
                share_commitment: r.commitment(),
            })
            .collect(),
    };
    let manifest = Manifest::sign(&body, operator().public(), operator().signing_key()).unwrap();
    (manifest, blobs, records)
}

fn payload(secret: &[u8]) -> Vec<u8> {
    let mut p = secret.to_vec();
    p.extend_from_slice(&[0x77; BLIND_LEN]);
    p
}

#[test]
fn every_bad_shard_is_named_and_good_ones_still_recover() {
    let keys = &pool()[..5];
    let secret = b"the launch codes";
    let p = payload(secret);
    let id = VaultId::from_bytes([3; 16]);
    let (_, blobs1, _) = vault_at_epoch(id, 1, &p, secret.len(), keys, 3);
    let (m2, blobs2, recs2) = vault_at_epoch(id, 2, &p, secret.len(), keys, 3);
    let (_, blobs3, _) = vault_at_epoch(id, 3, &p, secret.len(), keys, 3);
    let (_, other_vault, _) =
        vault_at_epoch(VaultId::from_bytes([4; 16]), 2, &p, secret.len(), keys, 3);
    let m2 = Manifest::decode(&m2).unwrap().verify(None).unwrap();

    let mut tampered = blobs2[1].clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x80;
    let garbage = b"definitely not a shard".to_vec();
    let share5 = recs2[4].encode();

    let candidates = vec![
        Candidate::Sealed {
            source: "stale".into(),
            bytes: &blobs1[0],
        },
        Candidate::Sealed {
            source: "newer".into(),
            bytes: &blobs3[0],
        },
        Candidate::Sealed {
            source: "foreign".into(),
            bytes: &other_vault[0],
        },
        Candidate::Sealed {
            source: "tampered".into(),
            bytes: &tampered,
        },
        Candidate::Sealed {
            source: "garbage".into(),
            bytes: &garbage,
        },
        Candidate::Sealed {
            source: "good-3".into(),
            bytes: &blobs2[2],
        },
        Candidate::Sealed {
            source: "dup-3".into(),
            bytes: &blobs2[2],
        },
        Candidate::Sealed {
            source: "good-4".into(),
            bytes: &blobs2[3],
        },
        Candidate::Unsealed {
            source: "share-5".into(),
            bytes: &share5,
        },
        Candidate::Sealed {
            source: "good-1".into(),
            bytes: &blobs2[0],
        },
    ];
    let r = recover(&m2, &candidates, keys).unwrap();
    assert_eq!(&r.secret[..], &secret[..]);
    assert_eq!(r.used, vec![1, 3, 4]);
    assert_eq!(r.spare, vec![5]);
    let why: Vec<(&str, &Rejection)> = r
        .rejected
        .iter()
        .map(|x| (x.source.as_str(), &x.reason))
        .collect();
    assert!(
        matches!(
            why[0],
            (
                "stale",
                Rejection::StaleEpoch {
                    found: 1,
                    current: 2
                }
            )
        ),
        "{why:?}"
    );
    assert!(matches!(
        why[1],
        (
            "newer",
            Rejection::NewerEpoch {
                found: 3,
                current: 2
            }
        )
    ));
    assert!(matches!(why[2], ("foreign", Rejection::OtherVault { .. })));
    assert!(matches!(why[3], ("tampered", Rejection::Tampered(2))));
    assert!(matches!(why[4], ("garbage", Rejection::Unreadable(_))));
    assert!(matches!(why[5], ("dup-3", Rejection::Duplicate(3))));
    assert_eq!(why.len(), 6);

    // Without the right keys, sealed shards are named as such.
    let r = recover(&m2, &candidates[5..8], &pool()[10..12]);
    match r {
        Err(RecoverError::NotEnoughShares {
            good: 0,
            needed: 3,
            rejected,
        }) => {
            assert!(rejected
                .iter()
                .all(|x| matches!(x.reason, Rejection::NoKey { .. } | Rejection::Duplicate(_))));
            let msg = RecoverError::NotEnoughShares {
                good: 0,
                needed: 3,
                rejected,
            }
            .to_string();
            assert!(msg.contains("no key given for recipient"), "{msg}");
        }
        other => panic!("unexpected {:?}", other.map(|r| r.used)),
    }

    // A share whose commitment disagrees is refused even if its context matches.
    let mut forged = ShareRecord::decode(&recs2[4].encode()).unwrap();
    forged.share.value[0] ^= 1;
    let enc = forged.encode();
    let r = recover(
        &m2,
        &[Candidate::Unsealed {
            source: "forged".into(),
            bytes: &enc,
        }],
        keys,
    );
    match r {
        Err(RecoverError::NotEnoughShares { rejected, .. }) => {
            assert!(matches!(
                rejected[0].reason,
                Rejection::CommitmentMismatch(5)
            ));
        }
        _ => panic!("forged share accepted"),
    }
}

#[test]
fn inconsistent_manifest_is_detected() {
    // A signer who commits to a different secret than the one shared.
    let keys = &pool()[..3];
    let p = payload(b"real");
    let id = VaultId::from_bytes([5; 16]);
    let (m, blobs, _) = vault_at_epoch(id, 1, &p, 4, keys, 2);
    let mut body = Manifest::decode(&m).unwrap().body().clone();
    body.secret_commitment[0] ^= 1;
    let lying = Manifest::sign(&body, operator().public(), operator().signing_key()).unwrap();
    let lying = Manifest::decode(&lying).unwrap().verify(None).unwrap();
    let c = vec![
        Candidate::Sealed {
            source: "1".into(),
            bytes: &blobs[0],
        },
        Candidate::Sealed {
            source: "2".into(),
            bytes: &blobs[1],
        },
    ];
    assert!(matches!(
        recover(&lying, &c, keys),
        Err(RecoverError::SecretMismatch(_))
    ));
}

/// Changes every byte of share `index` (a nonzero xor at each position).
fn garble(records: &mut [ShareRecord], index: u8) {
    let v = &mut records[usize::from(index) - 1].share.value;
    for (pos, b) in v.iter_mut().enumerate() {
        *b ^= (pos as u8).wrapping_mul(29) | 1;
    }
}

/// Flips the low bit of byte `pos` of share `index`.
fn flip(records: &mut [ShareRecord], index: u8, pos: usize) {
    let v = &mut records[usize::from(index) - 1].share.value;
    let pos = pos % v.len();
    v[pos] ^= 1;
}

/// Every record as an unsealed share file, labelled "share i".
fn unsealed(records: &[ShareRecord]) -> Vec<(String, zeroize::Zeroizing<Vec<u8>>)> {
    records
        .iter()
        .map(|r| (format!("share {}", r.share.index), r.encode()))
        .collect()
}

fn candidates(files: &[(String, zeroize::Zeroizing<Vec<u8>>)]) -> Vec<Candidate<'_>> {
    files
        .iter()
        .map(|(source, bytes)| Candidate::Unsealed {
            source: source.clone(),
            bytes,
        })
        .collect()
}

/// The sources of the candidates recovery named as disagreeing with the
/// others (decoded away), sorted.
fn named_liars(rejected: &[vault::recover::Rejected]) -> Vec<String> {
    let mut v: Vec<String> = rejected
        .iter()
        .filter(|x| {
            x.reason
                .to_string()
                .contains("disagrees with the other shares")
        })
        .map(|x| x.source.clone())
        .collect();
    v.sort();
    v
}

/// Attack 7, "recovery gives up": a holder of a 3-of-5 vault in epoch 2
/// reported the commitment (and shard hash) of a wrong share, so its shard
/// passes every check of its own. With all five shards (k = t + 2)
/// recovery must correct it and name it, whether the lie is the whole
/// share or one bit of it, and whether or not the liar is among the first
/// t shares (a liar outside them used to be reported as "also good").
#[test]
fn a_lying_holder_is_outvoted_and_named() {
    let keys = &pool()[..5];
    let secret = b"attack seven: recovery gives up";
    let p = payload(secret);
    let id = VaultId::from_bytes([7; 16]);
    type Lie = fn(&mut [ShareRecord]);
    let lies: [(&str, u8, Lie, [u8; 3], u8); 3] = [
        ("every byte", 2, |r| garble(r, 2), [1, 3, 4], 5),
        (
            "one bit of the last byte",
            2,
            |r| flip(r, 2, usize::MAX),
            [1, 3, 4],
            5,
        ),
        (
            "one bit of the first byte",
            5,
            |r| flip(r, 5, 0),
            [1, 2, 3],
            4,
        ),
    ];
    for (what, liar, lie, used, spare) in lies {
        let (m, blobs, _) = lying_vault_at_epoch(id, 2, &p, secret.len(), keys, 3, lie);
        let m = Manifest::decode(&m).unwrap().verify(None).unwrap();
        let c: Vec<Candidate<'_>> = blobs
            .iter()
            .enumerate()
            .map(|(i, b)| Candidate::Sealed {
                source: format!("shard {}", i + 1),
                bytes: b,
            })
            .collect();
        let r = recover(&m, &c, keys)
            .unwrap_or_else(|e| panic!("share {liar} lied in {what}: recovery failed: {e:?}: {e}"));
        assert_eq!(&r.secret[..], &secret[..], "{what}");
        assert_eq!(
            named_liars(&r.rejected),
            [format!("shard {liar}")],
            "share {liar} lied in {what}: used {:?}, also good {:?}",
            r.used,
            r.spare
        );
        assert_eq!(r.rejected.len(), 1, "{what}");
        assert!(matches!(r.rejected[0].reason, Rejection::Inconsistent { index } if index == liar));
        assert_eq!(r.corrected(), [liar]);
        assert_eq!(
            r.rejected[0].reason.to_string(),
            format!("share {liar} disagrees with the other shares (Berlekamp-Welch): its holder lied or its shard was corrupted")
        );
        assert_eq!(r.used, used, "{what}");
        assert_eq!(r.spare, vec![spare], "{what}");
    }
}

/// A liar may also report the commitment of a share of another length:
/// it is refused on its own, before decoding, and the rest recover.
#[test]
fn a_share_of_the_wrong_length_is_refused_before_decoding() {
    let keys = &pool()[..4];
    let secret = b"lengths";
    let p = payload(secret);
    let id = VaultId::from_bytes([8; 16]);
    let (m, _, recs) = lying_vault_at_epoch(id, 2, &p, secret.len(), keys, 2, |r| {
        r[0].share.value.push(0);
    });
    let m = Manifest::decode(&m).unwrap().verify(None).unwrap();
    let files = unsealed(&recs);
    let r = recover(&m, &candidates(&files), &[]).unwrap();
    assert_eq!(&r.secret[..], &secret[..]);
    assert_eq!(r.rejected.len(), 1);
    assert!(matches!(
        r.rejected[0].reason,
        Rejection::Length {
            index: 1,
            found,
            expected
        } if found == expected + 1 && expected == secret.len() + BLIND_LEN
    ));
    assert!(r.corrected().is_empty());
    assert_eq!((r.used, r.spare), (vec![2, 3], vec![4]));
}

/// Up to floor((k - t) / 2) lying holders are corrected and named, for
/// several (t, k), the lies being whole shares or single bits at different
/// positions; one liar more is an error saying how many shares would be
/// needed, never a secret. Share 1 always lies when anyone does, so the
/// first t shares are never all honest.
#[test]
fn liars_up_to_the_decoding_bound_are_corrected_and_one_more_is_refused() {
    let secret = b"thirty-two bytes of secret here!";
    let p = payload(secret);
    for (t, k) in [
        (2u8, 3u8),
        (2, 4),
        (2, 5),
        (3, 5),
        (3, 7),
        (4, 7),
        (4, 8),
        (5, 9),
        (2, 8),
        (3, 9),
        (4, 10),
    ] {
        let keys = &pool()[..usize::from(k)];
        let e = usize::from(k - t) / 2;
        let spread: Vec<u8> = (1..=k).step_by(2).chain((2..=k).step_by(2)).collect();
        let id = VaultId::from_bytes([t ^ (k << 4); 16]);
        let lie = |liars: &[u8]| {
            let liars = liars.to_vec();
            move |r: &mut [ShareRecord]| {
                for (j, &i) in liars.iter().enumerate() {
                    if j % 2 == 0 {
                        garble(r, i);
                    } else {
                        flip(r, i, 11 * j);
                    }
                }
            }
        };

        let liars = &spread[..e];
        let (m, _, recs) = lying_vault_at_epoch(id, 3, &p, secret.len(), keys, t, lie(liars));
        let m = Manifest::decode(&m).unwrap().verify(None).unwrap();
        let files = unsealed(&recs);
        let r = recover(&m, &candidates(&files), &[])
            .unwrap_or_else(|err| panic!("t={t} k={k}, liars {liars:?}: {err}"));
        assert_eq!(&r.secret[..], &secret[..], "t={t} k={k}");
        let mut expected: Vec<String> = liars.iter().map(|i| format!("share {i}")).collect();
        expected.sort();
        assert_eq!(named_liars(&r.rejected), expected, "t={t} k={k}");
        assert_eq!(r.rejected.len(), e);
        let mut sorted = liars.to_vec();
        sorted.sort();
        assert_eq!(r.corrected(), sorted);

        let liars = &spread[..e + 1];
        let (m, _, recs) = lying_vault_at_epoch(id, 3, &p, secret.len(), keys, t, lie(liars));
        let m = Manifest::decode(&m).unwrap().verify(None).unwrap();
        let files = unsealed(&recs);
        let needed = usize::from(t) + 2 * (e + 1);
        match recover(&m, &candidates(&files), &[]) {
            Ok(r) => panic!(
                "t={t} k={k}, liars {liars:?}: recovered {} secret",
                if &r.secret[..] == secret {
                    "the"
                } else {
                    "a WRONG"
                }
            ),
            Err(err) => {
                let msg = err.to_string();
                assert!(
                    msg.contains(&format!("needs at least {needed} shares")),
                    "t={t} k={k}, liars {liars:?}: {msg}"
                );
                assert!(
                    matches!(
                        &err,
                        RecoverError::TooManyWrong { shares, threshold, correctable, needed: n, rejected }
                            if shares.len() == usize::from(k) && *threshold == t
                                && *correctable == e && *n == needed && rejected.is_empty()
                    ),
                    "{err:?}"
                );
            }
        }
    }
}

/// Two colluding liars where t = 2, k = 4 can correct only one: they lie
/// consistently with share 3 on another line, so the word is one error
/// away from a wrong polynomial that names honest share 4. The secret
/// commitment refuses that polynomial: an error, never a wrong secret.
#[test]
fn colluding_liars_beyond_the_bound_never_yield_a_wrong_secret() {
    let secret = b"collusion";
    let p = payload(secret);
    let keys = &pool()[..4];
    let id = VaultId::from_bytes([9; 16]);
    // D(x) = x + 3 vanishes at x = 3 only: adding D(1) = 2 to share 1 and
    // D(2) = 1 to share 2 moves shares 1, 2, 3 onto the line f + D.
    let (m, _, recs) = lying_vault_at_epoch(id, 2, &p, secret.len(), keys, 2, |r| {
        r[0].share.value.iter_mut().for_each(|b| *b ^= 2);
        r[1].share.value.iter_mut().for_each(|b| *b ^= 1);
    });
    let m = Manifest::decode(&m).unwrap().verify(None).unwrap();
    let files = unsealed(&recs);
    match recover(&m, &candidates(&files), &[]) {
        Ok(r) => panic!(
            "recovered {} secret, named {:?}",
            if &r.secret[..] == secret {
                "the"
            } else {
                "a WRONG"
            },
            named_liars(&r.rejected)
        ),
        Err(err) => {
            let msg = err.to_string();
            assert!(msg.contains("needs at least 6 shares"), "{msg}");
        }
    }
}

#[test]
fn manifest_from_another_signer_is_refused_when_pinned() {
    let v = make(b"x", 3, ThresholdSpec::Exact(2));
    let mallory = SecretIdentity::generate("mallory").unwrap();
    let body = Manifest::decode(&v.manifest).unwrap().body().clone();
    let forged = Manifest::sign(&body, mallory.public(), mallory.signing_key()).unwrap();
    let err = Manifest::decode(&forged)
        .unwrap()
        .verify(Some(&operator().public().fingerprint()))
        .unwrap_err();
    assert!(matches!(err, ManifestError::UntrustedSigner { .. }));
    // Unpinned, a self-consistent forgery verifies: that is why the CLI
    // takes --trust and says so when it is missing.
    assert!(Manifest::decode(&forged).unwrap().verify(None).is_ok());
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use vault::seal::SealedShard;
    use zeroize::Zeroizing;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

        #[test]
        fn seal_open_round_trip(
            value in proptest::collection::vec(any::<u8>(), BLIND_LEN + 1..300),
            epoch in any::<u64>(),
            index in 1u8..=255,
            id in any::<[u8; 16]>(),
            who in 0usize..4,
        ) {
            let key = &pool()[who];
            let rec = ShareRecord {
                vault_id: VaultId::from_bytes(id),
                epoch,
                threshold: 2,
                n: 255,
                share: shamir::Share { index, value: Zeroizing::new(value.clone()) },
            };
            let blob = seal::seal(&rec, Suite::DEFAULT, key.public()).unwrap();
            let back = SealedShard::parse(&blob).unwrap().open(key).unwrap();
            prop_assert_eq!(&back.share.value[..], &value[..]);
            prop_assert_eq!(back.epoch, epoch);
            prop_assert_eq!(back.share.index, index);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// No decoder panics on mutated or truncated input.
        #[test]
        fn parsers_never_panic(which in 0usize..5, cut in any::<prop::sample::Index>(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8)) {
            static FILES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
            let files = FILES.get_or_init(|| {
                let v = make(b"fuzz", 3, ThresholdSpec::Exact(2));
                let k = &pool()[0];
                let rec = SealedShard::parse(&v.shards[0].bytes).unwrap().open(k).unwrap();
                vec![v.manifest.clone(), v.shards[0].bytes.clone(), k.encode().to_vec(), k.public().encode(), rec.encode().to_vec()]
            });
            let mut bytes = files[which].clone();
            for (pos, val) in &flips {
                let i = pos.index(bytes.len());
                bytes[i] ^= val;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            let _ = Manifest::decode(&bytes).map(|m| m.verify(None).is_ok());
            let _ = SealedShard::parse(&bytes);
            let _ = SecretIdentity::decode(&bytes);
            let _ = PublicIdentity::decode(&bytes);
            let _ = ShareRecord::decode(&bytes);
            let _ = vault::inspect::describe(&bytes);
        }
    }
}
