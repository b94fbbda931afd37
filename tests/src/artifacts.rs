//! Artifact carriage helpers for multi-process tests and the bench: turn
//! carriage on in a [`Mesh`], make publisher keys and a trust policy, pack
//! and sign test networks with the real `vault` CLI, talk plain HTTP to a
//! validator's application port, and read or corrupt its stored objects.
//!
//! Everything here is TEST-ONLY: the publisher keys are generated in the
//! mesh's temporary directory.

use crate::{free_port, vault, Mesh};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use vault::artifact::testnet::Net;

/// Carriage settings of a mesh: application ports and publisher material.
pub struct Carriage {
    /// Application (plain-HTTP) port of each validator.
    pub apps: Vec<SocketAddr>,
    /// The trust policy every validator uses.
    pub policy: PathBuf,
    /// Secret key of the trusted publisher (may publish `snn-*`).
    pub publisher: PathBuf,
    /// Secret key of a publisher the policy does not know.
    pub rogue: PathBuf,
    /// Where test artifacts are packed.
    pub work: PathBuf,
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Turns artifact carriage on in every validator's config (call before
/// starting them): an application port each, the trust policy, and the
/// extra `[artifacts]` lines in `settings` (e.g. `sync_interval_ms = 200`).
pub fn enable(mesh: &Mesh, settings: &str) -> Carriage {
    let root = mesh.root.path().join("artifacts");
    fs::create_dir_all(&root).expect("mkdir");
    vault(&[
        "keygen",
        "--name",
        "publisher",
        "--out",
        s(&root.join("publisher")),
    ]);
    vault(&["keygen", "--name", "rogue", "--out", s(&root.join("rogue"))]);
    let policy = root.join("trust.toml");
    fs::write(
        &policy,
        "# TEST-ONLY trust policy\nversion = 1\n[[publisher]]\nname = \"test-publisher\"\n\
         identity = \"publisher/publisher.pub\"\nmodels = [\"snn-*\"]\n",
    )
    .expect("policy");
    let mut apps = Vec::new();
    for (i, node) in mesh.nodes.iter().enumerate() {
        let app: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let path = mesh.config(i);
        let text = fs::read_to_string(&path).expect("config");
        let ops_line = format!("ops = \"{}\"\n", node.ops);
        assert!(text.contains(&ops_line), "config has no {ops_line:?}");
        let text = text.replace(&ops_line, &format!("{ops_line}app = \"{app}\"\n"));
        let text = format!(
            "{text}[artifacts]\npolicy = \"{}\"\n{settings}\n",
            s(&policy)
        );
        fs::write(&path, text).expect("config");
        apps.push(app);
    }
    Carriage {
        apps,
        policy,
        publisher: root.join("publisher/publisher.key"),
        rogue: root.join("rogue/rogue.key"),
        work: root,
    }
}

impl Carriage {
    /// Packs `net` as `name` `version` (extra meta.toml lines in `extra`,
    /// e.g. an expiry) with `chunk_size`, signed by `key`, into a new
    /// directory; returns it.
    pub fn pack(
        &self,
        net: &Net,
        name: &str,
        version: &str,
        extra: &str,
        chunk_size: u32,
        key: &Path,
    ) -> PathBuf {
        let dir = self.work.join(format!("{name}-{version}-{}", free_port()));
        let src = dir.with_extension("src");
        fs::create_dir_all(&src).expect("mkdir");
        fs::write(src.join("net.safetensors"), &net.safetensors).expect("tensors");
        let meta = vault::artifact::testnet::meta_toml(name, version, &net.quant).replacen(
            "created = 1767225600\n",
            &format!("created = 1767225600\n{extra}"),
            1,
        );
        fs::write(src.join("meta.toml"), meta).expect("meta");
        vault(&[
            "artifact",
            "pack",
            "--tensors",
            s(&src.join("net.safetensors")),
            "--meta",
            s(&src.join("meta.toml")),
            "--chunk-size",
            &chunk_size.to_string(),
            "--sign",
            s(key),
            "--out",
            s(&dir),
        ]);
        dir
    }

