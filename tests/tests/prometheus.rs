//! A real Prometheus server (Debian's package) scrapes three real
//! validators on loopback with the project's alert rules loaded.
//!
//! Checked: `promtool check metrics` accepts every `/metrics` exposition
//! without lint findings; every metric the alert rules and the Grafana
//! dashboard name is in the exposition; Prometheus sees every target up and
//! the health metrics with the expected `peer` and `instance` labels; every
//! rule evaluates without error and none is pending or firing on a healthy
//! mesh; every dashboard query runs; after a SIGKILL the target goes down
//! and `PqvaultValidatorDown` becomes pending for it alone.

use pqvault_tests::observability::{
    dashboard_exprs, families, is_exported, metric_names, promtool_check_metrics, repo_root,
    rule_exprs, Prometheus,
};
use pqvault_tests::Mesh;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::time::{Duration, Instant};

/// Metrics whose only label values come from configuration this mesh does
/// not have (artifact names from a trust policy), so they have no series
/// and a Prometheus client exports nothing for them. They are checked to be
/// defined in metrics.rs by observability.rs instead.
const NEED_ARTIFACTS: &[&str] = &["pqvault_artifact_replication_lag_seconds"];

/// Polls `f` until it returns `Some`, up to `timeout`.
fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn label<'a>(sample: &'a serde_json::Value, name: &str) -> &'a str {
    sample["metric"][name].as_str().unwrap_or("")
}

