//! The artifact manifest: the unsigned draft (`PQVD`) written by `pack`, and
//! the signed manifest (`PQVA`) that names an artifact everywhere.
//!
//! Both share one body encoding (docs/artifacts.md has the byte layout). A
//! signed manifest appends the publisher's public identity and a hybrid
//! Ed25519 + ML-DSA-65 signature over everything before the signature,
//! under the domain label [`ARTIFACT_SIG_DOMAIN`]. Decoding checks structure
//! and invariants only; [`SignedArtifact::verify`] checks the signature and
//! the trust policy and yields a [`VerifiedArtifact`].

use super::policy::TrustPolicy;
use super::quant::{
    ActivationScheme, Golden, LayerMeta, QuantMeta, Reset, WeightScheme, MAX_GOLDEN_BITS,
    MAX_LAYERS, MAX_LAYER_NAME, MAX_TOTAL_CHANNELS,
};
use super::safetensors::MAX_TENSOR_NAME;
use super::{ArtifactError, MAX_CHUNKS, MAX_CHUNK_SIZE, MAX_MANIFEST_LEN, MIN_CHUNK_SIZE};
use crate::codec::{FormatError, Kind, Reader, Writer};
use crate::identity::{sha256, PublicIdentity, SecretIdentity};
use crate::sign::HybridSignature;
use subtle::ConstantTimeEq;

/// Format version 1: the payload digest is the SHA-256 of the whole
/// payload (one more sequential pass over it to check).
pub const FORMAT_V1: u16 = 1;
/// Format version 2: the payload digest is [`chunk_list_digest`], the
/// SHA-256 of the signed chunk list, so a payload whose every chunk matched
/// its hash matches the digest without a second pass (D47).
pub const FORMAT_V2: u16 = 2;
/// The format version `pack` writes.
pub const FORMAT_CURRENT: u16 = FORMAT_V2;

/// File kind of a signed artifact manifest (`artifact.pqva`), as written.
pub const ARTIFACT_KIND: Kind = Kind {
    magic: *b"PQVA",
    name: "pqvault artifact manifest",
    version: FORMAT_CURRENT,
};

/// File kind of an unsigned artifact draft (`artifact.pqvd`), as written.
pub const DRAFT_KIND: Kind = Kind {
    magic: *b"PQVD",
    name: "pqvault artifact draft",
    version: FORMAT_CURRENT,
};

/// `kind` at format version `version`.
const fn at_version(kind: Kind, version: u16) -> Kind {
    Kind {
        magic: kind.magic,
        name: kind.name,
        version,
    }
}

/// Every readable version of `kind`, oldest first.
const fn readable(kind: Kind) -> [Kind; 2] {
    [at_version(kind, FORMAT_V1), at_version(kind, FORMAT_V2)]
}

/// Domain label of [`chunk_list_digest`].
pub const CHUNK_LIST_LABEL: &[u8] = b"pqvault artifact chunk list v2\0";

/// The payload digest of a format-2 manifest: SHA-256 of
/// [`CHUNK_LIST_LABEL`] ‖ `u64` payload length ‖ `u32` chunk size ‖ `u32`
/// chunk count ‖ the chunk hashes in order (big-endian integers). Chunk
/// `i` covers bytes `i · chunk_size ..` up to the next chunk or the payload
/// length, so the chunks tile the payload exactly and a payload whose every
/// chunk matched its hash has this digest.
pub fn chunk_list_digest(payload_len: u64, chunk_size: u32, chunks: &[[u8; 32]]) -> [u8; 32] {
    let mut m = Vec::with_capacity(CHUNK_LIST_LABEL.len() + 16 + chunks.len() * 32);
    m.extend_from_slice(CHUNK_LIST_LABEL);
    m.extend_from_slice(&payload_len.to_be_bytes());
    m.extend_from_slice(&chunk_size.to_be_bytes());
    m.extend_from_slice(&(chunks.len() as u32).to_be_bytes());
    for c in chunks {
        m.extend_from_slice(c);
    }
    sha256(&m)
}

/// Signature domain of artifact manifests.
pub const ARTIFACT_SIG_DOMAIN: &str = "artifact";

/// Longest model name.
pub const MAX_MODEL_NAME: usize = 128;
/// Longest version string.
pub const MAX_VERSION_LEN: usize = 64;

