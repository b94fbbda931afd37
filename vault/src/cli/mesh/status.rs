//! `vault mesh status`: the operator's client on the validators' peer
//! port. Mutual TLS 1.3 with the X25519MLKEM768 exchange only (like the
//! validators), presenting an operator-role certificate from the mesh CA
//! (`vault mesh-ca issue --role operator`); the validators answer such a
//! connection on `GET /v1/status` and nothing else.

use anyhow::{anyhow, bail, Context, Result};
use rustls::crypto::aws_lc_rs::{self, kx_group};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Largest status document read.
const MAX_STATUS: u64 = 1 << 20;

/// Arguments of `vault mesh status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// A local mesh's directory (`vault mesh up`, `vault demo --keep`): its
    /// CA, operator certificate and validators are the defaults below.
    dir: Option<PathBuf>,
    /// Mesh CA certificate [DIR/ca/mesh-ca.crt].
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// Operator-role certificate [DIR/operator-tls/operator.crt].
    #[arg(long, value_name = "PEM")]
    cert: Option<PathBuf>,
    /// Its TLS key [DIR/operator-tls/operator.tls.key].
    #[arg(long, value_name = "PEM")]
    key: Option<PathBuf>,
    /// A validator to ask, as ID@HOST:PORT (its peer port; repeatable)
    /// [every validator of DIR].
    #[arg(long = "validator", value_name = "ID@ADDR")]
    validators: Vec<String>,
    /// One JSON array of the validators' status documents (an `error`
    /// object for one that did not answer).
    #[arg(long)]
    json: bool,
}

/// Runs `vault mesh status`.
pub fn run(a: StatusArgs) -> Result<()> {
    let from_dir = |rel: &str, flag: &Option<PathBuf>, name: &str| -> Result<PathBuf> {
        match (flag, &a.dir) {
            (Some(p), _) => Ok(p.clone()),
            (None, Some(d)) => Ok(d.join(rel)),
            (None, None) => bail!("give --{name} or a local mesh DIR"),
        }
    };
    let ca = from_dir("ca/mesh-ca.crt", &a.ca, "ca")?;
    let cert = from_dir("operator-tls/operator.crt", &a.cert, "cert")?;
    let key = from_dir("operator-tls/operator.tls.key", &a.key, "key")?;
    let mut targets = a
        .validators
        .iter()
        .map(|v| parse_target(v))
        .collect::<Result<Vec<_>>>()?;
    if targets.is_empty() {
        let Some(dir) = &a.dir else {
            bail!("give --validator ID@HOST:PORT (repeatable) or a local mesh DIR");
        };
        targets = local_validators(dir)?;
    }
    let config = client_config(&ca, &cert, &key)?;
    let answers: Vec<(String, SocketAddr, Result<Value>)> = targets
        .into_iter()
        .map(|(id, addr)| {
            let r = get_status(&config, &id, addr);
            (id, addr, r)
        })
        .collect();
    if a.json {
        let docs: Vec<Value> = answers
            .iter()
            .map(|(id, addr, r)| match r {
                Ok(v) => v.clone(),
                Err(e) => serde_json::json!({
                    "id": id, "addr": addr.to_string(), "error": format!("{e:#}")
                }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&docs)?);
    } else {
        print_text(&answers);
    }
    if answers.iter().all(|(_, _, r)| r.is_err()) {
        bail!("no validator answered");
    }
    Ok(())
}

fn parse_target(s: &str) -> Result<(String, SocketAddr)> {
    let (id, addr) = s
        .split_once('@')
        .ok_or_else(|| anyhow!("--validator {s:?}: expected ID@HOST:PORT"))?;
    let addr = addr
        .to_socket_addrs()
        .with_context(|| format!("--validator {s:?}"))?
        .next()
        .ok_or_else(|| anyhow!("--validator {s:?}: no address"))?;
    Ok((id.to_string(), addr))
}

/// Every validator of a local mesh: id and peer address from its config.
fn local_validators(dir: &Path) -> Result<Vec<(String, SocketAddr)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let config = e?.path().join("validator.toml");
        let Ok(text) = std::fs::read_to_string(&config) else {
            continue;
        };
        let v: toml::Value =
            toml::from_str(&text).with_context(|| format!("{}", config.display()))?;
        let id = v.get("id").and_then(toml::Value::as_str);
        let peer = v
            .get("listen")
            .and_then(|l| l.get("peer"))
            .and_then(toml::Value::as_str);
        if let (Some(id), Some(peer)) = (id, peer) {
            out.push((id.to_string(), peer.parse()?));
        }
    }
    // validator-2 before validator-10.
    out.sort_by_key(|(id, _)| (id.len(), id.clone()));
    if out.is_empty() {
        bail!("no validator.toml under {}", dir.display());
    }
    Ok(out)
}

