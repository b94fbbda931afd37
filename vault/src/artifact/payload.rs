//! Packing a payload into a manifest body, and checking a payload against a
//! verified manifest.
//!
//! Both stream the payload with bounded memory: one chunk buffer for the
//! hashes, then one layer's tensors at a time for the metadata checks and
//! the golden run (the network is feed-forward, so the golden check runs
//! layer by layer over all timesteps). The payload is read twice (hashes,
//! then tensors), so it must not change during a check: the validator runs
//! it on a file in its own store.

use super::lif::{self, LayerParams};
use super::manifest::{check_model_name, ct_eq, parse_version, ArtifactBody};
use super::quant::{self, MetaFile, QuantMeta};
use super::safetensors::{self, TensorInfo};
use super::{
    ArtifactError, VerifiedArtifact, MAX_CHUNKS, MAX_CHUNK_SIZE, MAX_TENSOR_BYTES, MIN_CHUNK_SIZE,
};
use crate::codec::FormatError;
use aws_lc_rs::digest::{Context, SHA256};
use std::io::{Read, Seek, SeekFrom};

/// Length, SHA-256 and chunk hashes of a streamed payload.
type Hashed = (u64, [u8; 32], Vec<[u8; 32]>);

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

/// Hashes the payload chunk by chunk. With `expected` chunk hashes, stops
/// at the first chunk that differs.
fn hash_chunks<R: Read>(
    r: &mut R,
    chunk_size: u32,
    expected: Option<&[[u8; 32]]>,
) -> Result<Hashed, ArtifactError> {
    let mut total = Context::new(&SHA256);
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
        total.update(&buf[..n]);
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
            return Err(FormatError::TooLong {
                field: "chunk list",
                len: chunks.len() + 1,
                max: MAX_CHUNKS,
            }
            .into());
        }
        chunks.push(h);
        if n < buf.len() {
            break;
        }
    }
    Ok((len, finish(total), chunks))
}

fn read_tensor<R: Read + Seek>(
    r: &mut R,
    data_start: u64,
    t: &TensorInfo,
) -> Result<Vec<u8>, ArtifactError> {
    if t.len() > MAX_TENSOR_BYTES {
        return Err(quant::MetadataError {
            subject: format!("tensor {:?}", t.name),
            field: "shape".into(),
            reason: format!("{} bytes, over the {MAX_TENSOR_BYTES}-byte limit", t.len()),
        }
        .into());
    }
    r.seek(SeekFrom::Start(data_start + t.begin)).map_err(io)?;
    let mut buf = vec![0u8; t.len() as usize];
    r.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

/// Checks a payload's tensors against `quant` (header vs metadata, every
/// scale and weight value) and, if `quant` has a golden check, runs the
/// integer LIF pass and returns the last layer's spike counts. Memory: one
/// layer's tensors and spike trains at a time.
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
        let raw = read_tensor(r, header.data_start(), info(&l.weight)?)?;
        let weights = quant::unpack_weights(l, &raw)?;
        drop(raw);
        if let Some(s) = spikes.as_mut() {
            *s = lif::run_layer(&params, &weights, l.inputs as usize, timesteps, s);
        }
    }
    Ok(spikes.map(|s| lif::counts(&s, quant.outputs() as usize)))
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

/// Builds a manifest body from a safetensors payload and `meta.toml`
/// contents, refusing inconsistent metadata (naming the tensor and field)
/// and a golden check whose expected counts are wrong.
pub fn pack<R: Read + Seek>(
    mut payload: R,
    meta: &MetaFile,
    chunk_size: u32,
    now_unix: u64,
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
    let (hashed, payload_digest, chunks) = hash_chunks(&mut payload, chunk_size, None)?;
    if hashed != len {
        return Err(ArtifactError::Io(format!(
            "payload changed while packing ({len} then {hashed} bytes)"
        )));
    }
    let body = ArtifactBody {
        name: meta.name.clone(),
        version,
        created_unix: meta.created.unwrap_or(now_unix),
        expires_unix: meta.expires,
        payload_len: len,
        payload_digest,
        chunk_size,
        chunks,
        quant,
    };
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
    let (hashed, digest, _) = hash_chunks(&mut payload, body.chunk_size, Some(&body.chunks))?;
    if hashed != body.payload_len {
        return Err(ArtifactError::Digest {
            what: "length",
            expected: body.payload_len.to_string(),
            found: hashed.to_string(),
        });
    }
    if !ct_eq(&digest, &body.payload_digest) {
        return Err(ArtifactError::Digest {
            what: "digest",
            expected: hex::encode(body.payload_digest),
            found: hex::encode(digest),
        });
    }
    check_tensors(&body.quant, &mut payload, len)
}
