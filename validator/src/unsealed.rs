//! Shares this validator unsealed recently, kept briefly in memory so that
//! one healing (concurrent repair rounds, then prepare, commit and refresh)
//! pays for the HQC decapsulation of its own shard once rather than at
//! every step (about 12 ms of CPU each).
//!
//! Why this costs no secrecy: the identity secret key that unseals these
//! shards lives in the same process memory for the process's whole life; a
//! plaintext share cached for a minute is no more exposed than the key
//! that yields it at will (docs/decisions.md D21). Entries are keyed by
//! SHA-256 of the recipient's fingerprint and the exact sealed bytes (a hit
//! means these very bytes were authenticated before), live at most
//! [`TTL`], are bounded in number, and are zeroized when dropped.

use crate::keyring::Keyring;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vault::seal::SealError;
use vault::share::ShareRecord;
use zeroize::Zeroizing;

/// How long an unsealed share stays cached.
pub const TTL: Duration = Duration::from_secs(60);
/// Most shares cached at once (a validator holds one per vault).
const MAX: usize = 16;

struct Entry {
    key: [u8; 32],
    at: Instant,
    plain: Zeroizing<Vec<u8>>,
}

static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn cache_key(recipient: &[u8], sealed: &[u8]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"pqvault unsealed-share cache v1\0");
    ctx.update(recipient);
    ctx.update(sealed);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn lookup(key: &[u8; 32]) -> Option<ShareRecord> {
    let mut cache = CACHE.lock().ok()?;
    let now = Instant::now();
    cache.retain(|e| now.saturating_duration_since(e.at) < TTL);
    let hit = cache.iter().find(|e| &e.key == key)?;
    ShareRecord::decode(&hit.plain).ok()
}

fn store(key: [u8; 32], record: &ShareRecord) {
    let Ok(mut cache) = CACHE.lock() else {
        return;
    };
    cache.retain(|e| e.key != key);
    if cache.len() >= MAX {
        cache.remove(0);
    }
    cache.push(Entry {
        key,
        at: Instant::now(),
        plain: record.encode(),
    });
}

/// Parses `sealed` and opens it with `keys`, from the cache when these
/// exact bytes were opened (or sealed) here within [`TTL`].
pub fn open(sealed: &[u8], keys: &Keyring) -> Result<ShareRecord, SealError> {
    let k = cache_key(keys.identity().public().fingerprint().as_bytes(), sealed);
    if let Some(record) = lookup(&k) {
        return Ok(record);
    }
    let record = keys.open_shard(sealed)?;
    store(k, &record);
    Ok(record)
}

/// Records that `sealed` (just sealed here by `keys`) holds `record`, so
/// the next [`open`] of it costs nothing.
pub fn remember(sealed: &[u8], keys: &Keyring, record: &ShareRecord) {
    store(
        cache_key(keys.identity().public().fingerprint().as_bytes(), sealed),
        record,
    );
}

/// Drops every cached share: called when epoch keys are erased, so no
/// plaintext outlives the key that opened it.
pub fn clear() {
    if let Ok(mut cache) = CACHE.lock() {
        cache.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault::identity::SecretIdentity;
    use vault::manifest::VaultId;
    use vault::seal::seal;
    use vault::shamir::Share;

    fn ring(name: &str) -> Keyring {
        Keyring::in_memory(std::sync::Arc::new(SecretIdentity::generate(name).unwrap()))
    }

    fn record(index: u8) -> ShareRecord {
        ShareRecord {
            vault_id: VaultId::from_bytes([7; 16]),
            epoch: 3,
            threshold: 2,
            n: 3,
            share: Share {
                index,
                value: Zeroizing::new(vec![index; 48]),
            },
        }
    }

    #[test]
    fn opens_once_and_serves_the_same_record_after() {
        let ring = ring("cache-test");
        let key = ring.identity().clone();
        let r = record(2);
        let sealed = seal(&r, vault::kem::hybrid::Suite::DEFAULT, key.public()).unwrap();
        let k = cache_key(key.public().fingerprint().as_bytes(), &sealed);
        assert!(lookup(&k).is_none());
        let a = open(&sealed, &ring).unwrap();
        assert!(lookup(&k).is_some(), "the first open fills the cache");
        let b = open(&sealed, &ring).unwrap();
        assert_eq!(a.encode(), r.encode());
        assert_eq!(b.encode(), r.encode());
        // Other bytes are not served from the cache: a flipped byte fails.
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(open(&bad, &ring).is_err());
        // Another key does not hit this key's entry.
        assert!(open(&sealed, &super::tests::ring("cache-other")).is_err());
    }

    #[test]
    fn remembered_seals_open_without_the_key_work() {
        let ring = ring("cache-remember");
        let key = ring.identity().clone();
        let r = record(3);
        let sealed = seal(&r, vault::kem::hybrid::Suite::DEFAULT, key.public()).unwrap();
        remember(&sealed, &ring, &r);
        let k = cache_key(key.public().fingerprint().as_bytes(), &sealed);
        assert_eq!(lookup(&k).unwrap().encode(), r.encode());
    }
}
