//! The `validator` binary's command line: help text and clear start-up
//! errors. (Having an integration test here also makes `cargo test
//! --workspace` build the binary that the multi-process tests in `tests/`
//! run.)

use std::process::Command;

fn validator(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_validator"));
    cmd.args(args)
        .env_remove("PQVAULT_ID")
        .env_remove("PQVAULT_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("run validator");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn help_documents_every_override() {
    let (code, out, _) = validator(&["--help"], &[]);
    assert_eq!(code, 0);
    for needle in [
        "--config",
        "--id",
        "--data-dir",
        "--peer-listen",
        "--ops-listen",
        "--check",
        "PQVAULT_ID",
        "PQVAULT_DATA_DIR",
        "PQVAULT_PEER_LISTEN",
        "PQVAULT_OPS_LISTEN",
        "X25519MLKEM768",
        // The configuration reference follows the flags.
        "[probe]",
        "suspicion_max_ms",
        "[artifacts]",
        "election_timeout_max_ms",
    ] {
        assert!(out.contains(needle), "--help lacks {needle}:\n{out}");
    }
}

#[test]
fn bad_configuration_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    // No config at all: the first missing setting is named.
    let (code, _, err) = validator(&["--check"], &[]);
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "error: setting `id`: missing");

    // A typo in a key is named.
    let cfg = dir.path().join("v.toml");
    std::fs::write(&cfg, "id = \"validator-1\"\ndata_dri = \"/x\"\n").unwrap();
    let (code, _, err) = validator(&["--check", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("data_dri") && err.lines().count() <= 6,
        "{err}"
    );

    // An environment override that does not parse is named.
    let (code, _, err) = validator(&["--check"], &[("PQVAULT_OPS_LISTEN", "not-an-address")]);
    assert_eq!(code, 1);
    assert!(err.contains("PQVAULT_OPS_LISTEN"), "{err}");

    // An id that cannot be a certificate SAN is refused.
    let (code, _, err) = validator(&["--check", "--id", "Bad_Id"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("`id`"), "{err}");

    // Missing key files are named with their path.
    std::fs::write(
        &cfg,
        format!(
            "id = \"validator-1\"\ndata_dir = \"{d}/data\"\nidentity_key = \"{d}/missing.key\"\ntrusted_signer = \"{d}/op.pub\"\n\
             [tls]\nca = \"{d}/ca\"\ncert = \"{d}/c\"\nkey = \"{d}/k\"\n[listen]\npeer = \"127.0.0.1:0\"\nops = \"127.0.0.1:0\"\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let (code, _, err) = validator(&["--check", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.key"), "{err}");
}