/// TLS 1.3, X25519MLKEM768 only, the mesh CA as the only root, the
/// operator's certificate as the client's.
fn client_config(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<ClientConfig>> {
    let pem = |p: &Path| -> Result<Vec<CertificateDer<'static>>> {
        let certs = CertificateDer::pem_file_iter(p)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow!("{}: {e}", p.display()))?;
        if certs.is_empty() {
            bail!("{}: no certificate", p.display());
        }
        Ok(certs)
    };
    let mut roots = RootCertStore::empty();
    for c in pem(ca)? {
        roots.add(c).map_err(|e| anyhow!("{}: {e}", ca.display()))?;
    }
    let chain = pem(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow!("{}: {e}", key.display()))?;
    let mut provider = aws_lc_rs::default_provider();
    provider.kx_groups = vec![kx_group::X25519MLKEM768];
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// `GET /v1/status` from validator `id` at `addr`, its certificate
/// verified against the mesh CA under the name `id`.
fn get_status(config: &Arc<ClientConfig>, id: &str, addr: SocketAddr) -> Result<Value> {
    let name = ServerName::try_from(id.to_string())?;
    let conn = ClientConnection::new(config.clone(), name)?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connect to {addr}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut tls = StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET /v1/status HTTP/1.1\r\nHost: {id}\r\nConnection: close\r\n\r\n"
    )
    .with_context(|| format!("TLS with {id} at {addr}"))?;
    let mut raw = Vec::new();
    // The server may close without close_notify; what arrived is checked
    // against its Content-Length below.
    let _ = (&mut tls).take(MAX_STATUS).read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("{id} at {addr}: no HTTP answer (refused?)"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = &raw[split + 4..];
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("{id}: malformed status line"))?;
    let len = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    if code != 200 {
        bail!(
            "{id}: HTTP {code}: {}",
            String::from_utf8_lossy(body).trim()
        );
    }
    let body = match len {
        Some(n) if body.len() >= n => &body[..n],
        Some(n) => bail!("{id}: answer cut short ({} of {n} bytes)", body.len()),
        None => body,
    };
    serde_json::from_slice(body).with_context(|| format!("{id}: status is not JSON"))
}

fn print_text(answers: &[(String, SocketAddr, Result<Value>)]) {
    println!(
        "{:<13} {:<21} {:<8} {:<16} {:<8} {:>10}  vaults (epoch, t-of-n, pending heal)",
        "validator", "peer address", "role", "kx group", "pending", "members"
    );
    for (id, addr, r) in answers {
        let v = match r {
            Ok(v) => v,
            Err(e) => {
                println!("{id:<13} {:<21} unreachable: {e:#}", addr.to_string());
                continue;
            }
        };
        let members = v["members"].as_array().cloned().unwrap_or_default();
        let alive = members.iter().filter(|m| m["state"] == "alive").count();
        let vaults: Vec<String> = v["vaults"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|x| {
                format!(
                    "{}: epoch {}, {}-of-{}, {}",
                    x["vault"].as_str().unwrap_or("?"),
                    x["epoch"],
                    x["threshold"],
                    x["shares"],
                    x["heal_pending"]
                )
            })
            .collect();
        let pending = v["pending_transitions"].as_array().map_or(0, Vec::len);
        println!(
            "{:<13} {:<21} {:<8} {:<16} {:<8} {:>10}  {}",
            v["id"].as_str().unwrap_or(id),
            addr.to_string(),
            v["role"].as_str().unwrap_or("?"),
            v["kx_group"].as_str().unwrap_or("?"),
            pending,
            format!("{alive}/{} alive", members.len()),
            if vaults.is_empty() {
                "-".to_string()
            } else {
                vaults.join("; ")
            }
        );
        if let Some(d) = v["role_detail"].as_str() {
            println!("{:<13} stale: {d}", "");
        }
    }
    // Health scores as the first validator that answered sees its members.
    if let Some((id, _, Ok(v))) = answers.iter().find(|(_, _, r)| r.is_ok()) {
        let members = v["members"].as_array().cloned().unwrap_or_default();
        let view: Vec<String> = members
            .iter()
            .map(|m| {
                format!(
                    "{} {} {}",
                    m["id"].as_str().unwrap_or("?"),
                    m["state"].as_str().unwrap_or("?"),
                    m["health"]
                        .as_f64()
                        .map_or("-".to_string(), |h| format!("{h:.2}"))
                )
            })
            .collect();
        println!(
            "members as {id} sees them (state, health score): {}",
            view.join(", ")
        );
    }
}
