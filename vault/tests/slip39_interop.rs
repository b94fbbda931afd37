//! SLIP-39 interoperability, both ways, against the reference
//! implementation itself (PyPI `shamir-mnemonic`, pinned in
//! `.ci/install-tools`): mnemonics from `vault backup slip39` combine in the
//! reference, and mnemonics from the reference restore with
//! `vault restore slip39`; with and without passphrase, with and without
//! the extendable flag, with groups. The reference is driven through
//! `slip39_reference.py`. A missing python3 or module fails the test, it
//! never skips: run `bash .ci/install-tools`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The version pinned in `.ci/install-tools`.
const REFERENCE_VERSION: &str = "0.3.0";
const INSTALL_HINT: &str =
    "run `bash .ci/install-tools` (it installs the pinned SLIP-39 reference, shamir-mnemonic)";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slip39_reference.py")
}

fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): {INSTALL_HINT}"));
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Runs the reference script; panics with its stderr on failure.
fn reference(args: &[&str], stdin: &[u8]) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg(script()).args(args);
    let out = run(cmd, stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("No module named 'shamir_mnemonic'"),
        "the SLIP-39 reference implementation is not installed: {INSTALL_HINT}"
    );
    assert!(out.status.success(), "reference {args:?} failed: {err}");
    String::from_utf8(out.stdout).expect("utf-8")
}

fn require_reference() {
    let v = reference(&["version"], b"");
    assert_eq!(
        v.trim(),
        REFERENCE_VERSION,
        "shamir-mnemonic {} is installed, the tests pin {REFERENCE_VERSION}: {INSTALL_HINT}",
        v.trim()
    );
}

fn vault(args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vault"));
    cmd.args(args);
    run(cmd, stdin)
}

fn vault_ok(args: &[&str], stdin: &[u8]) -> Output {
    let out = vault(args, stdin);
    assert!(
        out.status.success(),
        "vault {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn secret(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(seed))
        .collect()
}

struct Case {
    name: &'static str,
    secret: Vec<u8>,
    passphrase: Option<&'static str>,
    extendable: bool,
    group_threshold: u8,
    /// (threshold, count) per group.
    groups: Vec<(u8, u8)>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "2-of-3, no passphrase",
            secret: secret(32, 1),
            passphrase: None,
            extendable: true,
            group_threshold: 1,
            groups: vec![(2, 3)],
        },
        Case {
            name: "3-of-5, passphrase, not extendable, 128 bits",
            secret: secret(16, 2),
            passphrase: Some("correct horse battery staple"),
            extendable: false,
            group_threshold: 1,
            groups: vec![(3, 5)],
        },
        Case {
            name: "2 of 3 groups, passphrase, 512 bits",
            secret: secret(64, 3),
            passphrase: Some("TREZOR"),
            extendable: true,
            group_threshold: 2,
            groups: vec![(1, 1), (2, 3), (3, 5)],
        },
        Case {
            name: "1-of-1, no passphrase, not extendable",
            secret: secret(20, 4),
            passphrase: None,
            extendable: false,
            group_threshold: 1,
            groups: vec![(1, 1)],
        },
    ]
}