    /// [`Carriage::pack`], then the manifest rewritten at format version 1
    /// (whole-payload SHA-256 as the payload digest), as a publisher on an
    /// older release wrote it: no tool writes format 1 any more, so the
    /// library packs and signs it (same key, same checks).
    pub fn pack_v1(
        &self,
        net: &Net,
        name: &str,
        version: &str,
        chunk_size: u32,
        key: &Path,
    ) -> PathBuf {
        use vault::artifact::{payload::pack_format, quant::MetaFile, SignedArtifact};
        let dir = self.pack(net, name, version, "", chunk_size, key);
        let meta = fs::read_to_string(dir.with_extension("src").join("meta.toml")).expect("meta");
        let meta = MetaFile::parse(&meta).expect("meta.toml");
        let body = pack_format(
            std::io::Cursor::new(&net.safetensors),
            &meta,
            chunk_size,
            1_767_225_600,
            vault::artifact::manifest::FORMAT_V1,
        )
        .expect("pack format 1");
        let key = vault::identity::SecretIdentity::decode(&fs::read(key).expect("key"))
            .expect("secret key");
        let signed = SignedArtifact::sign(&body, &key).expect("sign");
        fs::write(
            dir.join("artifact.pqvd"),
            body.encode_draft().expect("draft"),
        )
        .expect("draft");
        fs::write(dir.join("artifact.pqva"), signed.encode()).expect("manifest");
        dir
    }

    /// Runs `vault artifact push --to <app of i> dir`.
    pub fn push(&self, i: usize, dir: &Path) -> Output {
        Command::new(crate::bin("vault"))
            .args([
                "artifact",
                "push",
                "--to",
                &self.apps[i].to_string(),
                s(dir),
            ])
            .output()
            .expect("run vault")
    }

    /// [`Carriage::push`] on a thread of its own, for tests that act while
    /// the push is under way.
    pub fn push_in_background(&self, i: usize, dir: &Path) -> std::thread::JoinHandle<Output> {
        let (app, dir) = (self.apps[i].to_string(), dir.to_path_buf());
        std::thread::spawn(move || {
            Command::new(crate::bin("vault"))
                .args(["artifact", "push", "--to", &app, s(&dir)])
                .output()
                .expect("run vault")
        })
    }

    /// `GET path` on validator `i`'s application port.
    pub fn get(&self, i: usize, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http(self.apps[i], "GET", path, headers, &[]).expect("app port answers")
    }
}

/// A whole response from the application port.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers (names lower-cased).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request (Connection: close) to `addr`; reads the whole
/// response (bodies here are at most a test artifact).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<HttpResponse> {
    let mut st = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    st.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    st.write_all(req.as_bytes()).ok()?;
    st.write_all(body).ok()?;
    let mut r = BufReader::new(st);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut hs = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).ok()?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        hs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut body = Vec::new();
    let len = hs
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<u64>().ok());
    match len {
        Some(n) => {
            r.take(n).read_to_end(&mut body).ok()?;
        }
        None => {
            r.read_to_end(&mut body).ok()?;
        }
    }
    Some(HttpResponse {
        status,
        headers: hs,
        body,
    })
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// The payload digest (hex) of a packed artifact directory: the ETag a
/// validator serves it under (format 1: SHA-256 of the payload; format 2:
/// of the chunk list).
pub fn payload_digest(dir: &Path) -> String {
    let m = fs::read(dir.join("artifact.pqva")).expect("manifest");
    let m = vault::artifact::SignedArtifact::decode(&m).expect("decodable manifest");
    hex::encode(m.body().payload_digest)
}

/// The manifest digest (hex) of a packed artifact directory.
pub fn manifest_digest(dir: &Path) -> String {
    sha256_hex(&fs::read(dir.join("artifact.pqva")).expect("manifest"))
}

/// Directory of artifact `digest` in validator `i`'s store.
pub fn object_dir(mesh: &Mesh, i: usize, digest: &str) -> PathBuf {
    mesh.nodes[i]
        .dir
        .join("data/artifacts/objects")
        .join(digest)
}

/// Which chunks of `digest` validator `i` has verified (its bitmap file).
pub fn verified_bits(mesh: &Mesh, i: usize, digest: &str) -> Option<Vec<bool>> {
    let bytes = fs::read(object_dir(mesh, i, digest).join("verified")).ok()?;
    let n = u32::from_le_bytes(bytes.get(5..9)?.try_into().ok()?) as usize;
    validator::artifacts::store::bitmap_decode(&bytes, n).ok()
}

/// How many chunks of `digest` validator `i` has verified.
pub fn verified_chunks(mesh: &Mesh, i: usize, digest: &str) -> Option<usize> {
    Some(
        verified_bits(mesh, i, digest)?
            .iter()
            .filter(|b| **b)
            .count(),
    )
}

/// Flips one byte of validator `i`'s stored payload of `digest` (the file
/// stays the same length: a silent on-disk corruption).
pub fn corrupt_payload(mesh: &Mesh, i: usize, digest: &str, offset: u64) {
    let path = object_dir(mesh, i, digest).join("payload");
    let mut bytes = fs::read(&path).expect("payload");
    bytes[offset as usize] ^= 0x5a;
    fs::write(&path, bytes).expect("write payload");
}
