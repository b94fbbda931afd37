//! Packing a payload into a manifest body, and checking a payload against a
//! verified manifest.
//!
//! Both stream the payload with bounded memory: one chunk buffer for the
//! hashes, then for the metadata checks and the golden run one layer's
//! scales and spike trains and one block of weight rows at a time (the
//! network is feed-forward and a layer's neurons are independent, so the
//! golden check runs layer by layer and neuron by neuron over all
//! timesteps). The payload is read twice (hashes,
//! then tensors), so it must not change during a check: the validator runs
//! it on a file in its own store.

use super::lif::{self, LayerParams};
use super::manifest::{check_model_name, ct_eq, parse_version, ArtifactBody, FORMAT_CURRENT};
use super::quant::{self, MetaFile, QuantMeta};
use super::safetensors::{self, TensorInfo};
use super::{
    ArtifactError, VerifiedArtifact, MAX_CHUNKS, MAX_CHUNK_SIZE, MAX_TENSOR_BYTES, MIN_CHUNK_SIZE,
};
use crate::codec::FormatError;
use aws_lc_rs::digest::{Context, SHA256};
use std::io::{Read, Seek, SeekFrom};

/// Length, SHA-256 (if asked for) and chunk hashes of a streamed payload.
type Hashed = (u64, Option<[u8; 32]>, Vec<[u8; 32]>);

fn io(e: std::io::Error) -> ArtifactError {
    ArtifactError::Io(e.to_string())
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn fill<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, ArtifactError> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    Ok(n)
}

fn finish(ctx: Context) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let mut c = Context::new(&SHA256);
    c.update(b);
    finish(c)
}

fn stream_len<R: Seek>(r: &mut R) -> Result<u64, ArtifactError> {
    let len = r.seek(SeekFrom::End(0)).map_err(io)?;
    r.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok(len)
}

/// Hashes the payload chunk by chunk, and as a whole if `whole` (format 1's
/// payload digest: a second SHA-256 pass over every byte). With `expected`
/// chunk hashes, stops at the first chunk that differs.
fn hash_chunks<R: Read>(
    r: &mut R,
    chunk_size: u32,
    expected: Option<&[[u8; 32]]>,
    whole: bool,
) -> Result<Hashed, ArtifactError> {
    let mut total = whole.then(|| Context::new(&SHA256));
    let mut buf = vec![0u8; chunk_size as usize];
    let mut chunks = Vec::new();
    let mut len = 0u64;
    loop {
        let n = fill(r, &mut buf)?;
        if n == 0 {
            break;
        }
        let start = len;
        len += n as u64;
        if let Some(t) = &mut total {
            t.update(&buf[..n]);
        }
        let h = sha256(&buf[..n]);
        if let Some(exp) = expected {
            let index = chunks.len();
            if !exp.get(index).is_some_and(|e| ct_eq(e, &h)) {
                return Err(ArtifactError::Chunk {
                    index,
                    start,
                    end: len,
                });
            }
        } else if chunks.len() >= MAX_CHUNKS {
            return Err(FormatError::TooMany {
                field: "chunk list",
                items: "chunks",
                count: chunks.len() + 1,
                max: MAX_CHUNKS,
            }
            .into());
        }
        chunks.push(h);
        if n < buf.len() {
            break;
        }
    }
    Ok((len, total.map(finish), chunks))
}