#[test]
fn prometheus_scrapes_the_mesh() {
    let mut mesh = Mesh::new(3, 2);
    mesh.start_all();
    let ids: Vec<String> = mesh.nodes.iter().map(|n| n.id.clone()).collect();
    let instances: Vec<String> = mesh.nodes.iter().map(|n| n.ops.to_string()).collect();

    // Every validator has probed both of its peers successfully.
    for (i, id) in ids.iter().enumerate() {
        let others: Vec<&String> = ids.iter().filter(|o| *o != id).collect();
        let probed = mesh.wait_metrics(i, Duration::from_secs(20), |m| {
            others.iter().all(|o| {
                m.contains(&format!(
                    "pqvault_probe_duration_seconds_count{{peer=\"{o}\"}}"
                )) && m.contains(&format!(
                    "pqvault_peer_state{{peer=\"{o}\",state=\"alive\"}} 1"
                ))
            })
        });
        assert!(probed, "{id} never probed its peers: {}", mesh.metrics(i));
    }

    // promtool accepts every exposition, with no lint finding.
    for (i, id) in ids.iter().enumerate() {
        let text = mesh.metrics(i);
        let (ok, out) = promtool_check_metrics(&text);
        assert!(ok, "promtool check metrics on {id}:\n{out}\n{text}");
        assert!(
            out.trim().is_empty(),
            "promtool lint findings on {id}:\n{out}"
        );
    }

    // Every metric the rules and the dashboard name is exported.
    let alerts_path = repo_root().join("observability/prometheus/alerts.yml");
    let rules = rule_exprs(&fs::read_to_string(&alerts_path).expect("alerts.yml"));
    let dashboard: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(repo_root().join("observability/grafana/pqvault.json"))
            .expect("dashboard"),
    )
    .expect("dashboard JSON");
    let panel_exprs = dashboard_exprs(&dashboard);
    let mut referenced = BTreeSet::new();
    for e in rules.iter().chain(panel_exprs.iter().map(|(_, e)| e)) {
        referenced.extend(metric_names(e));
    }
    let exported = families(&mesh.metrics(0));
    let missing: Vec<&String> = referenced
        .iter()
        .filter(|n| !is_exported(n, &exported) && !NEED_ARTIFACTS.contains(&n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "referenced but not in validator-1's /metrics: {missing:?}\nexported: {:?}",
        exported.keys().collect::<Vec<_>>()
    );

    // A real Prometheus with the rules, scraping the three ops ports.
    let dir = tempfile::tempdir().expect("tempdir");
    let targets: Vec<String> = instances.iter().map(|a| format!("\"{a}\"")).collect();
    assert!(
        instances.iter().all(|a| a.starts_with("127.0.0.1:")),
        "loopback targets only: {instances:?}"
    );
    let config = dir.path().join("prometheus.yml");
    fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             rule_files:\n  - \"{}\"\n\
             scrape_configs:\n  - job_name: pqvault\n    static_configs:\n      - targets: [{}]\n",
            alerts_path.display(),
            targets.join(", ")
        ),
    )
    .expect("write prometheus.yml");
    let prom = Prometheus::start(&config, dir.path());

    // Every target up.
    let up = wait_for(Duration::from_secs(30), || {
        let t = prom.api("/api/v1/targets?state=active");
        let active = t["data"]["activeTargets"].as_array()?.clone();
        let healthy: BTreeSet<String> = active
            .iter()
            .filter(|t| t["health"] == "up")
            .filter_map(|t| t["labels"]["instance"].as_str().map(String::from))
            .collect();
        (healthy == instances.iter().cloned().collect()).then_some(active)
    });
    assert!(
        up.is_some(),
        "targets not all up in 30 s: {}\nprometheus log:\n{}",
        prom.api("/api/v1/targets"),
        prom.log()
    );
    let up = prom.query("up{job=\"pqvault\"}");
    assert_eq!(up.len(), 3, "{up:?}");
    assert!(up.iter().all(|s| s["value"][1] == "1"), "{up:?}");

    // Health metrics with the expected labels: each instance scores its
    // two peers, never itself.
    let expected: BTreeSet<(String, String)> = instances
        .iter()
        .zip(&ids)
        .flat_map(|(inst, me)| {
            ids.iter()
                .filter(move |p| *p != me)
                .map(move |p| (inst.clone(), p.clone()))
        })
        .collect();
    // (Waits: a loaded machine can make a probe miss for a moment.)
    let value = |s: &serde_json::Value| -> f64 {
        s["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    for metric in ["pqvault_peer_health_score", "pqvault_peer_up"] {
        let seen = wait_for(Duration::from_secs(15), || {
            let r = prom.query(metric);
            let pairs: BTreeSet<(String, String)> = r
                .iter()
                .map(|s| (label(s, "instance").into(), label(s, "peer").into()))
                .collect();
            (pairs == expected && r.iter().all(|s| value(s) > 0.0)).then_some(r)
        })
        .unwrap_or_else(|| {
            panic!(
                "{metric}: want {expected:?} > 0, got {:?}",
                prom.query(metric)
            )
        });
        for s in &seen {
            assert_eq!(label(s, "job"), "pqvault", "{s}");
        }
    }
    let healthy = wait_for(Duration::from_secs(15), || {
        let r = prom.query("pqvault_peers_healthy");
        (r.len() == 3 && r.iter().all(|s| value(s) == 3.0)).then_some(())
    });
    assert!(
        healthy.is_some(),
        "pqvault_peers_healthy: {:?}",
        prom.query("pqvault_peers_healthy")
    );
    let vault = &mesh.vault_id;
    for (metric, want) in [
        ("pqvault_vault_threshold", "2"),
        ("pqvault_vault_shares", "3"),
    ] {
        let r = prom.query(metric);
        assert_eq!(r.len(), 3, "{metric}: {r:?}");
        for s in &r {
            assert_eq!(label(s, "vault"), vault, "{s}");
            assert_eq!(s["value"][1], want, "{s}");
        }
    }

    // Every rule loaded and evaluated without error. An evaluation is
    // stamped with its scheduled time, which can precede the scrape that
    // brought the data, so wait for two more rounds after the first whole
    // one: the last then surely saw the samples queried above.
    let rule_count = rules.len();
    let evaluations = || -> Option<Vec<String>> {
        let r = prom.api("/api/v1/rules");
        let all: Vec<serde_json::Value> = r["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let times: Vec<String> = all
            .iter()
            .filter(|r| r["health"] == "ok")
            .filter_map(|r| r["lastEvaluation"].as_str().map(String::from))
            .filter(|t| !t.starts_with("0001-"))
            .collect();
        (all.len() == rule_count && times.len() == rule_count).then_some(times)
    };
    let mut seen = wait_for(Duration::from_secs(15), evaluations)
        .unwrap_or_else(|| panic!("rules not all evaluated ok: {}", prom.api("/api/v1/rules")));
    for _ in 0..2 {
        let before = seen.clone();
        seen = wait_for(Duration::from_secs(15), || {
            evaluations().filter(|t| t.iter().zip(&before).all(|(a, b)| a != b))
        })
        .unwrap_or_else(|| panic!("rules not re-evaluated: {}", prom.api("/api/v1/rules")));
    }
    // A loaded machine can make a detector suspect a live peer for a
    // moment, so the detector-driven alerts may be pending; nothing else
    // may be, and nothing may fire.
    let alerts = prom.api("/api/v1/alerts");
    for a in alerts["data"]["alerts"].as_array().expect("alerts") {
        let name = a["labels"]["alertname"].as_str().unwrap_or("");
        let transient = ["PqvaultPeerDead", "PqvaultFewHealthyValidators"].contains(&name);
        assert!(
            transient && a["state"] == "pending",
            "alert on a healthy mesh: {a}\nvalidator-1 log:\n{}",
            mesh.log(0)
        );
    }

    // Every dashboard query is valid PromQL that Prometheus evaluates; the
    // probe-latency quantiles have a value for every peer.
    for (at, e) in &panel_exprs {
        let q = e
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        assert!(!q.contains('$'), "{at}: unknown variable in {e}");
        if q.starts_with("label_values(") {
            continue; // a Grafana variable function, not PromQL
        }
        prom.query(&q);
    }
    let p99 = "histogram_quantile(0.99, sum by (peer, le) (rate(pqvault_probe_duration_seconds_bucket[1m])))";
    let peers = wait_for(Duration::from_secs(10), || {
        let r = prom.query(p99);
        let peers: BTreeSet<String> = r
            .iter()
            .filter(|s| s["value"][1] != "NaN")
            .map(|s| label(s, "peer").to_string())
            .collect();
        (peers.len() == 3).then_some(r)
    });
    assert!(
        peers.is_some(),
        "p99 latency per peer: {:?}",
        prom.query(p99)
    );

    // Kill validator-3: its target goes down and PqvaultValidatorDown is
    // pending (it fires after 1 minute) for it alone. (Polled: on a loaded
    // machine a live target can miss one scrape.)
    mesh.kill9(2);
    let state = || {
        let down: BTreeMap<String, String> = prom.api("/api/v1/alerts")["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["labels"]["alertname"] == "PqvaultValidatorDown")
            .map(|a| {
                let inst = a["labels"]["instance"].as_str().unwrap_or("");
                (
                    inst.to_string(),
                    a["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let up: BTreeMap<String, String> = prom
            .query("up{job=\"pqvault\"}")
            .iter()
            .map(|s| {
                (
                    label(s, "instance").into(),
                    s["value"][1].as_str().unwrap_or("").into(),
                )
            })
            .collect();
        (down, up)
    };
    let want_down = BTreeMap::from([(instances[2].clone(), "pending".to_string())]);
    let want_up: BTreeMap<String, String> = instances
        .iter()
        .enumerate()
        .map(|(i, a)| (a.clone(), if i == 2 { "0" } else { "1" }.to_string()))
        .collect();
    let reached = wait_for(Duration::from_secs(20), || {
        let (down, up) = state();
        (down == want_down && up == want_up).then_some(())
    });
    assert!(
        reached.is_some(),
        "after killing validator-3 want alerts {want_down:?} and up {want_up:?}, got {:?}",
        state()
    );
    drop(prom);
}
