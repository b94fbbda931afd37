//! `vault artifact push` and `vault artifact pull`: carrying an artifact to
//! and from a validator's local application port (plain HTTP, normally
//! `127.0.0.1:9465`; see docs/protocol.md, "Artifact carriage").
//!
//! The vault *library* stays network-free; only this CLI module speaks
//! HTTP, with the small HTTP/1.1 client below (requests with a
//! `Content-Length`, responses delimited by `Content-Length` or the end of
//! the connection) because the validator's app port is plain HTTP on
//! localhost and that is all it needs (docs/decisions.md).
//! Nothing is held in memory whole: chunks stream from the payload file,
//! and a pulled payload streams to a temporary file that becomes `--out`
//! only after the full check passes.

use super::artifact::{MANIFEST_FILE, PAYLOAD_FILE};
use super::{now_unix, read};
use anyhow::{anyhow, bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use vault::artifact::{check_payload, SignedArtifact, TrustPolicy, MAX_MANIFEST_LEN};

/// Arguments of `vault artifact push`.
#[derive(clap::Args)]
pub struct PushArgs {
    /// The validator's application port (plain HTTP).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9465")]
    to: String,
    /// Artifact directory (artifact.pqva and payload.safetensors).
    dir: PathBuf,
    /// Seconds to wait without progress for the validator to report the
    /// artifact complete (chunks another transfer is receiving count as
    /// sent).
    #[arg(long = "wait", value_name = "SECONDS", default_value_t = 120)]
    wait_secs: u64,
}

/// Arguments of `vault artifact pull`.
#[derive(clap::Args)]
#[command(disable_version_flag = true)]
pub struct PullArgs {
    /// The validator's application port (plain HTTP).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9465")]
    from: String,
    /// Model name.
    #[arg(long)]
    name: String,
    /// Version (default: the newest the validator serves).
    #[arg(long)]
    version: Option<String>,
    /// Where to write the payload (a new file; never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Trust policy the artifact must satisfy.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Also write the signed manifest here.
    #[arg(long, value_name = "FILE")]
    manifest_out: Option<PathBuf>,
}

/// Arguments of `vault artifact abandon`.
#[derive(clap::Args)]
#[command(disable_version_flag = true)]
pub struct AbandonArgs {
    /// The validator's application port (plain HTTP).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9465")]
    to: String,
    /// The publisher's secret key: the one that signed the artifact (the
    /// validator refuses a statement signed by anyone else).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// Model name.
    name: String,
    /// Version.
    version: String,
}

/// Largest response header block read.
const MAX_HEADERS: usize = 64 << 10;
/// Largest error or JSON body read.
const MAX_SMALL_BODY: u64 = 1 << 20;

/// A response whose body is still on the wire.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: io::Take<BufReader<TcpStream>>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn small_body(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        (&mut self.body)
            .take(MAX_SMALL_BODY)
            .read_to_end(&mut out)
            .context("reading the response")?;
        Ok(out)
    }

    /// Fails with the server's explanation unless the status is 2xx.
    fn ok(self, what: &str) -> Result<Response> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let status = self.status;
        let refusal = self.header("x-pqvault-refusal").map(str::to_string);
        let text = String::from_utf8_lossy(&self.small_body().unwrap_or_default())
            .trim()
            .to_string();
        match refusal {
            Some(r) => bail!("{what}: HTTP {status}, refused ({r}): {text}"),
            None => bail!("{what}: HTTP {status}: {text}"),
        }
    }
}