const WEIGHT_SCHEME_PER_CHANNEL_SYMMETRIC: u8 = 1;
const ACTIVATION_SCHEME_PER_TENSOR_SYMMETRIC: u8 = 1;
const RESET_SUBTRACT: u8 = 1;
const RESET_ZERO: u8 = 2;

/// Constant-time equality of two 32-byte digests.
pub fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// Checks a model name: 1-128 bytes of `a-z 0-9 . _ - /`, starting with a
/// letter or digit.
pub fn check_model_name(name: &str) -> Result<(), FormatError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_MODEL_NAME
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(FormatError::invalid(
            "model name",
            format!("{name:?}: use 1-{MAX_MODEL_NAME} characters from a-z 0-9 . _ - /, starting with a letter or digit"),
        ))
    }
}

/// Parses a version: semantic versioning 2.0, no build metadata, canonical.
pub fn parse_version(s: &str) -> Result<semver::Version, FormatError> {
    let v = semver::Version::parse(s)
        .map_err(|e| FormatError::invalid("version", format!("{s:?}: {e}")))?;
    if !v.build.is_empty() {
        return Err(FormatError::invalid(
            "version",
            format!("{s:?}: build metadata is not allowed (it does not order versions)"),
        ));
    }
    if v.to_string() != s {
        return Err(FormatError::invalid(
            "version",
            format!("{s:?} is not canonical"),
        ));
    }
    Ok(v)
}

/// The content of a manifest: what a publisher signs.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactBody {
    /// Format version ([`FORMAT_V1`] or [`FORMAT_V2`]): how
    /// `payload_digest` is defined.
    pub format_version: u16,
    /// Model name.
    pub name: String,
    /// Semantic version (no build metadata).
    pub version: semver::Version,
    /// Creation time, Unix seconds.
    pub created_unix: u64,
    /// Expiry, Unix seconds, if any.
    pub expires_unix: Option<u64>,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// Format 1: SHA-256 of the payload. Format 2: [`chunk_list_digest`]
    /// of the fields below.
    pub payload_digest: [u8; 32],
    /// Chunk size in bytes.
    pub chunk_size: u32,
    /// SHA-256 of each chunk (the last one may be short).
    pub chunks: Vec<[u8; 32]>,
    /// Quantization metadata.
    pub quant: QuantMeta,
}

fn f32_bits(w: &mut Writer, v: f32) {
    w.u32(v.to_bits());
}

impl ArtifactBody {
    /// Whether `payload_digest` is a digest of the chunk list (format 2):
    /// then a payload whose every chunk matched its signed hash, chunks
    /// covering exactly `payload_len` bytes, matches it, with no pass over
    /// the whole payload.
    pub fn digest_covered_by_chunks(&self) -> bool {
        self.format_version >= FORMAT_V2
    }

    /// The payload digest a body with these chunks has at its format
    /// version: [`chunk_list_digest`] for format 2, `whole_payload_sha256`
    /// (which the caller computed) for format 1.
    pub fn expected_payload_digest(&self, whole_payload_sha256: [u8; 32]) -> [u8; 32] {
        if self.digest_covered_by_chunks() {
            chunk_list_digest(self.payload_len, self.chunk_size, &self.chunks)
        } else {
            whole_payload_sha256
        }
    }

