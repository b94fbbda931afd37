//! Helpers for the deployment tests (`tests/tests/deploy.rs`,
//! `tests/tests/deploy_arithmetic.rs`): the pinned tools that
//! `bash .ci/install-tools` installs, found where pip puts them, and
//! kustomizations rendered with them. A missing tool fails a test, it never
//! skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What to do when a tool is missing.
pub const INSTALL_HINT: &str =
    "run `bash .ci/install-tools` (it installs the pinned deployment tools)";

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// PATH with the Python scripts directory (where pip puts kubectl,
/// kubernetes-validate, checkov and hadolint) in front.
fn tool_path() -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .unwrap_or_else(|e| panic!("python3 not found ({e}): {INSTALL_HINT}"));
    let scripts = String::from_utf8_lossy(&out.stdout).trim().to_string();
    format!("{scripts}:{}", std::env::var("PATH").unwrap_or_default())
}

/// A command for `name`, looked up on [`tool_path`].
pub fn tool(name: &str) -> Command {
    let mut c = Command::new(name);
    c.env("PATH", tool_path());
    c
}

/// Runs `cmd`; returns whether it succeeded and its stdout + stderr.
pub fn run(mut cmd: Command) -> (bool, String) {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): {INSTALL_HINT}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `kubectl kustomize DIR` into `out`.
pub fn render(dir: &Path, out: &Path) -> Result<(), String> {
    let mut c = tool("kubectl");
    c.arg("kustomize").arg(dir);
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl ({e}): {INSTALL_HINT}"));
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    std::fs::write(out, &o.stdout).expect("write rendered manifests");
    Ok(())
}

/// The objects of a kustomization as rendered by kubectl, as JSON (PyYAML
/// reads the YAML, as everywhere else in these tests).
pub fn render_objects(dir: &Path) -> Vec<serde_json::Value> {
    let work = tempfile::tempdir().expect("tempdir");
    let rendered = work.path().join("rendered.yaml");
    render(dir, &rendered).unwrap_or_else(|e| panic!("kustomize {}: {e}", dir.display()));
    let mut py = tool("python3");
    py.args([
        "-c",
        "import json, sys, yaml; json.dump([o for o in yaml.safe_load_all(open(sys.argv[1])) if o], sys.stdout)",
    ])
    .arg(&rendered);
    let (ok, text) = run(py);
    assert!(ok, "PyYAML: {text} ({INSTALL_HINT})");
    serde_json::from_str(&text).expect("JSON from PyYAML")
}