fn read_tensor<R: Read + Seek>(
    r: &mut R,
    data_start: u64,
    t: &TensorInfo,
) -> Result<Vec<u8>, ArtifactError> {
    check_tensor_len(t)?;
    r.seek(SeekFrom::Start(data_start + t.begin)).map_err(io)?;
    let mut buf = vec![0u8; t.len() as usize];
    r.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

/// Bytes of packed weight rows read at a time (at least one row).
const ROW_BLOCK: usize = 64 << 10;

/// Checks a payload's tensors against `quant` (header vs metadata, every
/// scale and weight value) and, if `quant` has a golden check, runs the
/// integer LIF pass and returns the last layer's spike counts. Memory: one
/// layer's scales and spike trains, and one block of weight rows (64 KiB,
/// or one row if longer): each neuron runs over all timesteps from its own
/// row as the rows stream in.
pub fn golden_counts<R: Read + Seek>(
    quant: &QuantMeta,
    r: &mut R,
    len: u64,
) -> Result<Option<Vec<u32>>, ArtifactError> {
    r.seek(SeekFrom::Start(0)).map_err(io)?;
    let header = safetensors::read_header(r, len)?;
    quant.check_header(&header)?;
    let mut spikes = quant.golden.as_ref().map(|g| g.input.clone());
    let timesteps = quant
        .golden
        .as_ref()
        .map_or(0, |g| usize::from(g.timesteps));
    let mut raw = Vec::new();
    let mut row_weights = Vec::new();
    for l in &quant.layers {
        let info = |name: &str| {
            header.get(name).ok_or_else(|| quant::MetadataError {
                subject: format!("tensor {name:?}"),
                field: "name".into(),
                reason: "missing from the payload".into(),
            })
        };
        let scale_bytes = read_tensor(r, header.data_start(), info(&l.scale)?)?;
        let scales = quant::check_scales(l, &scale_bytes)?;
        let params = LayerParams::derive(l, &scales)?;
        let (inputs, outputs) = (l.inputs as usize, l.outputs as usize);
        let mut active = spikes
            .as_ref()
            .map(|s| lif::Inputs::new(s, inputs, timesteps));
        let mut out = vec![
            false;
            if active.is_some() {
                timesteps * outputs
            } else {
                0
            }
        ];
        let t = info(&l.weight)?;
        check_tensor_len(t)?;
        let row = quant::weight_row_bytes(l);
        if row.checked_mul(outputs) != Some(t.len() as usize) {
            return Err(quant::MetadataError {
                subject: format!("tensor {:?}", l.weight),
                field: "shape".into(),
                reason: "byte count".into(),
            }
            .into());
        }
        r.seek(SeekFrom::Start(header.data_start() + t.begin))
            .map_err(io)?;
        let per_block = (ROW_BLOCK / row.max(1)).max(1);
        let mut o = 0;
        while o < outputs {
            let n = per_block.min(outputs - o);
            raw.resize(n * row, 0);
            r.read_exact(&mut raw).map_err(io)?;
            row_weights.clear();
            quant::unpack_rows(l, o, &raw, &mut row_weights)?;
            if let Some(act) = &mut active {
                for k in 0..n {
                    let w = &row_weights[k * inputs..(k + 1) * inputs];
                    act.run_neuron(&params, o + k, w, &mut out);
                }
            }
            o += n;
        }
        if active.is_some() {
            spikes = Some(out);
        }
    }
    Ok(spikes.map(|s| lif::counts(&s, quant.outputs() as usize)))
}

fn check_tensor_len(t: &TensorInfo) -> Result<(), ArtifactError> {
    if t.len() > MAX_TENSOR_BYTES {
        return Err(quant::MetadataError {
            subject: format!("tensor {:?}", t.name),
            field: "shape".into(),
            reason: format!("{} bytes, over the {MAX_TENSOR_BYTES}-byte limit", t.len()),
        }
        .into());
    }
    Ok(())
}

/// [`golden_counts`], then refuses counts that differ from the expected ones.
pub fn check_tensors<R: Read + Seek>(
    quant: &QuantMeta,
    r: &mut R,
    len: u64,
) -> Result<(), ArtifactError> {
    let counts = golden_counts(quant, r, len)?;
    if let (Some(g), Some(counts)) = (&quant.golden, counts) {
        if let Some((output, (&expected, &found))) = g
            .expected
            .iter()
            .zip(&counts)
            .enumerate()
            .find(|(_, (e, f))| e != f)
        {
            return Err(ArtifactError::Golden {
                output,
                expected,
                found,
                counts,
            });
        }
    }
    Ok(())
}

/// Builds a manifest body (format [`FORMAT_CURRENT`]) from a safetensors
/// payload and `meta.toml` contents, refusing inconsistent metadata
/// (naming the tensor and field) and a golden check whose expected counts
/// are wrong.
pub fn pack<R: Read + Seek>(
    payload: R,
    meta: &MetaFile,
    chunk_size: u32,
    now_unix: u64,
) -> Result<ArtifactBody, ArtifactError> {
    pack_format(payload, meta, chunk_size, now_unix, FORMAT_CURRENT)
}

/// [`pack`] at a given format version (1 or 2): format 1 only to reproduce
/// the version-1 test vectors; no tool writes it.
pub fn pack_format<R: Read + Seek>(
    mut payload: R,
    meta: &MetaFile,
    chunk_size: u32,
    now_unix: u64,
    format_version: u16,
) -> Result<ArtifactBody, ArtifactError> {
    check_model_name(&meta.name)?;
    let version = parse_version(&meta.version)?;
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(FormatError::invalid(
            "chunk size",
            format!("{chunk_size} (allowed {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE})"),
        )
        .into());
    }
    let quant = meta.quant()?;
    let len = stream_len(&mut payload)?;
    check_tensors(&quant, &mut payload, len)?;
    payload.seek(SeekFrom::Start(0)).map_err(io)?;
    let v1 = format_version == super::manifest::FORMAT_V1;
    let (hashed, whole, chunks) = hash_chunks(&mut payload, chunk_size, None, v1)?;
    if hashed != len {
        return Err(ArtifactError::Io(format!(
            "payload changed while packing ({len} then {hashed} bytes)"
        )));
    }
    let mut body = ArtifactBody {
        format_version,
        name: meta.name.clone(),
        version,
        created_unix: meta.created.unwrap_or(now_unix),
        expires_unix: meta.expires,
        payload_len: len,
        payload_digest: [0; 32],
        chunk_size,
        chunks,
        quant,
    };
    body.payload_digest = body.expected_payload_digest(whole.unwrap_or_default());
    body.validate()?;
    Ok(body)
}

