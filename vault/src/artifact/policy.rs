//! The artifact trust policy: which publishers a validator accepts and which
//! model names each may publish.
//!
//! A TOML file (docs/artifacts.md, "Trust policy file"):
//!
//! ```toml
//! version = 1
//! [[publisher]]
//! name = "acme-models"
//! identity = "acme.pub"      # a PQVI file, relative to the policy file
//! # or identity_hex = "5051564900..." (the PQVI bytes in hex)
//! # or fingerprint = "<64 hex digits>"
//! models = ["snn-*", "kws"]  # exact names or globs where * matches any run
//! ```

use super::manifest::check_model_name;
use super::ArtifactError;
use crate::identity::{Fingerprint, PublicIdentity};
use serde::Deserialize;
use std::path::Path;

/// Largest policy file read.
pub const MAX_POLICY_FILE: u64 = 1 << 20;
/// Largest identity file a policy names.
const MAX_IDENTITY_FILE: u64 = 64 << 10;
/// Most publishers in one policy.
pub const MAX_PUBLISHERS: usize = 1024;
/// Most patterns per publisher.
pub const MAX_PATTERNS: usize = 1024;

/// One trusted publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// Name in the policy (for messages).
    pub name: String,
    /// Fingerprint of the publisher's public identity.
    pub fingerprint: Fingerprint,
    /// Model name patterns the publisher may publish.
    pub models: Vec<String>,
}

impl Publisher {
    /// True if `model` matches one of the publisher's patterns.
    pub fn may_publish(&self, model: &str) -> bool {
        self.models.iter().any(|p| glob_match(p, model))
    }
}

/// The set of trusted publishers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustPolicy {
    publishers: Vec<Publisher>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: u32,
    #[serde(default)]
    publisher: Vec<RawPublisher>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublisher {
    name: String,
    identity: Option<String>,
    identity_hex: Option<String>,
    fingerprint: Option<String>,
    models: Vec<String>,
}

fn perr(msg: impl Into<String>) -> ArtifactError {
    ArtifactError::Policy(msg.into())
}

/// Matches `name` against `pattern`, where `*` matches any (possibly empty)
/// run of characters and every other character matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

impl TrustPolicy {
    /// Builds a policy from publishers (checked like a file).
    pub fn new(publishers: Vec<Publisher>) -> Result<Self, ArtifactError> {
        for (k, p) in publishers.iter().enumerate() {
            if p.models.is_empty() || p.models.len() > MAX_PATTERNS {
                return Err(perr(format!(
                    "publisher {:?}: models: list 1..={MAX_PATTERNS} names or patterns",
                    p.name
                )));
            }
            for m in &p.models {
                // A pattern must be a valid name once its stars are replaced.
                let probe = m.replace('*', "a");
                if m.is_empty() || check_model_name(&probe).is_err() {
                    return Err(perr(format!(
                        "publisher {:?}: models: {m:?} is not a model name or pattern",
                        p.name
                    )));
                }
            }
            if publishers[..k]
                .iter()
                .any(|q| q.fingerprint == p.fingerprint)
            {
                return Err(perr(format!(
                    "publisher {:?}: fingerprint {} is listed twice",
                    p.name, p.fingerprint
                )));
            }
        }
        if publishers.len() > MAX_PUBLISHERS {
            return Err(perr(format!("more than {MAX_PUBLISHERS} publishers")));
        }
        Ok(TrustPolicy { publishers })
    }

