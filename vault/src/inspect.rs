//! Describing any pqvault file for humans and scripts (`vault inspect`).
//!
//! Never prints secret material: for a secret key only its public half is
//! shown, for an unsealed share only its context and length.

use crate::artifact::manifest::{ArtifactBody, ARTIFACT_KIND, DRAFT_KIND};
use crate::artifact::SignedArtifact;
use crate::epoch::{EpochCertificate, CERT_KIND};
use crate::identity::{PublicIdentity, SecretIdentity, PUBLIC_KIND, SECRET_KIND};
use crate::manifest::{Manifest, MANIFEST_KIND};
use crate::seal::{SealedShard, SHARD_KIND};
use crate::share::{ShareRecord, SHARE_KIND};
use serde_json::{json, Value};

/// Describes `bytes` as a JSON value whose `kind` field names the file kind.
/// Files that fail to parse are described with their error, never panicking.
pub fn describe(bytes: &[u8]) -> Value {
    let magic = bytes.get(..4).unwrap_or(bytes);
    let result = if magic == PUBLIC_KIND.magic {
        PublicIdentity::decode(bytes)
            .map(|p| identity(PUBLIC_KIND.name, &p))
            .map_err(|e| e.to_string())
    } else if magic == SECRET_KIND.magic {
        SecretIdentity::decode(bytes)
            .map(|k| {
                let mut v = identity(SECRET_KIND.name, k.public());
                v["note"] = json!("secret key material is not shown");
                v
            })
            .map_err(|e| e.to_string())
    } else if magic == SHARD_KIND.magic {
        SealedShard::parse(bytes)
            .map(|s| shard(&s, bytes.len()))
            .map_err(|e| e.to_string())
    } else if magic == SHARE_KIND.magic {
        ShareRecord::decode(bytes)
            .map(|r| {
                json!({
                    "kind": SHARE_KIND.name,
                    "vault_id": r.vault_id.to_string(),
                    "epoch": r.epoch,
                    "index": r.share.index,
                    "threshold": r.threshold,
                    "n": r.n,
                    "value_len": r.share.value.len(),
                    "note": "share value is secret and not shown",
                })
            })
            .map_err(|e| e.to_string())
    } else if magic == crate::initial_key::PUBLIC_KIND.magic {
        crate::initial_key::open_public(bytes)
            .map(|(k, signer)| {
                json!({
                    "kind": crate::initial_key::PUBLIC_KIND.name,
                    "suite": k.suite.name(),
                    "fingerprint": k.fingerprint().to_hex(),
                    "identity": signer.name(),
                    "identity_fingerprint": signer.fingerprint().to_hex(),
                    "signature": "valid (Ed25519 and ML-DSA-65) by that identity",
                })
            })
            .map_err(|e| e.to_string())
    } else if magic == crate::initial_key::SECRET_KIND.magic {
        crate::initial_key::decode_secret(bytes)
            .map(|(owner, k)| {
                json!({
                    "kind": crate::initial_key::SECRET_KIND.name,
                    "suite": k.public().suite.name(),
                    "fingerprint": k.fingerprint().to_hex(),
                    "identity_fingerprint": owner.to_hex(),
                    "note": "secret key material is not shown",
                })
            })
            .map_err(|e| e.to_string())
    } else if magic == MANIFEST_KIND.magic {
        Manifest::decode(bytes)
            .map(manifest)
            .map_err(|e| e.to_string())
    } else if magic == CERT_KIND.magic {
        EpochCertificate::decode(bytes)
            .map(|c| {
                json!({
                    "kind": CERT_KIND.name,
                    "vault_id": c.transition.vault_id.to_string(),
                    "from_epoch": c.transition.from_epoch,
                    "prev_manifest_digest": hex::encode(c.transition.prev_digest),
                    "next_manifest_digest": hex::encode(c.transition.next_digest),
                    "signers": c.signatures.iter().map(|(p, _)| json!({
                        "name": p.name(),
                        "fingerprint": p.fingerprint().to_hex(),
                    })).collect::<Vec<_>>(),
                    "note": "signatures are checked by `vault verify --chain`, not here",
                })
            })
            .map_err(|e| e.to_string())
    } else if magic == ARTIFACT_KIND.magic {
        SignedArtifact::decode(bytes)
            .map(|a| {
                let mut v = artifact(ARTIFACT_KIND.name, a.body());
                v["manifest_digest"] = json!(hex::encode(a.digest()));
                v["publisher"] = json!({
                    "name": a.publisher().name(),
                    "fingerprint": a.publisher().fingerprint().to_hex(),
                });
                v["note"] = json!("signature and policy are checked by `vault artifact verify`");
                v
            })
            .map_err(|e| e.to_string())
    } else if magic == DRAFT_KIND.magic {
        ArtifactBody::decode_draft(bytes)
            .map(|b| artifact(DRAFT_KIND.name, &b))
            .map_err(|e| e.to_string())
    } else {
        Err("not a pqvault file (unknown magic)".to_string())
    };
    result.unwrap_or_else(|error| json!({ "kind": "invalid", "error": error }))
}

