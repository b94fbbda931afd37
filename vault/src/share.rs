//! Share records: one Shamir share with the vault context it belongs to.
//!
//! A share record is the plaintext inside a sealed shard, and the content of
//! an unsealed share file (`vault unseal`). It carries vault id, epoch,
//! index, threshold and n so a share can never be combined with shares of
//! another vault or epoch without that being noticed.

use crate::codec::{FormatError, Kind, Reader, Writer};
use crate::manifest::VaultId;
use crate::shamir::Share;
use aws_lc_rs::digest::{Context, SHA256};
use zeroize::Zeroizing;

/// File kind of an unsealed share (also the sealed payload's plaintext).
pub const SHARE_KIND: Kind = Kind {
    magic: *b"PQVU",
    name: "pqvault unsealed share",
    version: 1,
};

/// Largest secret a vault holds: 1 MiB.
pub const MAX_SECRET_LEN: usize = 1 << 20;
/// Bytes of blinding appended to the secret before splitting (see manifest docs).
pub const BLIND_LEN: usize = 32;
/// Largest share value: secret plus blinding.
pub const MAX_SHARE_LEN: usize = MAX_SECRET_LEN + BLIND_LEN;

/// A share and its context.
pub struct ShareRecord {
    /// Vault the share belongs to.
    pub vault_id: VaultId,
    /// Epoch of the sharing polynomial.
    pub epoch: u64,
    /// Threshold of that epoch.
    pub threshold: u8,
    /// Number of shares in that epoch.
    pub n: u8,
    /// The share itself.
    pub share: Share,
}

/// Range checks shared by share records and sealed-shard headers: epochs
/// start at 1, `2 <= t <= n`, and the index is a share point `1..=n`.
pub(crate) fn check_params(epoch: u64, t: u8, n: u8, index: u8) -> Result<(), FormatError> {
    if epoch == 0 {
        return Err(FormatError::invalid("epoch", "epochs start at 1"));
    }
    if t < 2 || t > n {
        return Err(FormatError::invalid(
            "threshold",
            format!("t = {t}, n = {n}: need 2 <= t <= n"),
        ));
    }
    if index == 0 || index > n {
        return Err(FormatError::invalid(
            "share index",
            format!("{index} is not a share point 1..={n} (0 is the secret)"),
        ));
    }
    Ok(())
}

impl ShareRecord {
    /// Canonical encoding, zeroized on drop.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(SHARE_KIND);
        w.bytes(self.vault_id.as_bytes())
            .u64(self.epoch)
            .u8(self.threshold)
            .u8(self.n)
            .u8(self.share.index)
            .var_bytes(&self.share.value);
        Zeroizing::new(w.finish())
    }

    /// Decodes a share record (from a decrypted payload or a share file).
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::open(bytes, SHARE_KIND)?;
        let vault_id = VaultId::from_bytes(r.array("vault id")?);
        let epoch = r.u64("epoch")?;
        let threshold = r.u8("threshold")?;
        let n = r.u8("share count")?;
        let index = r.u8("share index")?;
        let value = Zeroizing::new(r.var_bytes("share value", MAX_SHARE_LEN)?.to_vec());
        r.finish()?;
        check_params(epoch, threshold, n, index)?;
        if value.len() <= BLIND_LEN {
            return Err(FormatError::invalid(
                "share value",
                "shorter than the blinding",
            ));
        }
        Ok(ShareRecord {
            vault_id,
            epoch,
            threshold,
            n,
            share: Share { index, value },
        })
    }

    /// The hiding commitment the manifest records for this share.
    pub fn commitment(&self) -> [u8; 32] {
        share_commitment(
            &self.vault_id,
            self.epoch,
            self.share.index,
            &self.share.value,
        )
    }
}

impl std::fmt::Debug for ShareRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareRecord")
            .field("vault_id", &self.vault_id)
            .field("epoch", &self.epoch)
            .field("index", &self.share.index)
            .finish_non_exhaustive()
    }
}

/// Commitment to one share: SHA-256 over a label, the context and the value.
///
/// Hiding because every share value includes a share of 32 random blinding
/// bytes, so it has at least 256 bits of entropy to anyone holding fewer
/// than t shares.
pub fn share_commitment(vault_id: &VaultId, epoch: u64, index: u8, value: &[u8]) -> [u8; 32] {
    let mut h = Context::new(&SHA256);
    h.update(b"pqvault/v1 share-commitment");
    h.update(vault_id.as_bytes());
    h.update(&epoch.to_be_bytes());
    h.update(&[index]);
    h.update(&(value.len() as u64).to_be_bytes());
    h.update(value);
    to_array(h.finish().as_ref())
}

/// Commitment to the secret: SHA-256 over a label, the vault id, the secret
/// and its blinding. The blinding is shared with the secret, so the
/// commitment hides even a low-entropy secret from anyone below threshold.
pub fn secret_commitment(vault_id: &VaultId, secret: &[u8], blind: &[u8]) -> [u8; 32] {
    let mut h = Context::new(&SHA256);
    h.update(b"pqvault/v1 secret-commitment");
    h.update(vault_id.as_bytes());
    h.update(&(secret.len() as u64).to_be_bytes());
    h.update(secret);
    h.update(blind);
    to_array(h.finish().as_ref())
}

fn to_array(d: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(d);
    out
}