    /// Checks every invariant of a body.
    pub fn validate(&self) -> Result<(), ArtifactError> {
        if !(FORMAT_V1..=FORMAT_V2).contains(&self.format_version) {
            return Err(FormatError::UnsupportedVersion {
                kind: ARTIFACT_KIND.name,
                found: self.format_version,
                supported: FORMAT_CURRENT,
            }
            .into());
        }
        check_model_name(&self.name)?;
        parse_version(&self.version.to_string())?;
        if let Some(e) = self.expires_unix {
            if e <= self.created_unix {
                return Err(FormatError::invalid(
                    "expiry",
                    format!("{e} is not after the creation time {}", self.created_unix),
                )
                .into());
            }
        }
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return Err(FormatError::invalid(
                "chunk size",
                format!(
                    "{} (allowed {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE})",
                    self.chunk_size
                ),
            )
            .into());
        }
        if self.payload_len == 0 {
            return Err(FormatError::invalid("payload length", "empty payload").into());
        }
        let want = self.payload_len.div_ceil(u64::from(self.chunk_size));
        if want > MAX_CHUNKS as u64 || self.chunks.len() as u64 != want {
            return Err(FormatError::invalid(
                "chunk list",
                format!(
                    "{} chunks for {} bytes in {}-byte chunks (need {want}, at most {MAX_CHUNKS})",
                    self.chunks.len(),
                    self.payload_len,
                    self.chunk_size
                ),
            )
            .into());
        }
        if self.digest_covered_by_chunks() {
            // A publisher's inconsistency: refused here, so that a verified
            // format-2 manifest's digest always follows from its chunks.
            let want = chunk_list_digest(self.payload_len, self.chunk_size, &self.chunks);
            if !ct_eq(&want, &self.payload_digest) {
                return Err(FormatError::invalid(
                    "payload digest",
                    format!(
                        "{} does not match the chunk list (format 2: the digest of the chunk list is {})",
                        hex::encode(self.payload_digest),
                        hex::encode(want)
                    ),
                )
                .into());
            }
        }
        self.quant.validate()?;
        Ok(())
    }

    fn write(&self, w: &mut Writer) {
        w.var_bytes(self.name.as_bytes())
            .var_bytes(self.version.to_string().as_bytes())
            .u64(self.created_unix)
            .u64(self.expires_unix.unwrap_or(0))
            .u64(self.payload_len)
            .bytes(&self.payload_digest)
            .u32(self.chunk_size)
            .u32(self.chunks.len() as u32);
        for c in &self.chunks {
            w.bytes(c);
        }
        w.u16(self.quant.layers.len() as u16);
        for l in &self.quant.layers {
            w.var_bytes(l.name.as_bytes())
                .var_bytes(l.weight.as_bytes())
                .var_bytes(l.scale.as_bytes())
                .u8(l.bits)
                .u8(match l.weight_scheme {
                    WeightScheme::PerChannelSymmetric => WEIGHT_SCHEME_PER_CHANNEL_SYMMETRIC,
                })
                .u32(l.weight_zero_point as u32)
                .u32(l.inputs)
                .u32(l.outputs);
            for &c in &l.clip {
                f32_bits(w, c);
            }
            w.u8(match l.activation_scheme {
                ActivationScheme::PerTensorSymmetric => ACTIVATION_SCHEME_PER_TENSOR_SYMMETRIC,
            });
            f32_bits(w, l.activation_scale);
            w.u32(l.activation_zero_point as u32);
            f32_bits(w, l.beta);
            f32_bits(w, l.threshold);
            w.u8(match l.reset {
                Reset::Subtract => RESET_SUBTRACT,
                Reset::Zero => RESET_ZERO,
            });
        }
        match &self.quant.golden {
            None => {
                w.u8(0);
            }
            Some(g) => {
                let mut bits = vec![0u8; g.input.len().div_ceil(8)];
                for (k, &s) in g.input.iter().enumerate() {
                    if s {
                        bits[k / 8] |= 1 << (k % 8);
                    }
                }
                w.u8(1).u16(g.timesteps).var_bytes(&bits);
                for &c in &g.expected {
                    w.u32(c);
                }
            }
        }
    }

    fn read(r: &mut Reader<'_>, format_version: u16) -> Result<Self, ArtifactError> {
        let name = utf8(r.var_bytes("model name", MAX_MODEL_NAME)?, "model name")?;
        let version = parse_version(&utf8(r.var_bytes("version", MAX_VERSION_LEN)?, "version")?)?;
        let created_unix = r.u64("created time")?;
        let expires_unix = Some(r.u64("expiry time")?).filter(|&e| e != 0);
        let payload_len = r.u64("payload length")?;
        let payload_digest = r.array("payload digest")?;
        let chunk_size = r.u32("chunk size")?;
        let count = r.u32("chunk count")? as usize;
        if count > MAX_CHUNKS {
            return Err(FormatError::TooMany {
                field: "chunk list",
                items: "chunks",
                count,
                max: MAX_CHUNKS,
            }
            .into());
        }
        let raw = r.take(count * 32, "chunk hashes")?;
        let chunks = raw
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        let layer_count = usize::from(r.u16("layer count")?);
        if layer_count > MAX_LAYERS {
            return Err(FormatError::TooMany {
                field: "layer list",
                items: "layers",
                count: layer_count,
                max: MAX_LAYERS,
            }
            .into());
        }
        let mut layers = Vec::with_capacity(layer_count);
        let mut channels = 0usize;
        for _ in 0..layer_count {
            let name = utf8(r.var_bytes("layer name", MAX_LAYER_NAME)?, "layer name")?;
            let weight = utf8(
                r.var_bytes("weight tensor name", MAX_TENSOR_NAME)?,
                "weight tensor name",
            )?;
            let scale = utf8(
                r.var_bytes("scale tensor name", MAX_TENSOR_NAME)?,
                "scale tensor name",
            )?;
            let bits = r.u8("weight bits")?;
            let weight_scheme = match r.u8("weight scheme")? {
                WEIGHT_SCHEME_PER_CHANNEL_SYMMETRIC => WeightScheme::PerChannelSymmetric,
                other => {
                    return Err(FormatError::invalid(
                        "weight scheme",
                        format!("unknown id {other}"),
                    )
                    .into())
                }
            };
            let weight_zero_point = r.u32("weight zero point")? as i32;
            let inputs = r.u32("layer inputs")?;
            let outputs = r.u32("layer outputs")?;
            channels = channels.saturating_add(outputs as usize);
            if channels > MAX_TOTAL_CHANNELS {
                return Err(FormatError::TooMany {
                    field: "clipping ranges",
                    items: "channels",
                    count: channels,
                    max: MAX_TOTAL_CHANNELS,
                }
                .into());
            }
            let clip = r
                .take(outputs as usize * 4, "clipping ranges")?
                .chunks_exact(4)
                .map(|c| f32::from_bits(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            let activation_scheme = match r.u8("activation scheme")? {
                ACTIVATION_SCHEME_PER_TENSOR_SYMMETRIC => ActivationScheme::PerTensorSymmetric,
                other => {
                    return Err(FormatError::invalid(
                        "activation scheme",
                        format!("unknown id {other}"),
                    )
                    .into())
                }
            };
            let activation_scale = f32::from_bits(r.u32("activation scale")?);
            let activation_zero_point = r.u32("activation zero point")? as i32;
            let beta = f32::from_bits(r.u32("beta")?);
            let threshold = f32::from_bits(r.u32("threshold")?);
            let reset = match r.u8("reset")? {
                RESET_SUBTRACT => Reset::Subtract,
                RESET_ZERO => Reset::Zero,
                other => {
                    return Err(FormatError::invalid("reset", format!("unknown id {other}")).into())
                }
            };
            layers.push(LayerMeta {
                name,
                weight,
                scale,
                bits,
                inputs,
                outputs,
                weight_scheme,
                weight_zero_point,
                clip,
                activation_scheme,
                activation_scale,
                activation_zero_point,
                beta,
                threshold,
                reset,
            });
        }
        let golden = match r.u8("golden flag")? {
            0 => None,
            1 => {
                let timesteps = r.u16("golden timesteps")?;
                let bits = r.var_bytes("golden input", MAX_GOLDEN_BITS / 8)?;
                let inputs = layers.first().map_or(0, |l| l.inputs as usize);
                let n = usize::from(timesteps) * inputs;
                if bits.len() != n.div_ceil(8) {
                    return Err(FormatError::invalid(
                        "golden input",
                        format!(
                            "{} bytes for {timesteps} timesteps x {inputs} inputs",
                            bits.len()
                        ),
                    )
                    .into());
                }
                let input: Vec<bool> = (0..n).map(|k| bits[k / 8] >> (k % 8) & 1 == 1).collect();
                if n % 8 != 0 && bits[n / 8] >> (n % 8) != 0 {
                    return Err(
                        FormatError::invalid("golden input", "padding bits are not 0").into(),
                    );
                }
                let outputs = layers.last().map_or(0, |l| l.outputs as usize);
                let expected = r
                    .take(outputs * 4, "golden expected counts")?
                    .chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Some(Golden {
                    timesteps,
                    input,
                    expected,
                })
            }
            other => {
                return Err(FormatError::invalid(
                    "golden flag",
                    format!("{other} (must be 0 or 1)"),
                )
                .into())
            }
        };
        let body = ArtifactBody {
            format_version,
            name,
            version,
            created_unix,
            expires_unix,
            payload_len,
            payload_digest,
            chunk_size,
            chunks,
            quant: QuantMeta { layers, golden },
        };
        body.validate()?;
        Ok(body)
    }

    /// Encodes the body as an unsigned draft (`PQVD`).
    pub fn encode_draft(&self) -> Result<Vec<u8>, ArtifactError> {
        self.validate()?;
        let mut w = Writer::new(at_version(DRAFT_KIND, self.format_version));
        self.write(&mut w);
        Ok(w.finish())
    }

    /// Decodes an unsigned draft.
    pub fn decode_draft(bytes: &[u8]) -> Result<Self, ArtifactError> {
        check_len(bytes)?;
        let (mut r, format_version) = Reader::open_any(bytes, &readable(DRAFT_KIND))?;
        let body = Self::read(&mut r, format_version)?;
        r.finish()?;
        Ok(body)
    }
}

fn utf8(b: &[u8], field: &'static str) -> Result<String, FormatError> {
    String::from_utf8(b.to_vec()).map_err(|_| FormatError::invalid(field, "not UTF-8"))
}

fn check_len(bytes: &[u8]) -> Result<(), FormatError> {
    if bytes.len() > MAX_MANIFEST_LEN {
        return Err(FormatError::TooLong {
            field: "artifact manifest",
            len: bytes.len(),
            max: MAX_MANIFEST_LEN,
        });
    }
    Ok(())
}

/// A decoded signed manifest whose signature has not been checked yet.
#[derive(Debug, Clone)]
pub struct SignedArtifact {
    body: ArtifactBody,
    publisher: PublicIdentity,
    signature: HybridSignature,
    encoded: Vec<u8>,
    signed_len: usize,
    digest: [u8; 32],
}

impl SignedArtifact {
    /// Signs `body` as `publisher`.
    pub fn sign(body: &ArtifactBody, publisher: &SecretIdentity) -> Result<Self, ArtifactError> {
        body.validate()?;
        let mut w = Writer::new(at_version(ARTIFACT_KIND, body.format_version));
        body.write(&mut w);
        w.var_bytes(&publisher.public().encode());
        let signed_len = w.len();
        let signature = publisher
            .signing_key()
            .sign(ARTIFACT_SIG_DOMAIN, w.as_slice())
            .map_err(ArtifactError::Signing)?;
        w.bytes(&signature.ed25519).bytes(&signature.mldsa);
        let encoded = w.finish();
        let digest = sha256(&encoded);
        Ok(SignedArtifact {
            body: body.clone(),
            publisher: publisher.public().clone(),
            signature,
            encoded,
            signed_len,
            digest,
        })
    }

    /// Decodes a signed manifest (at most [`MAX_MANIFEST_LEN`] bytes);
    /// checks structure and invariants, not the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, ArtifactError> {
        check_len(bytes)?;
        let (mut r, format_version) = Reader::open_any(bytes, &readable(ARTIFACT_KIND))?;
        let body = ArtifactBody::read(&mut r, format_version)?;
        let publisher = PublicIdentity::decode(r.var_bytes("publisher identity", 16 * 1024)?)?;
        let signed_len = r.position();
        let signature = HybridSignature::read(&mut r)?;
        r.finish()?;
        Ok(SignedArtifact {
            body,
            publisher,
            signature,
            encoded: bytes.to_vec(),
            signed_len,
            digest: sha256(bytes),
        })
    }

    /// The canonical encoding (`artifact.pqva`).
    pub fn encode(&self) -> Vec<u8> {
        self.encoded.clone()
    }

    /// SHA-256 of the encoded manifest: the artifact's content address.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The (unverified) content.
    pub fn body(&self) -> &ArtifactBody {
        &self.body
    }

    /// The publisher identity the manifest claims.
    pub fn publisher(&self) -> &PublicIdentity {
        &self.publisher
    }

    /// Verifies the artifact against `policy` at time `now_unix`: the
    /// publisher is in the policy, the hybrid signature verifies, the name
    /// is delegated to that publisher, and the manifest has not expired.
    pub fn verify(
        &self,
        policy: &TrustPolicy,
        now_unix: u64,
    ) -> Result<VerifiedArtifact, ArtifactError> {
        let fp = self.publisher.fingerprint();
        let entry = policy
            .publisher(&fp)
            .ok_or(ArtifactError::UnknownPublisher(fp))?;
        self.publisher
            .verifying_key()
            .verify(
                ARTIFACT_SIG_DOMAIN,
                &self.encoded[..self.signed_len],
                &self.signature,
            )
            .map_err(ArtifactError::Signature)?;
        if !entry.may_publish(&self.body.name) {
            return Err(ArtifactError::NotDelegated {
                name: self.body.name.clone(),
                publisher: entry.name.clone(),
                fingerprint: fp,
            });
        }
        if let Some(expires) = self.body.expires_unix {
            if now_unix >= expires {
                return Err(ArtifactError::Expired {
                    name: self.body.name.clone(),
                    version: self.body.version.clone(),
                    expires,
                    now: now_unix,
                });
            }
        }
        Ok(VerifiedArtifact {
            inner: self.clone(),
            publisher_name: entry.name.clone(),
        })
    }
}

