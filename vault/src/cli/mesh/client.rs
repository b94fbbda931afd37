//! The operator's client on the validators' peer port, shared by `vault
//! mesh status`, `fetch`, `recover` and `remove`: mutual TLS 1.3 with the
//! X25519MLKEM768 exchange only (like the validators), presenting an
//! operator-role certificate from the mesh CA (`vault mesh-ca issue --role
//! operator`), which the validators answer on their status, chain,
//! recovery and membership routes only.

use anyhow::{anyhow, bail, Context, Result};
use rustls::crypto::aws_lc_rs::{self, kx_group};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Validators to ask: (member id, peer address).
pub type Targets = Vec<(String, SocketAddr)>;

/// Where the validators are and how to reach them (flattened into each
/// command's arguments).
#[derive(clap::Args)]
pub struct Conn {
    /// A local mesh's directory (`vault mesh up`, `vault demo --keep`): its
    /// CA, operator certificate and validators are the defaults below.
    pub dir: Option<PathBuf>,
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
}

impl Conn {
    /// The connection of the local mesh in `dir`: its CA, its operator
    /// certificate and every validator of it.
    pub fn local(dir: &Path) -> Conn {
        Conn {
            dir: Some(dir.to_path_buf()),
            ca: None,
            cert: None,
            key: None,
            validators: Vec::new(),
        }
    }

    /// The TLS client configuration and the validators to ask.
    pub fn resolve(&self) -> Result<(Arc<ClientConfig>, Targets)> {
        let from_dir = |rel: &str, flag: &Option<PathBuf>, name: &str| -> Result<PathBuf> {
            match (flag, &self.dir) {
                (Some(p), _) => Ok(p.clone()),
                (None, Some(d)) => Ok(d.join(rel)),
                (None, None) => bail!("give --{name} or a local mesh DIR"),
            }
        };
        let ca = from_dir("ca/mesh-ca.crt", &self.ca, "ca")?;
        let cert = from_dir("operator-tls/operator.crt", &self.cert, "cert")?;
        let key = from_dir("operator-tls/operator.tls.key", &self.key, "key")?;
        let mut targets = self
            .validators
            .iter()
            .map(|v| parse_target(v))
            .collect::<Result<Vec<_>>>()?;
        if targets.is_empty() {
            let Some(dir) = &self.dir else {
                bail!("give --validator ID@HOST:PORT (repeatable) or a local mesh DIR");
            };
            targets = local_validators(dir)?;
        }
        Ok((client_config(&ca, &cert, &key)?, targets))
    }
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

/// `GET path` from validator `id` at `addr` (at most `max` bytes), its
/// certificate verified against the mesh CA under the name `id`; the body
/// of a 200 answer.
pub fn get(
    config: &Arc<ClientConfig>,
    id: &str,
    addr: SocketAddr,
    path: &str,
    max: u64,
) -> Result<Vec<u8>> {
    ok(id, request(config, id, addr, "GET", path, None, max)?)
}

/// `POST path` with `body` (`application/octet-stream`) to validator `id`
/// at `addr`, as [`get`]; the body of a 200 answer.
pub fn post(
    config: &Arc<ClientConfig>,
    id: &str,
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    max: u64,
) -> Result<Vec<u8>> {
    ok(
        id,
        request(config, id, addr, "POST", path, Some(body), max)?,
    )
}

/// `POST path` with `body`, as [`post`]; the status code and body of
/// whatever it answered (for callers that tell refusals apart).
pub fn post_status(
    config: &Arc<ClientConfig>,
    id: &str,
    addr: SocketAddr,
    path: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>)> {
    request(config, id, addr, "POST", path, Some(body), 64 << 10)
}

/// The body of a 200 answer; any other status is an error naming it.
fn ok(id: &str, (code, body): (u16, Vec<u8>)) -> Result<Vec<u8>> {
    if code != 200 {
        bail!(
            "{id}: HTTP {code}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    Ok(body)
}

fn request(
    config: &Arc<ClientConfig>,
    id: &str,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    max: u64,
) -> Result<(u16, Vec<u8>)> {
    let name = ServerName::try_from(id.to_string())?;
    let conn = ClientConnection::new(config.clone(), name)?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connect to {addr}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut tls = StreamOwned::new(conn, tcp);
    let head = match body {
        Some(b) => format!(
            "{method} {path} HTTP/1.1\r\nHost: {id}\r\nConnection: close\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            b.len()
        ),
        None => format!("{method} {path} HTTP/1.1\r\nHost: {id}\r\nConnection: close\r\n\r\n"),
    };
    tls.write_all(head.as_bytes())
        .and_then(|()| tls.write_all(body.unwrap_or_default()))
        .and_then(|()| tls.flush())
        .with_context(|| format!("TLS with {id} at {addr}"))?;
    let mut raw = Vec::new();
    // The server may close without close_notify; what arrived is checked
    // against its Content-Length below.
    let _ = (&mut tls)
        .take(max.saturating_add(64 << 10))
        .read_to_end(&mut raw);
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
    let body = match len {
        Some(n) if body.len() >= n => &body[..n],
        Some(n) => bail!("{id}: answer cut short ({} of {n} bytes)", body.len()),
        None => body,
    };
    Ok((code, body.to_vec()))
}