/// Sends one HTTP/1.1 request with `body_len` bytes from `body`.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: Option<(&mut dyn Read, u64)>,
) -> Result<Response> {
    let stream = TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.set_write_timeout(Some(Duration::from_secs(120)))?;
    let _ = stream.set_nodelay(true);
    // A server may answer (a refusal) before it has read the whole body
    // and close: then sending fails, but its answer is what to report.
    let sent = (|| -> Result<()> {
        let mut w = io::BufWriter::with_capacity(64 << 10, stream.try_clone()?);
        write!(
            w,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n"
        )?;
        for (k, v) in extra {
            write!(w, "{k}: {v}\r\n")?;
        }
        match body {
            Some((r, len)) => {
                write!(w, "Content-Length: {len}\r\n\r\n")?;
                let sent =
                    io::copy(&mut r.take(len), &mut w).context("sending the request body")?;
                if sent != len {
                    bail!("request body ended after {sent} of {len} bytes");
                }
            }
            None => write!(w, "\r\n")?,
        }
        w.flush().with_context(|| format!("sending to {addr}"))?;
        Ok(())
    })();
    match (sent, read_response(addr, stream)) {
        (Ok(()), r) => r,
        (Err(_), Ok(r)) if !(200..300).contains(&r.status) => Ok(r),
        (Err(e), _) => Err(e),
    }
}

/// Reads a response's status line and headers; the body stays on the wire.
fn read_response(addr: &str, stream: TcpStream) -> Result<Response> {
    let mut r = BufReader::with_capacity(64 << 10, stream);
    let mut status_line = String::new();
    r.read_line(&mut status_line)
        .with_context(|| format!("reading the response from {addr}"))?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("{addr} answered {status_line:?}, not HTTP"))?;
    let mut headers = Vec::new();
    let mut total = status_line.len();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line)?;
        total += n;
        if total > MAX_HEADERS {
            bail!("response headers from {addr} exceed {MAX_HEADERS} bytes");
        }
        let line = line.trim_end();
        if n == 0 || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if find("transfer-encoding").is_some_and(|t| !t.eq_ignore_ascii_case("identity")) {
        bail!("{addr} answered with a transfer encoding this client does not read");
    }
    let len = match find("content-length") {
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| anyhow!("{addr}: bad Content-Length {v:?}"))?,
        None => u64::MAX, // until the connection closes
    };
    Ok(Response {
        status,
        headers,
        body: r.take(len),
    })
}

/// Chunk uploads in flight during a push.
const PUSH_WORKERS: usize = 4;