/// An artifact manifest whose signature and policy checks passed.
#[derive(Debug, Clone)]
pub struct VerifiedArtifact {
    inner: SignedArtifact,
    publisher_name: String,
}

impl VerifiedArtifact {
    /// Model name.
    pub fn name(&self) -> &str {
        &self.inner.body.name
    }

    /// Model version.
    pub fn version(&self) -> &semver::Version {
        &self.inner.body.version
    }

    /// Creation time (Unix seconds).
    pub fn created(&self) -> u64 {
        self.inner.body.created_unix
    }

    /// Expiry (Unix seconds), if any.
    pub fn expires(&self) -> Option<u64> {
        self.inner.body.expires_unix
    }

    /// The publisher whose signature verified.
    pub fn publisher(&self) -> &PublicIdentity {
        &self.inner.publisher
    }

    /// The publisher's name in the trust policy.
    pub fn publisher_name(&self) -> &str {
        &self.publisher_name
    }

    /// Payload length in bytes.
    pub fn payload_len(&self) -> u64 {
        self.inner.body.payload_len
    }

    /// The payload digest (the ETag): format 1 the SHA-256 of the payload,
    /// format 2 [`chunk_list_digest`].
    pub fn payload_digest(&self) -> [u8; 32] {
        self.inner.body.payload_digest
    }

