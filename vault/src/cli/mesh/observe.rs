//! Reading a local mesh from its validators' ops ports (`/readyz`,
//! `/metrics`) and application ports, and printing what they say.

use super::layout::Node;
use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

/// Largest response read from an ops or application port.
const MAX_BODY: u64 = 16 << 20;

/// A plain-HTTP client with short timeouts (everything is on loopback).
pub struct Http(ureq::Agent);

impl Default for Http {
    fn default() -> Self {
        Http(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_millis(500)))
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .into(),
        )
    }
}

/// A response: status and body.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

impl Http {
    /// `GET http://addr/path`; `None` if the port does not answer.
    pub fn get(&self, addr: SocketAddr, path: &str) -> Option<Reply> {
        let resp = self.0.get(&format!("http://{addr}{path}")).call().ok()?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        resp.into_body()
            .into_with_config()
            .limit(MAX_BODY)
            .reader()
            .take(MAX_BODY)
            .read_to_end(&mut body)
            .ok()?;
        Some(Reply { status, body })
    }

    /// Whether `node` answers 200 on `/readyz`.
    pub fn ready(&self, node: &Node) -> bool {
        self.get(node.ops, "/readyz")
            .is_some_and(|r| r.status == 200)
    }

    /// `node`'s metrics, if it answers.
    pub fn metrics(&self, node: &Node) -> Option<Metrics> {
        let r = self.get(node.ops, "/metrics")?;
        (r.status == 200).then(|| Metrics(String::from_utf8_lossy(&r.body).into_owned()))
    }
}

/// One scrape of a validator's `/metrics`.
pub struct Metrics(String);

impl Metrics {
    /// The first sample of `name` whose labels contain every `labels`
    /// pair, e.g. `[("peer", "validator-2")]`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples(name)
            .find(|(l, _)| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, v)| v)
    }

    /// Every sample of `name`: (label text, value).
    pub fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        self.0.lines().filter_map(move |l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            Some((labels, value.trim().parse().ok()?))
        })
    }

    /// Value of label `key` in a label text from [`Metrics::samples`].
    pub fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
        let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
        let len = labels[start..].find('"')?;
        Some(&labels[start..start + len])
    }
}

/// What one validator reports about itself and the vault.
pub struct View {
    /// Validator id.
    pub id: String,
    /// Answered its ops port.
    pub up: bool,
    /// Holds a share of the vault.
    pub holder: bool,
    /// Its current epoch of the vault (0 if it holds none).
    pub epoch: u64,
    /// (t, n) of that epoch.
    pub t_n: Option<(u64, u64)>,
    /// Validators alive in its failure detector, itself included.
    pub sees_alive: u64,
    /// Shares of the vault whose holder it sees dead.
    pub heal_pending: u64,
    /// Its role as it reports it (`pqvault_role`), if exported.
    pub role: Option<String>,
}

/// Scrapes every node; also returns each node's mean health score as its
/// peers see it (`pqvault_peer_health_score{peer=ID}`), if any peer scores it.
pub fn views(http: &Http, nodes: &[Node], vault_id: &str) -> (Vec<View>, Vec<Option<f64>>) {
    let scraped: Vec<Option<Metrics>> = nodes.iter().map(|n| http.metrics(n)).collect();
    let views = nodes
        .iter()
        .zip(&scraped)
        .map(|(n, m)| {
            let v = [("vault", vault_id)];
            let get = |name: &str, l: &[(&str, &str)]| m.as_ref().and_then(|m| m.get(name, l));
            let epoch = get("pqvault_vault_epoch", &v).unwrap_or(0.0) as u64;
            let t = get("pqvault_vault_threshold", &v);
            let nn = get("pqvault_vault_shares", &v);
            let role = m.as_ref().and_then(|m| {
                m.samples("pqvault_role")
                    .find(|(_, v)| *v == 1.0)
                    .and_then(|(l, _)| Metrics::label(l, "role").map(str::to_string))
            });
            View {
                id: n.id.clone(),
                up: m.is_some(),
                holder: get("pqvault_shards_held", &[]).unwrap_or(0.0) >= 1.0,
                epoch,
                t_n: t.zip(nn).map(|(t, n)| (t as u64, n as u64)),
                sees_alive: get("pqvault_peers_healthy", &[]).unwrap_or(0.0) as u64,
                heal_pending: get("pqvault_heal_pending", &v).unwrap_or(0.0) as u64,
                role,
            }
        })
        .collect();
    let scores = nodes
        .iter()
        .map(|n| {
            let s: Vec<f64> = scraped
                .iter()
                .flatten()
                .filter_map(|m| m.get("pqvault_peer_health_score", &[("peer", &n.id)]))
                .collect();
            (!s.is_empty()).then(|| s.iter().sum::<f64>() / s.len() as f64)
        })
        .collect();
    (views, scores)
}

/// Prints the mesh as a table: one row per validator.
pub fn print_table(nodes: &[Node], views: &[View], scores: &[Option<f64>]) {
    println!(
        "   {:<13} {:<8} {:<7} {:>5} {:>5} {:>10} {:>13}  ports (peer/ops/app)",
        "validator", "state", "role", "epoch", "t/n", "sees alive", "health score"
    );
    for ((n, v), s) in nodes.iter().zip(views).zip(scores) {
        let role = match (&v.role, v.up, v.holder) {
            (_, false, _) => "-".to_string(),
            (Some(r), _, _) => r.clone(),
            (None, _, true) => "holder".to_string(),
            (None, _, false) => "spare".to_string(),
        };
        let t_n = v
            .t_n
            .filter(|_| v.holder)
            .map_or("-".to_string(), |(t, n)| format!("{t}/{n}"));
        println!(
            "   {:<13} {:<8} {:<7} {:>5} {:>5} {:>10} {:>13}  {}/{}/{}",
            n.id,
            if v.up { "running" } else { "down" },
            role,
            if v.holder {
                v.epoch.to_string()
            } else {
                "-".into()
            },
            t_n,
            if v.up {
                format!("{}/{}", v.sees_alive, nodes.len())
            } else {
                "-".into()
            },
            s.map_or("-".to_string(), |s| format!("{s:.2}")),
            n.peer.port(),
            n.ops.port(),
            n.app.port()
        );
    }
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}
