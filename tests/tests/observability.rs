//! The alert rules and the Grafana dashboard in `observability/`: promtool
//! checks and unit tests of the rules, the dashboard's structure, and every
//! metric either refers to being defined in `validator/src/metrics.rs`.
//! (That the running validator exports them is checked with real processes
//! in `prometheus.rs`.)

use pqvault_tests::observability::{dashboard_exprs, metric_names, rule_exprs, tool};
use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

fn obs(path: &str) -> PathBuf {
    pqvault_tests::observability::repo_root()
        .join("observability")
        .join(path)
}

fn read(path: &str) -> String {
    fs::read_to_string(obs(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new(tool("promtool"))
        .args(args)
        .current_dir(obs("prometheus"))
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("grafana/pqvault.json")).expect("dashboard is valid JSON")
}

/// Alert names defined in alerts.yml.
fn alert_names() -> Vec<String> {
    read("prometheus/alerts.yml")
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn rules_pass_promtool_check() {
    let out = promtool(&["check", "rules", "--lint=all", "--lint-fatal", "alerts.yml"]);
    let n = alert_names().len();
    assert!(
        out.contains(&format!("SUCCESS: {n} rules found")),
        "expected {n} rules:\n{out}"
    );
}

#[test]
fn rules_pass_their_unit_tests() {
    let out = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// Every alert has a unit-test case where it fires and one where it stays
/// silent.
#[test]
fn every_alert_is_tested_firing_and_silent() {
    let tests = read("prometheus/alerts.test.yml");
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let mut fires = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(name) = l.strip_prefix("alertname:") else {
            continue;
        };
        let exp = lines[i + 1..]
            .iter()
            .find(|l| l.starts_with("exp_alerts:"))
            .unwrap_or_else(|| panic!("no exp_alerts after alertname {name}"));
        let set = if exp.trim_end().ends_with("[]") {
            &mut silent
        } else {
            &mut fires
        };
        set.insert(name.trim().to_string());
    }
    let names = alert_names();
    assert!(names.len() >= 5, "alerts.yml defines {names:?}");
    for name in &names {
        assert!(fires.contains(name), "no test shows {name} firing");
        assert!(silent.contains(name), "no test shows {name} silent");
    }
    for name in fires.iter().chain(&silent) {
        assert!(names.contains(name), "alerts.test.yml tests unknown {name}");
    }
}

#[test]
fn dashboard_structure() {
    let d = dashboard();
    assert_eq!(d["uid"], "pqvault-mesh");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    let vars = d["templating"]["list"].as_array().expect("templating list");
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a Prometheus datasource variable"
    );
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    for p in panels {
        let title = p["title"].as_str().expect("panel title");
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate id at {title:?}"
        );
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {title:?} datasource"
        );
        assert_eq!(p["datasource"]["type"], "prometheus", "panel {title:?}");
        for k in ["h", "w", "x", "y"] {
            assert!(p["gridPos"][k].is_u64(), "panel {title:?} gridPos.{k}");
        }
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} has no target");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "panel {title:?}: target without expr"
            );
            assert!(
                refs.insert(t["refId"].as_str().expect("refId")),
                "panel {title:?}: duplicate refId"
            );
        }
        titles.push(title.to_lowercase());
    }
    for topic in [
        "mesh health",
        "health score",
        "probe latency",
        "epoch",
        "repairs",
        "artifact",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "no panel about {topic:?} in {titles:?}"
        );
    }
    let exprs: Vec<String> = dashboard_exprs(&d).into_iter().map(|(_, e)| e).collect();
    for q in ["histogram_quantile(0.5,", "histogram_quantile(0.99,"] {
        assert!(
            exprs
                .iter()
                .any(|e| e.contains(q) && e.contains("pqvault_probe_duration_seconds_bucket")),
            "probe latency {q}"
        );
    }
}

/// Every metric the rules and the dashboard name is registered in
/// validator/src/metrics.rs (as a name literal; histogram series by their
/// family name).
#[test]
fn referenced_metrics_are_defined() {
    let src = fs::read_to_string(
        pqvault_tests::observability::repo_root().join("validator/src/metrics.rs"),
    )
    .expect("metrics.rs");
    let mut names = BTreeSet::new();
    for e in rule_exprs(&read("prometheus/alerts.yml")) {
        names.extend(metric_names(&e));
    }
    for (_, e) in dashboard_exprs(&dashboard()) {
        names.extend(metric_names(&e));
    }
    assert!(names.len() >= 15, "too few names found: {names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| {
            let base = n
                .strip_suffix("_bucket")
                .or_else(|| n.strip_suffix("_sum"))
                .or_else(|| n.strip_suffix("_count"))
                .unwrap_or(n);
            !src.contains(&format!("\"{n}\"")) && !src.contains(&format!("\"{base}\""))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not defined in validator/src/metrics.rs: {missing:?}"
    );
}