/// `vault artifact push`.
pub fn run_push(a: PushArgs) -> Result<()> {
    let manifest_path = a.dir.join(MANIFEST_FILE);
    let encoded = read(&manifest_path, MAX_MANIFEST_LEN as u64)?;
    let signed =
        SignedArtifact::decode(&encoded).with_context(|| format!("{}", manifest_path.display()))?;
    let body = signed.body();
    let payload_path = a.dir.join(PAYLOAD_FILE);
    let payload = File::open(&payload_path)
        .with_context(|| format!("cannot open {}", payload_path.display()))?;
    let len = payload.metadata()?.len();
    if len != body.payload_len {
        bail!(
            "{} is {len} bytes, the manifest says {}",
            payload_path.display(),
            body.payload_len
        );
    }
    let want = hex::encode(signed.digest());
    let chunk = u64::from(body.chunk_size);
    let wait = Duration::from_secs(a.wait_secs);
    let mut sent = 0usize;
    // Rounds: post the manifest (idempotent: it answers what is still
    // missing and what another transfer, e.g. the validator's own
    // anti-entropy download, is receiving right now), send what is missing
    // and not in flight, and wait while the rest arrives or the full check
    // runs. Fails only when nothing progresses for `--wait` seconds.
    let mut last_progress = std::time::Instant::now();
    let mut best: Option<usize> = None;
    loop {
        let st = post_manifest(&a.to, &encoded, &want)?;
        if st.complete {
            break;
        }
        if best.is_none_or(|b| st.missing.len() < b) {
            best = Some(st.missing.len());
            last_progress = std::time::Instant::now();
        }
        let todo: Vec<u64> = st
            .missing
            .iter()
            .copied()
            .filter(|i| !st.in_flight.contains(i))
            .collect();
        if !todo.is_empty() {
            sent += todo.len();
            if send_chunks(&a.to, &want, &payload_path, &todo, chunk, len)? {
                break;
            }
            last_progress = std::time::Instant::now();
            continue;
        }
        if last_progress.elapsed() > wait {
            bail!(
                "the validator does not report the artifact complete after {}s without progress ({} chunks still missing, {} being received)",
                a.wait_secs,
                st.missing.len(),
                st.in_flight.len()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "pushed {} {} to {}: {} of {} chunks sent, verified and served; manifest digest {want}",
        body.name,
        body.version,
        a.to,
        sent.min(body.chunks.len()),
        body.chunks.len()
    );
    Ok(())
}

/// What the validator holds of an artifact (its answer to the manifest).
struct PushState {
    complete: bool,
    missing: Vec<u64>,
    in_flight: Vec<u64>,
}

/// Posts the signed manifest; checks the digest admitted.
fn post_manifest(to: &str, encoded: &[u8], want: &str) -> Result<PushState> {
    let resp = request(
        to,
        "POST",
        "/v1/artifacts",
        &[("Content-Type", "application/octet-stream")],
        Some((&mut &encoded[..], encoded.len() as u64)),
    )?
    .ok("manifest refused")?;
    let admitted: serde_json::Value = serde_json::from_slice(&resp.small_body()?)
        .context("the validator's answer to the manifest is not JSON")?;
    let digest = admitted["digest"]
        .as_str()
        .ok_or_else(|| anyhow!("no digest in the validator's answer"))?;
    if digest != want {
        bail!("the validator admitted digest {digest}, expected {want}");
    }
    let list = |k: &str| -> Vec<u64> {
        admitted[k]
            .as_array()
            .map(|v| v.iter().filter_map(|x| x.as_u64()).collect())
            .unwrap_or_default()
    };
    Ok(PushState {
        complete: admitted["complete"] == true,
        missing: list("missing"),
        in_flight: list("in_flight"),
    })
}

/// Sends chunks `todo` with a few uploads in flight (each PUT is verified
/// on arrival, so the validator's hashing overlaps the next upload; each
/// worker reads the payload through its own handle). A chunk the
/// validator already has, or is receiving from elsewhere, is not an error.
/// Returns true once the validator reports the artifact complete.
fn send_chunks(
    to: &str,
    digest: &str,
    payload_path: &Path,
    todo: &[u64],
    chunk: u64,
    len: u64,
) -> Result<bool> {
    let complete = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let workers = PUSH_WORKERS.min(todo.len()).max(1);
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut payload = File::open(payload_path)
                        .with_context(|| format!("cannot open {}", payload_path.display()))?;
                    loop {
                        let Some(&i) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            return Ok(());
                        };
                        let off = i * chunk;
                        let n = chunk.min(len.saturating_sub(off));
                        payload.seek(SeekFrom::Start(off))?;
                        let resp = request(
                            to,
                            "PUT",
                            &format!("/v1/artifacts/{digest}/chunks/{i}"),
                            &[("Content-Type", "application/octet-stream")],
                            Some((&mut payload, n)),
                        )?
                        .ok(&format!("chunk {i} refused"))?;
                        let v: serde_json::Value = serde_json::from_slice(&resp.small_body()?)
                            .context("chunk answer is not JSON")?;
                        if v["complete"] == true {
                            complete.store(true, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow!("a push worker panicked"))??;
        }
        Ok(())
    })?;
    Ok(complete.load(Ordering::SeqCst))
}

