//! `vault artifact push` and `vault artifact pull`: carrying an artifact to
//! and from a validator's local application port (plain HTTP, normally
//! `127.0.0.1:9465`; see docs/protocol.md, "Artifact carriage").
//!
//! The vault *library* stays network-free; only this CLI module speaks
//! HTTP, through `ureq` (plain HTTP only: the validator's app port is
//! plain HTTP on localhost; decision D29 in docs/decisions.md, superseding
//! the hand-written client of D17). Long pushes and pulls show a progress
//! bar (`indicatif`) when stderr is a terminal, and nothing otherwise.
//! Nothing is held in memory whole: chunks stream from the payload file,
//! and a pulled payload streams to a temporary file that becomes `--out`
//! only after the full check passes.

use super::artifact::{MANIFEST_FILE, PAYLOAD_FILE};
use super::{now_unix, read};
use anyhow::{anyhow, bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, IsTerminal, Read, Seek, SeekFrom};
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

/// Largest error or JSON body read.
const MAX_SMALL_BODY: u64 = 1 << 20;

/// A response whose body is still on the wire.
struct Response {
    status: u16,
    refusal: Option<String>,
    manifest_digest: Option<String>,
    body: ureq::BodyReader<'static>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        match name {
            "x-pqvault-manifest-digest" => self.manifest_digest.as_deref(),
            "x-pqvault-refusal" => self.refusal.as_deref(),
            _ => None,
        }
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
        let refusal = self.refusal.clone();
        let text = String::from_utf8_lossy(&self.small_body().unwrap_or_default())
            .trim()
            .to_string();
        match refusal {
            Some(r) => bail!("{what}: HTTP {status}, refused ({r}): {text}"),
            None => bail!("{what}: HTTP {status}: {text}"),
        }
    }
}

/// The HTTP client: statuses are answers, not errors (the refusal text is
/// what to report); a connection or an answer that stalls fails.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_send_body(Some(Duration::from_secs(120)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// Sends one request with `len` bytes from `body`, if any.
fn request(
    agent: &ureq::Agent,
    addr: &str,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: Option<(&mut dyn Read, u64)>,
) -> Result<Response> {
    let url = format!("http://{addr}{path}");
    let sent = match body {
        None => {
            let mut r = agent.get(&url);
            for (k, v) in extra {
                r = r.header(*k, *v);
            }
            r.call()
        }
        Some((reader, len)) => {
            let mut r = match method {
                "PUT" => agent.put(&url),
                _ => agent.post(&url),
            };
            for (k, v) in extra {
                r = r.header(*k, *v);
            }
            let mut limited = reader.take(len);
            r.header("Content-Length", len.to_string())
                .send(ureq::SendBody::from_reader(&mut limited))
        }
    };
    let resp = sent.map_err(|e| anyhow!("{method} {url}: {e}"))?;
    let text = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (refusal, manifest_digest) = (text("x-pqvault-refusal"), text("x-pqvault-manifest-digest"));
    Ok(Response {
        status: resp.status().as_u16(),
        refusal,
        manifest_digest,
        body: resp.into_body().into_with_config().limit(u64::MAX).reader(),
    })
}

/// A byte-count progress bar on stderr, drawn only when stderr is a
/// terminal (hidden otherwise: logs and pipes get no control characters).
fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    if !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
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
    let agent = agent();
    let pb = progress(len, &format!("push {} {}", body.name, body.version));
    loop {
        let st = post_manifest(&agent, &a.to, &encoded, &want)?;
        let missing_bytes: u64 = st
            .missing
            .iter()
            .map(|&i| chunk.min(len.saturating_sub(i * chunk)))
            .sum();
        pb.set_position(len.saturating_sub(missing_bytes));
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
            if send_chunks(
                &agent,
                &a.to,
                &want,
                &payload_path,
                &todo,
                (chunk, len),
                &pb,
            )? {
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
    pb.finish_and_clear();
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
fn post_manifest(agent: &ureq::Agent, to: &str, encoded: &[u8], want: &str) -> Result<PushState> {
    let resp = request(
        agent,
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
    agent: &ureq::Agent,
    to: &str,
    digest: &str,
    payload_path: &Path,
    todo: &[u64],
    (chunk, len): (u64, u64),
    pb: &indicatif::ProgressBar,
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
                            agent,
                            to,
                            "PUT",
                            &format!("/v1/artifacts/{digest}/chunks/{i}"),
                            &[("Content-Type", "application/octet-stream")],
                            Some((&mut payload, n)),
                        )?
                        .ok(&format!("chunk {i} refused"))?;
                        let v: serde_json::Value = serde_json::from_slice(&resp.small_body()?)
                            .context("chunk answer is not JSON")?;
                        pb.inc(n);
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
        &agent(),
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
    let agent = agent();
    let resp = request(
        &agent,
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
        &agent,
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
        let pb = progress(
            v.payload_len(),
            &format!("pull {} {}", v.name(), v.version()),
        );
        let mut body = pb.wrap_read(resp.body);
        let n = io::copy(&mut (&mut body).take(v.payload_len() + 1), &mut f)
            .context("downloading the payload")?;
        pb.finish_and_clear();
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
        "pulled {} {} ({} bytes, payload digest {}), verified against {}",
        v.name(),
        v.version(),
        v.payload_len(),
        hex::encode(v.payload_digest()),
        a.policy.display()
    );
    Ok(())
}