/// Checks a complete payload against a verified manifest: total length,
/// SHA-256, every chunk hash, the safetensors header against the
/// quantization metadata, every scale and weight value, and the golden
/// check if the manifest carries one. Memory is bounded by one chunk and
/// one layer, never the whole payload.
pub fn check_payload<R: Read + Seek>(
    artifact: &VerifiedArtifact,
    payload: R,
) -> Result<(), ArtifactError> {
    check_payload_body(artifact.body(), payload)
}

/// The whole-payload half of [`check_payload`]: its length and payload
/// digest, in one sequential pass. Run it with [`check_payload_tensors`]
/// (they may run in parallel, on two readers of the same file); together
/// they check what [`check_payload`] checks, except that a bad chunk is not
/// named under format 1.
///
/// Format 1: the SHA-256 of the whole payload. Format 2: every chunk's
/// hash (the payload digest follows from the chunk list, checked when the
/// manifest was decoded). A caller that already matched every chunk of the
/// payload against the manifest (a validator's download) needs this pass
/// only for format 1: see [`ArtifactBody::digest_covered_by_chunks`].
pub fn check_payload_digest<R: Read>(
    artifact: &VerifiedArtifact,
    mut payload: R,
) -> Result<(), ArtifactError> {
    let body = artifact.body();
    if body.digest_covered_by_chunks() {
        return check_chunks_in_order(body, payload);
    }
    let mut total = Context::new(&SHA256);
    let mut buf = vec![0u8; 256 << 10];
    let mut len = 0u64;
    loop {
        let n = fill(&mut payload, &mut buf)?;
        if n == 0 {
            break;
        }
        len += n as u64;
        if len > body.payload_len {
            break;
        }
        total.update(&buf[..n]);
    }
    check_len(body, len)?;
    let digest = finish(total);
    if !ct_eq(&digest, &body.payload_digest) {
        return Err(ArtifactError::Digest {
            what: "digest",
            expected: hex::encode(body.payload_digest),
            found: hex::encode(digest),
        });
    }
    Ok(())
}

