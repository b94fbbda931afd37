//! A vault's public chain: the operator-signed anchor manifest and the
//! certified steps after it, as one `PQVC` message (validators serve it on
//! `GET /v1/vaults/{vault}/proof`) or as the files `vault recover --chain`
//! reads (`anchor.pqvm`, `step-K.pqvm` and `step-K.pqve`, and the latest
//! manifest as `manifest.pqvm`). Format: docs/formats.md, "`PQVC` proof
//! chain". Nothing here is secret.

use crate::codec::{FormatError, Kind, Reader, Writer};
use crate::fsio::{self, FsError, Mode};
use std::path::Path;

/// Wire kind of a proof chain (anchor and certified steps).
pub const PROOF_KIND: Kind = Kind {
    magic: *b"PQVC",
    name: "pqvault proof chain",
    version: 1,
};

/// Certified steps after an anchor: (manifest bytes, certificate bytes).
pub type Steps = Vec<(Vec<u8>, Vec<u8>)>;

/// Encodes an anchor and its certified steps.
pub fn encode_proof(anchor: &[u8], steps: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut w = Writer::new(PROOF_KIND);
    w.var_bytes(anchor)
        .u16(u16::try_from(steps.len()).unwrap_or(u16::MAX));
    for (m, c) in steps.iter().take(usize::from(u16::MAX)) {
        w.var_bytes(m).var_bytes(c);
    }
    w.finish()
}

/// Decodes a proof chain (untrusted bytes; verify it with
/// [`crate::epoch::verify_chain`]).
pub fn decode_proof(bytes: &[u8]) -> Result<(Vec<u8>, Steps), FormatError> {
    let mut r = Reader::open(bytes, PROOF_KIND)?;
    let anchor = r.var_bytes("anchor manifest", 4 << 20)?.to_vec();
    let count = r.u16("step count")?;
    let mut steps = Vec::with_capacity(usize::from(count).min(1024));
    for _ in 0..count {
        let m = r.var_bytes("step manifest", 4 << 20)?.to_vec();
        let c = r.var_bytes("step certificate", 4 << 20)?.to_vec();
        steps.push((m, c));
    }
    r.finish()?;
    Ok((anchor, steps))
}

/// Writes a chain as the files `vault recover --chain DIR` reads, into
/// `dir` (created private if missing): `anchor.pqvm`, `step-K.pqvm` and
/// `step-K.pqve` for each step from `first_step` on, and the latest
/// manifest as `manifest.pqvm`. Refuses to overwrite an existing file.
pub fn write_dir(
    dir: &Path,
    anchor: &[u8],
    first_step: u64,
    steps: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), FsError> {
    fsio::create_private_dir(dir)?;
    fsio::write_atomic(&dir.join("anchor.pqvm"), anchor, Mode::Public, false)?;
    for (k, (m, c)) in (first_step..).zip(steps) {
        fsio::write_atomic(&dir.join(format!("step-{k}.pqvm")), m, Mode::Public, false)?;
        fsio::write_atomic(&dir.join(format!("step-{k}.pqve")), c, Mode::Public, false)?;
    }
    let latest = steps.last().map_or(anchor, |(m, _)| m);
    fsio::write_atomic(&dir.join("manifest.pqvm"), latest, Mode::Public, false)
}
