//! Observability test support: finding `prometheus` and `promtool`, running
//! a real Prometheus server on loopback, and reading the metric names that
//! the alert rules and the Grafana dashboard in `observability/` refer to.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Path of an external tool on `PATH`; panics (never skips) if it is missing.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found on PATH: run `bash .ci/install-tools`"))
}

/// Runs `promtool check metrics` on an exposition (stdin): (success, output).
pub fn promtool_check_metrics(exposition: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Names `pqvault_*` referred to in a PromQL expression (outside string
/// literals such as label values).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars().chain([' ']) {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        if is_ident(c) {
            word.push(c);
            continue;
        }
        if word.starts_with("pqvault_") {
            names.insert(std::mem::take(&mut word));
        }
        word.clear();
        if matches!(c, '"' | '\'' | '`') {
            quote = Some(c);
        }
    }
    names
}

/// Every PromQL expression of a Grafana dashboard: (where, expr) for each
/// panel target (rows' nested panels included) and each query variable.
pub fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((format!("panel {title:?}"), e.to_string()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if v["type"] == "query" {
            let name = v["name"].as_str().unwrap_or("?");
            let q = v["query"]["query"].as_str().or(v["query"].as_str());
            if let Some(q) = q {
                out.push((format!("variable {name:?}"), q.to_string()));
            }
        }
    }
    out
}

/// The `expr:` values of a rule file whose expressions are one line each
/// (observability/prometheus/alerts.yml keeps them so); panics on a block
/// scalar (`expr: |`), which this reader would miss.
pub fn rule_exprs(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|l| l.trim_start().strip_prefix("expr:"))
        .map(|e| {
            let e = e.trim();
            assert!(
                !e.starts_with('|') && !e.starts_with('>') && !e.is_empty(),
                "keep each rule's expr on one line: {e:?}"
            );
            e.to_string()
        })
        .collect()
}

/// Metric families of an exposition: name -> type (from `# TYPE`).
pub fn families(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

/// True if `name` is exported: a family of that name, or the `_bucket`,
/// `_sum` or `_count` series of a histogram (`_sum`/`_count` of a summary).
pub fn is_exported(name: &str, families: &BTreeMap<String, String>) -> bool {
    if families.contains_key(name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .and_then(|base| families.get(base))
            .is_some_and(|t| t == "histogram" || (t == "summary" && *suffix != "_bucket"))
    })
}

/// Percent-encodes a URL query value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A real Prometheus server on 127.0.0.1, killed when dropped.
pub struct Prometheus {
    /// Its HTTP address.
    pub addr: SocketAddr,
    log: PathBuf,
    child: Child,
}

impl Prometheus {
    /// Starts `prometheus` with `config`, storage under `dir` and the web
    /// listener on a free loopback port; waits until `/-/ready` answers.
    pub fn start(config: &Path, dir: &Path) -> Prometheus {
        let addr: SocketAddr = format!("127.0.0.1:{}", crate::free_port())
            .parse()
            .expect("addr");
        let log = dir.join("prometheus.log");
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("prometheus log"))
            .spawn()
            .expect("spawn prometheus");
        let mut p = Prometheus { addr, log, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited with {status}: {}", p.log());
            }
            if crate::http_get(addr, "/-/ready").is_some_and(|(c, _)| c == 200) {
                return p;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prometheus not ready in 30 s: {}", p.log());
    }

    /// Its log (stderr) so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GETs an API path and parses the JSON answer; panics unless its
    /// status is "success".
    pub fn api(&self, path: &str) -> serde_json::Value {
        let (code, body) = crate::http_get(self.addr, path)
            .unwrap_or_else(|| panic!("no answer from prometheus for {path}: {}", self.log()));
        let v: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: {code} not JSON ({e}): {body}"));
        assert_eq!(v["status"], "success", "{path}: {code} {body}");
        v
    }

    /// Runs an instant query; its `data.result` array.
    pub fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let v = self.api(&format!("/api/v1/query?query={}", url_encode(expr)));
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_promql() {
        let e = r#"histogram_quantile(0.99, sum by (peer, le) (rate(pqvault_probe_duration_seconds_bucket{x="pqvault_in \" string"}[5m]))) / on() xpqvault_no + pqvault_a:b"#;
        let n: Vec<String> = metric_names(e).into_iter().collect();
        assert_eq!(
            n,
            ["pqvault_a:b", "pqvault_probe_duration_seconds_bucket"],
            "names in string literals and inside other identifiers are not references"
        );
    }

    #[test]
    fn histogram_series_resolve_to_their_family() {
        let f = families(
            "# TYPE pqvault_h histogram\n# TYPE pqvault_c counter\n# TYPE pqvault_s summary\n",
        );
        assert!(is_exported("pqvault_h_bucket", &f));
        assert!(is_exported("pqvault_h_count", &f));
        assert!(is_exported("pqvault_s_sum", &f));
        assert!(!is_exported("pqvault_s_bucket", &f));
        assert!(!is_exported("pqvault_c_count", &f));
        assert!(!is_exported("pqvault_missing", &f));
    }

    #[test]
    fn one_line_rule_exprs_only() {
        assert_eq!(rule_exprs("  - alert: A\n    expr: up == 0\n"), ["up == 0"]);
        let r = std::panic::catch_unwind(|| rule_exprs("    expr: |\n      up == 0\n"));
        assert!(r.is_err(), "a block scalar must be refused");
    }
}