/// The tensor half of [`check_payload`]: the safetensors header against
/// the quantization metadata, every scale and weight value, and the golden
/// check (see [`check_payload_digest`]).
pub fn check_payload_tensors<R: Read + Seek>(
    artifact: &VerifiedArtifact,
    mut payload: R,
) -> Result<(), ArtifactError> {
    let body = artifact.body();
    let len = stream_len(&mut payload)?;
    if len != body.payload_len {
        return Err(ArtifactError::Digest {
            what: "length",
            expected: body.payload_len.to_string(),
            found: len.to_string(),
        });
    }
    check_tensors(&body.quant, &mut payload, len)
}

/// [`check_payload`] against a body that is not (yet) signed or verified:
/// what `vault artifact sign` runs before signing a draft.
pub fn check_payload_body<R: Read + Seek>(
    body: &ArtifactBody,
    mut payload: R,
) -> Result<(), ArtifactError> {
    let len = stream_len(&mut payload)?;
    if len != body.payload_len {
        return Err(ArtifactError::Digest {
            what: "length",
            expected: body.payload_len.to_string(),
            found: len.to_string(),
        });
    }
    // Format 2: every chunk matched and the chunks tile exactly
    // `payload_len` bytes, so the digest of the (validated) chunk list is
    // the payload's: no whole-payload SHA-256.
    let whole = !body.digest_covered_by_chunks();
    let (hashed, digest, _) =
        hash_chunks(&mut payload, body.chunk_size, Some(&body.chunks), whole)?;
    check_len(body, hashed)?;
    if let Some(digest) = digest {
        if !ct_eq(&digest, &body.payload_digest) {
            return Err(ArtifactError::Digest {
                what: "digest",
                expected: hex::encode(body.payload_digest),
                found: hex::encode(digest),
            });
        }
    }
    check_tensors(&body.quant, &mut payload, len)
}

/// Format 2's whole-payload pass: each chunk's length and hash in order,
/// then nothing after the last chunk.
fn check_chunks_in_order<R: Read>(
    body: &ArtifactBody,
    mut payload: R,
) -> Result<(), ArtifactError> {
    let size = u64::from(body.chunk_size);
    let mut buf = vec![0u8; body.chunk_size as usize];
    for (index, expected) in body.chunks.iter().enumerate() {
        let start = index as u64 * size;
        let want = size.min(body.payload_len.saturating_sub(start)) as usize;
        let n = fill(&mut payload, &mut buf[..want])?;
        if n < want {
            return check_len(body, start + n as u64);
        }
        if !ct_eq(expected, &sha256(&buf[..n])) {
            return Err(ArtifactError::Chunk {
                index,
                start,
                end: start + n as u64,
            });
        }
    }
    let extra = fill(&mut payload, &mut buf[..1])?;
    check_len(body, body.payload_len + extra as u64)
}