/// `vault artifact abandon`: asks a validator to abandon a partial
/// artifact, with a statement signed by its publisher.
pub fn run_abandon(a: AbandonArgs) -> Result<()> {
    let version = vault::artifact::manifest::parse_version(&a.version).context("VERSION")?;
    vault::artifact::manifest::check_model_name(&a.name).context("NAME")?;
    let key = super::load_key(&a.key)?;
    let statement =
        vault::artifact::abandon::AbandonStatement::sign(&a.name, &version, now_unix(), &key)?;
    let resp = request(
        &a.to,
        "POST",
        &format!("/v1/artifacts/{}/{version}/abandon", a.name),
        &[("Content-Type", "application/octet-stream")],
        Some((&mut statement.as_slice(), statement.len() as u64)),
    )?
    .ok("abandon refused")?;
    let v: serde_json::Value =
        serde_json::from_slice(&resp.small_body()?).context("the answer is not JSON")?;
    let n = v["abandoned"].as_array().map_or(0, Vec::len);
    println!(
        "{} {version}: {n} partial artifact(s) abandoned on {}, space released",
        a.name, a.to
    );
    Ok(())
}

/// Writes a new file at `out` from `tmp` (never replacing one), fsynced.
fn link_new(tmp: &Path, out: &Path) -> Result<()> {
    fs::hard_link(tmp, out).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            anyhow!("{} already exists; refusing to overwrite it", out.display())
        } else {
            anyhow!("cannot write {}: {e}", out.display())
        }
    })?;
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty());
    File::open(dir.unwrap_or(Path::new(".")))?.sync_all()?;
    Ok(())
}

/// `vault artifact pull`.
pub fn run_pull(a: PullArgs) -> Result<()> {
    let policy = TrustPolicy::load(&a.policy).with_context(|| format!("{}", a.policy.display()))?;
    let which = a.version.as_deref().unwrap_or("latest");
    let resp = request(
        &a.from,
        "GET",
        &format!("/v1/artifacts/{}/{which}/manifest", a.name),
        &[],
        None,
    )?
    .ok("manifest")?;
    let mut encoded = Vec::new();
    resp.body
        .take(MAX_MANIFEST_LEN as u64 + 1)
        .read_to_end(&mut encoded)?;
    let v = SignedArtifact::decode(&encoded)
        .and_then(|s| s.verify(&policy, now_unix()))
        .context("the manifest served does not verify")?;
    if v.name() != a.name {
        bail!("asked for {}, the validator served {}", a.name, v.name());
    }
    if let Some(want) = &a.version {
        if v.version().to_string() != *want {
            bail!(
                "asked for version {want}, the validator served {}",
                v.version()
            );
        }
    }
    // Ask for the exact version verified, not "latest" again.
    let resp = request(
        &a.from,
        "GET",
        &format!("/v1/artifacts/{}/{}", a.name, v.version()),
        &[],
        None,
    )?
    .ok("payload")?;
    if resp
        .header("x-pqvault-manifest-digest")
        .is_some_and(|d| d != hex::encode(v.manifest_digest()))
    {
        bail!("the payload served belongs to another manifest");
    }
    let dir = a
        .out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut suffix = [0u8; 8];
    aws_lc_rs::rand::fill(&mut suffix).map_err(|_| anyhow!("rng failure"))?;
    let tmp = dir.join(format!(".pull-{}.tmp", hex::encode(suffix)));
    let result = (|| -> Result<()> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut body = resp.body;
        let n = io::copy(&mut (&mut body).take(v.payload_len() + 1), &mut f)
            .context("downloading the payload")?;
        if n != v.payload_len() {
            bail!(
                "payload is {n} bytes, the manifest says {}",
                v.payload_len()
            );
        }
        f.sync_all()?;
        f.seek(SeekFrom::Start(0))?;
        check_payload(&v, BufReader::with_capacity(64 << 10, &mut f))
            .context("the payload served does not verify")?;
        link_new(&tmp, &a.out)?;
        if let Some(m) = &a.manifest_out {
            vault::fsio::write_atomic(m, &encoded, vault::fsio::Mode::Public, false)?;
        }
        Ok(())
    })();
    let _ = fs::remove_file(&tmp);
    result?;
    println!(
        "pulled {} {} ({} bytes, payload sha256 {}), verified against {}",
        v.name(),
        v.version(),
        v.payload_len(),
        hex::encode(v.payload_digest()),
        a.policy.display()
    );
    Ok(())
}