    /// Parses policy text; `identity` paths are relative to `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, ArtifactError> {
        let raw: RawPolicy =
            toml::from_str(text).map_err(|e| perr(e.to_string().trim_end().to_string()))?;
        if raw.version != 1 {
            return Err(perr(format!(
                "version: {} is not supported (this build reads 1)",
                raw.version
            )));
        }
        let mut out = Vec::with_capacity(raw.publisher.len().min(MAX_PUBLISHERS));
        for p in raw.publisher.into_iter().take(MAX_PUBLISHERS + 1) {
            let who = p.name.clone();
            let fingerprint = match (&p.identity, &p.identity_hex, &p.fingerprint) {
                (Some(path), None, None) => {
                    let full = base_dir.join(path);
                    let bytes = crate::fsio::read_limited(&full, MAX_IDENTITY_FILE)
                        .map_err(|e| perr(format!("publisher {who:?}: identity: {e}")))?;
                    PublicIdentity::decode(&bytes)
                        .map_err(|e| {
                            perr(format!(
                                "publisher {who:?}: identity {}: {e}",
                                full.display()
                            ))
                        })?
                        .fingerprint()
                }
                (None, Some(h), None) => {
                    let bytes = hex::decode(h.trim())
                        .map_err(|e| perr(format!("publisher {who:?}: identity_hex: {e}")))?;
                    PublicIdentity::decode(&bytes)
                        .map_err(|e| perr(format!("publisher {who:?}: identity_hex: {e}")))?
                        .fingerprint()
                }
                (None, None, Some(h)) => {
                    let mut b = [0u8; 32];
                    hex::decode_to_slice(h.trim(), &mut b).map_err(|e| {
                        perr(format!(
                            "publisher {who:?}: fingerprint: {e} (need 64 hex digits)"
                        ))
                    })?;
                    Fingerprint::from_bytes(b)
                }
                _ => {
                    return Err(perr(format!(
                        "publisher {who:?}: give exactly one of identity, identity_hex, fingerprint"
                    )))
                }
            };
            out.push(Publisher {
                name: p.name,
                fingerprint,
                models: p.models,
            });
        }
        TrustPolicy::new(out)
    }

    /// Reads a policy file.
    pub fn load(path: &Path) -> Result<Self, ArtifactError> {
        let bytes =
            crate::fsio::read_limited(path, MAX_POLICY_FILE).map_err(|e| perr(e.to_string()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| perr(format!("{} is not UTF-8", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
    }

    /// The publisher with fingerprint `fp`, if trusted.
    pub fn publisher(&self, fp: &Fingerprint) -> Option<&Publisher> {
        self.publishers.iter().find(|p| p.fingerprint == *fp)
    }

    /// All publishers.
    pub fn publishers(&self) -> &[Publisher] {
        &self.publishers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("snn-*", "snn-kws"));
        assert!(glob_match("snn-*", "snn-"));
        assert!(!glob_match("snn-*", "snm-kws"));
        assert!(glob_match("kws", "kws"));
        assert!(!glob_match("kws", "kws2"));
        assert!(glob_match("*", "anything/at.all"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("acme/*/v*", "acme/kws/v2"));
    }

    #[test]
    fn parse_forms_and_refusals() {
        let fp = "ab".repeat(32);
        let ok = format!(
            "version = 1\n[[publisher]]\nname = \"p\"\nfingerprint = \"{fp}\"\nmodels = [\"snn-*\"]\n"
        );
        let p = TrustPolicy::parse(&ok, Path::new(".")).unwrap();
        let f = Fingerprint::from_bytes([0xab; 32]);
        assert!(p.publisher(&f).unwrap().may_publish("snn-x"));
        for (text, want) in [
            (ok.replace("version = 1", "version = 2"), "version"),
            (ok.replace("snn-*", "Bad Name"), "not a model name"),
            (ok.replace(&fp, "abc"), "fingerprint"),
            (ok.replace("models", "modles"), "unknown field"),
            (
                format!("{ok}{}", ok.replace("version = 1\n", "")),
                "listed twice",
            ),
            (
                ok.replace("fingerprint", "identity_hex = \"00\"\nfingerprint"),
                "exactly one",
            ),
        ] {
            let e = TrustPolicy::parse(&text, Path::new(".")).unwrap_err();
            assert_eq!(e.reason(), "policy");
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
    }
}