/// Refuses a payload of `len` bytes that is not the manifest's length.
fn check_len(body: &ArtifactBody, len: u64) -> Result<(), ArtifactError> {
    if len != body.payload_len {
        return Err(ArtifactError::Digest {
            what: "length",
            expected: body.payload_len.to_string(),
            found: len.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::quant::unpack_weights;
    use crate::artifact::safetensors::parse_file;
    use crate::artifact::testnet;
    use std::io::Cursor;

    /// The pass as first written: whole layer in memory, timestep by
    /// timestep, every neuron per step (`lif`'s test reference).
    fn timestep_major(net: &testnet::Net) -> Vec<u32> {
        let g = net.quant.golden.as_ref().unwrap();
        let h = parse_file(&net.safetensors).unwrap();
        let get = |n: &str| {
            let i = h.get(n).unwrap();
            let s = (h.data_start() + i.begin) as usize;
            &net.safetensors[s..s + i.len() as usize]
        };
        let layers: Vec<_> = net
            .quant
            .layers
            .iter()
            .map(|l| {
                let scales = quant::check_scales(l, get(&l.scale)).unwrap();
                let p = LayerParams::derive(l, &scales).unwrap();
                (p, unpack_weights(l, get(&l.weight)).unwrap())
            })
            .collect();
        lif::tests::reference(&layers, usize::from(g.timesteps), &g.input)
    }

    #[test]
    fn streamed_rows_match_the_whole_layer_pass() {
        // 1 MiB: 1024-wide layers, so a layer spans 16 row blocks.
        for net in [
            testnet::small(8),
            testnet::small(4),
            testnet::large(1 << 20),
        ] {
            let len = net.safetensors.len() as u64;
            let counts = golden_counts(&net.quant, &mut Cursor::new(&net.safetensors), len)
                .unwrap()
                .unwrap();
            assert_eq!(counts, timestep_major(&net));
            assert_eq!(counts, net.quant.golden.as_ref().unwrap().expected);
        }
    }

    #[test]
    fn a_bad_weight_in_a_later_block_is_named_by_its_row() {
        let net = testnet::large(1 << 20);
        let h = parse_file(&net.safetensors).unwrap();
        let l = &net.quant.layers[0];
        let t = h.get(&l.weight).unwrap();
        let (row, col) = (700usize, 5usize);
        let at = (h.data_start() + t.begin) as usize + row * l.inputs as usize + col;
        let mut bytes = net.safetensors.clone();
        bytes[at] = 0x80; // -128: outside the symmetric int8 range
        let len = bytes.len() as u64;
        let err = golden_counts(&net.quant, &mut Cursor::new(&bytes), len).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("weight [{row}, {col}] = -128")),
            "{err}"
        );
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;
    use crate::artifact::{testnet, SignedArtifact, TrustPolicy};
    use crate::identity::SecretIdentity;
    use std::io::Cursor;
    use std::path::Path;

    #[test]
    fn digest_and_tensor_halves_check_what_check_payload_checks() {
        let key = SecretIdentity::generate("publisher").unwrap();
        let fp = key.public().fingerprint().to_hex();
        let policy = TrustPolicy::parse(
            &format!("version = 1\n[[publisher]]\nname = \"p\"\nfingerprint = \"{fp}\"\nmodels = [\"snn-*\"]\n"),
            Path::new("."),
        )
        .unwrap();
        // A multi-chunk payload, so that format 2's pass meets a short
        // last chunk.
        let net = testnet::large(200_000);
        for format in [1, 2] {
            let body =
                pack_format(Cursor::new(&net.safetensors), &net.meta(), 65536, 1, format).unwrap();
            let v = SignedArtifact::sign(&body, &key)
                .unwrap()
                .verify(&policy, 2)
                .unwrap();
            let good = &net.safetensors;
            check_payload_digest(&v, Cursor::new(good)).unwrap();
            check_payload_tensors(&v, Cursor::new(good)).unwrap();
            check_payload(&v, Cursor::new(good)).unwrap();
            // A flipped byte in the last tensor's data: the digest half
            // names it (format 1: the whole digest; 2: the last chunk).
            let mut bad = good.clone();
            let at = bad.len() - 1;
            bad[at] ^= 1;
            let e = check_payload_digest(&v, Cursor::new(&bad)).unwrap_err();
            let want = if format == 1 { "digest" } else { "chunk" };
            assert_eq!(e.reason(), want, "format {format}: {e}");
            // Short or long: a length error from either half.
            for wrong in [
                &good[..good.len() - 1],
                &[good.as_slice(), &[0]].concat()[..],
            ] {
                let e = check_payload_digest(&v, Cursor::new(wrong)).unwrap_err();
                assert!(e.to_string().contains("length"), "format {format}: {e}");
                let e = check_payload_tensors(&v, Cursor::new(wrong)).unwrap_err();
                assert!(e.to_string().contains("length"), "format {format}: {e}");
            }
        }
    }
}