    /// Manifest format version (how the payload digest is defined).
    pub fn format_version(&self) -> u16 {
        self.inner.body.format_version
    }

    /// Chunk size in bytes.
    pub fn chunk_size(&self) -> u32 {
        self.inner.body.chunk_size
    }

    /// SHA-256 of each chunk; the last chunk may be short.
    pub fn chunks(&self) -> &[[u8; 32]] {
        &self.inner.body.chunks
    }

    /// SHA-256 of the encoded manifest (content address).
    pub fn manifest_digest(&self) -> [u8; 32] {
        self.inner.digest
    }

    /// The encoded signed manifest.
    pub fn encoded(&self) -> &[u8] {
        &self.inner.encoded
    }

    /// The verified body (quantization metadata, golden check).
    pub fn body(&self) -> &ArtifactBody {
        &self.inner.body
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    /// A draft body up to (and including) its layer count.
    fn prefix(chunks: u32, layers: u16) -> Vec<u8> {
        let mut w = Writer::new(DRAFT_KIND);
        w.var_bytes(b"snn-x")
            .var_bytes(b"1.0.0")
            .u64(1)
            .u64(0)
            .u64(65536)
            .bytes(&[0u8; 32])
            .u32(65536)
            .u32(chunks);
        if (chunks as usize) <= MAX_CHUNKS {
            for _ in 0..chunks {
                w.bytes(&[0u8; 32]);
            }
            w.u16(layers);
        }
        w.finish()
    }

    #[test]
    fn limits_on_counts_are_reported_as_counts() {
        let e = ArtifactBody::decode_draft(&prefix(1, 258))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "layer list has 258 layers, over the limit of {MAX_LAYERS}"
            )),
            "{e}"
        );
        assert!(!e.contains("bytes"), "{e}");
        let n = MAX_CHUNKS as u32 + 1;
        let e = ArtifactBody::decode_draft(&prefix(n, 1))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "chunk list has {n} chunks, over the limit of {MAX_CHUNKS}"
            )),
            "{e}"
        );
    }
}