fn group_arg(groups: &[(u8, u8)]) -> String {
    groups
        .iter()
        .map(|(t, n)| format!("{t}-of-{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The last `threshold` shares of the last `group_threshold` groups: a
/// minimal set, as the reference combines only exact thresholds.
fn minimal(case: &Case, by_group: &[Vec<String>]) -> Vec<String> {
    let start = by_group.len() - usize::from(case.group_threshold);
    by_group[start..]
        .iter()
        .zip(&case.groups[start..])
        .flat_map(|(g, (t, _))| g[g.len() - usize::from(*t)..].to_vec())
        .collect()
}

fn split_by_group(lines: &[String], case: &Case) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut it = lines.iter();
    for (_, n) in &case.groups {
        out.push(it.by_ref().take(usize::from(*n)).cloned().collect());
    }
    assert!(
        it.next().is_none(),
        "{}: more mnemonics than shares",
        case.name
    );
    out
}

#[test]
fn pqvault_mnemonics_combine_in_the_reference() {
    require_reference();
    let dir = tempfile::tempdir().unwrap();
    for case in cases() {
        let secret_file = dir.path().join("secret.bin");
        let pass_file = dir.path().join("pass.txt");
        fs::write(&secret_file, &case.secret).unwrap();
        let mut args: Vec<String> = vec!["backup".into(), "slip39".into()];
        if case.groups.len() == 1 {
            let (t, n) = case.groups[0];
            args.extend([
                "--threshold".into(),
                t.to_string(),
                "--shares".into(),
                n.to_string(),
            ]);
        } else {
            args.extend(["--group-threshold".into(), case.group_threshold.to_string()]);
            for (t, n) in &case.groups {
                args.extend(["--group".into(), format!("{t}-of-{n}")]);
            }
        }
        if let Some(p) = case.passphrase {
            fs::write(&pass_file, format!("{p}\n")).unwrap();
            args.extend([
                "--passphrase-file".into(),
                pass_file.to_str().unwrap().into(),
            ]);
        }
        if !case.extendable {
            args.push("--not-extendable".into());
        }
        args.push("-".into());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = vault_ok(&argv, &case.secret);
        let lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let by_group = split_by_group(&lines, &case);
        let pass_arg = if case.passphrase.is_some() {
            pass_file.to_str().unwrap()
        } else {
            ""
        };
        let combined = reference(
            &["combine", pass_arg],
            minimal(&case, &by_group).join("\n").as_bytes(),
        );
        assert_eq!(combined.trim(), hex::encode(&case.secret), "{}", case.name);
        if case.groups.len() > 1 {
            // Another choice of groups: the first ones.
            let first: Vec<String> = by_group[..usize::from(case.group_threshold)]
                .iter()
                .zip(&case.groups)
                .flat_map(|(g, (t, _))| g[..usize::from(*t)].to_vec())
                .collect();
            let combined = reference(&["combine", pass_arg], first.join("\n").as_bytes());
            assert_eq!(combined.trim(), hex::encode(&case.secret), "{}", case.name);
        }
        fs::remove_file(&secret_file).unwrap();
        let _ = fs::remove_file(&pass_file);
    }
}

#[test]
fn reference_mnemonics_restore_in_pqvault() {
    require_reference();
    let dir = tempfile::tempdir().unwrap();
    for (k, case) in cases().into_iter().enumerate() {
        let pass_file = dir.path().join(format!("pass-{k}.txt"));
        let pass_arg = match case.passphrase {
            Some(p) => {
                fs::write(&pass_file, p).unwrap();
                pass_file.to_str().unwrap().to_string()
            }
            None => String::new(),
        };
        let out = reference(
            &[
                "split",
                &case.group_threshold.to_string(),
                &group_arg(&case.groups),
                if case.extendable { "1" } else { "0" },
                &pass_arg,
            ],
            hex::encode(&case.secret).as_bytes(),
        );
        let lines: Vec<String> = out
            .lines()
            .map(|l| l.split_once('\t').expect("group\tmnemonic").1.to_string())
            .collect();
        let by_group = split_by_group(&lines, &case);

        // A minimal set from a file, and every share at once on stdin.
        let mnemonics = dir.path().join(format!("m-{k}.txt"));
        fs::write(&mnemonics, minimal(&case, &by_group).join("\n")).unwrap();
        let restored = dir.path().join(format!("r-{k}.bin"));
        let mut args = vec![
            "restore",
            "slip39",
            "--mnemonics",
            mnemonics.to_str().unwrap(),
            "--out",
            restored.to_str().unwrap(),
        ];
        if case.passphrase.is_some() {
            args.extend(["--passphrase-file", &pass_arg]);
        }
        vault_ok(&args, b"");
        assert_eq!(fs::read(&restored).unwrap(), case.secret, "{}", case.name);

        let mut args = vec!["restore", "slip39", "--out", "-"];
        if case.passphrase.is_some() {
            args.extend(["--passphrase-file", &pass_arg]);
        }
        let out = vault_ok(&args, lines.join("\n").as_bytes());
        assert_eq!(out.stdout, case.secret, "{}", case.name);
    }
}