fn artifact(kind: &str, b: &ArtifactBody) -> Value {
    json!({
        "kind": kind,
        "format_version": b.format_version,
        "name": b.name,
        "version": b.version.to_string(),
        "created_unix": b.created_unix,
        "expires_unix": b.expires_unix,
        "payload_len": b.payload_len,
        "payload_digest": hex::encode(b.payload_digest),
        "chunk_size": b.chunk_size,
        "chunks": b.chunks.len(),
    })
}

fn identity(kind: &str, p: &PublicIdentity) -> Value {
    json!({
        "kind": kind,
        "name": p.name(),
        "fingerprint": p.fingerprint().to_hex(),
        "kem_suite": p.suite().name(),
        "signature_suite": "ed25519-mldsa65",
    })
}

fn shard(s: &SealedShard, len: usize) -> Value {
    let h = &s.header;
    json!({
        "kind": SHARD_KIND.name,
        "suite": h.suite.name(),
        "vault_id": h.vault_id.to_string(),
        "epoch": h.epoch,
        "index": h.index,
        "threshold": h.threshold,
        "n": h.n,
        "recipient": h.recipient.to_hex(),
        "sealed_to": match h.epoch_key {
            Some(k) if h.epoch == 1 => format!("epoch key {} (the recipient's initial key)", k.to_hex()),
            Some(k) => format!("epoch key {}", k.to_hex()),
            None => "the recipient identity's KEM key".to_string(),
        },
        "size_bytes": len,
    })
}

fn manifest(m: Manifest) -> Value {
    let b = m.body().clone();
    let signer = m.signer().clone();
    let signature = match m.verify(None) {
        Ok(_) => "valid (Ed25519 and ML-DSA-65)".to_string(),
        Err(e) => format!("INVALID: {e}"),
    };
    json!({
        "kind": MANIFEST_KIND.name,
        "suite": b.suite.name(),
        "vault_id": b.vault_id.to_string(),
        "epoch": b.epoch,
        "created_unix": b.created_unix,
        "threshold": b.threshold,
        "n": b.n,
        "secret_len": b.secret_len,
        "secret_commitment": hex::encode(b.secret_commitment),
        "signer": signer.name(),
        "signer_fingerprint": signer.fingerprint().to_hex(),
        "signature": signature,
        "shards": b.shards.iter().map(|e| json!({
            "index": e.index,
            "recipient": e.recipient_name,
            "recipient_fingerprint": e.recipient.to_hex(),
            "blob_sha256": hex::encode(e.blob_hash),
            "share_commitment": hex::encode(e.share_commitment),
        })).collect::<Vec<_>>(),
    })
}

/// Renders a description as aligned `key: value` lines.
pub fn to_text(v: &Value) -> String {
    let mut out = String::new();
    render(v, 0, &mut out);
    out
}

fn render(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            let width = map.keys().map(|k| k.len()).max().unwrap_or(0);
            for (k, val) in map {
                match val {
                    Value::Array(items) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        for item in items {
                            out.push_str(&format!("{pad}  -\n"));
                            render(item, indent + 4, out);
                        }
                    }
                    Value::String(s) => out.push_str(&format!("{pad}{k:width$}  {s}\n")),
                    other => out.push_str(&format!("{pad}{k:width$}  {other}\n")),
                }
            }
        }
        other => out.push_str(&format!("{pad}{other}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_and_garbage_are_described() {
        let signed = include_bytes!("../tests/vectors/artifact-v1/snn-int8/artifact.pqva");
        let v = describe(signed);
        assert_eq!(v["kind"], "pqvault artifact manifest", "{v}");
        assert!(v["manifest_digest"].as_str().is_some_and(|d| d.len() == 64));
        let draft = include_bytes!("../tests/vectors/artifact-v1/snn-int8/artifact.pqvd");
        assert_eq!(describe(draft)["kind"], "pqvault artifact draft");
        assert_eq!(describe(&signed[..40])["kind"], "invalid");
        assert_eq!(describe(b"PQVE\x00\x01")["kind"], "invalid");
        assert_eq!(describe(b"hello")["kind"], "invalid");
    }
}
