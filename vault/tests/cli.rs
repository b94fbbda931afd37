//! The `vault` binary, run as a user would: exit codes, messages, files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn vault(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vault"))
        .args(args)
        .output()
        .expect("run vault")
}

fn ok(args: &[&str]) -> String {
    let o = vault(args);
    assert!(
        o.status.success(),
        "vault {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs a command that must fail; returns its error line. Runtime errors
/// exit 1 with exactly one line; usage errors (clap) exit 2 and may add a
/// "try --help" hint after the first line.
fn fails(args: &[&str]) -> String {
    let o = vault(args);
    let err = String::from_utf8(o.stderr).unwrap();
    match o.status.code() {
        Some(1) => assert_eq!(
            err.lines().count(),
            1,
            "expected one error line, got {err:?}"
        ),
        Some(2) => {}
        other => panic!("vault {args:?} exited with {other:?}: {err}"),
    }
    assert!(err.starts_with("error: "), "{err}");
    err.lines().next().unwrap_or_default().to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn quickstart_runs_and_refuses_a_used_directory() {
    let dir = tempfile::tempdir().unwrap();
    let qs = dir.path().join("qs");
    let out = ok(&["quickstart", p(&qs)]);
    assert!(out.contains("4 of 7"), "{out}");
    assert!(out.contains("recovered the secret from shards"), "{out}");
    assert!(
        out.contains("rejected shard 1 with one byte flipped"),
        "{out}"
    );
    assert_eq!(mode(&qs.join("keys/validator-1.key")), 0o600);
    assert!(qs.join("vault/manifest.pqvm").exists());
    let err = fails(&["quickstart", p(&qs)]);
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn operator_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = d.join("keys");
    let pubs = d.join("pubs");
    fs::create_dir(&pubs).unwrap();
    ok(&["keygen", "--name", "op", "--out", p(&d.join("op"))]);
    for i in 1..=5 {
        let out = ok(&["keygen", "--name", &format!("v{i}"), "--out", p(&keys)]);
        assert!(out.contains("fingerprint"));
        fs::copy(
            keys.join(format!("v{i}.pub")),
            pubs.join(format!("v{i}.pub")),
        )
        .unwrap();
    }
    // Keygen never silently replaces a key.
    let err = fails(&["keygen", "--name", "v1", "--out", p(&keys)]);
    assert!(err.contains("already exists"), "{err}");

    let secret = d.join("secret.bin");
    fs::write(&secret, b"my master secret").unwrap();
    let vault_dir = d.join("vault");
    let op_key = d.join("op/op.key");
    let op_pub = d.join("op/op.pub");
    let out = ok(&[
        "create",
        "--recipients-dir",
        p(&pubs),
        "--signer",
        p(&op_key),
        "--threshold",
        "3",
        "--secret-file",
        p(&secret),
        "--out",
        p(&vault_dir),
    ]);
    assert!(out.contains("threshold    3 of 5"), "{out}");
    let manifest = vault_dir.join("manifest.pqvm");
    let shard = |i: u8| vault_dir.join(format!("shard-{i:03}-v{i}.shard"));

    // Inspect every kind, text and JSON; a key's secret is never shown.
    assert!(ok(&["inspect", p(&manifest)]).contains("valid (Ed25519 and ML-DSA-65)"));
    let j: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "--json", p(&shard(2))])).unwrap();
    assert_eq!(j["kind"], "pqvault sealed shard");
    assert_eq!(j["index"], 2);
    let kj = ok(&["inspect", "--json", p(&keys.join("v1.key"))]);
    assert!(kj.contains("secret key material is not shown"));

    // Verify: pinned signer, hashes, and with a key the commitment.
    let out = ok(&[
        "verify",
        "--manifest",
        p(&manifest),
        "--trust",
        p(&op_pub),
        p(&shard(1)),
        p(&shard(2)),
    ]);
    assert_eq!(out.matches(" ok ").count(), 2, "{out}");
    ok(&[
        "verify",
        "--manifest",
        p(&manifest),
        "--key",
        p(&keys.join("v3.key")),
        p(&shard(3)),
    ]);
    let err = fails(&[
        "verify",
        "--manifest",
        p(&manifest),
        "--trust",
        p(&keys.join("v1.pub")),
    ]);
    assert!(err.contains("not by the trusted signer"), "{err}");

    // Recover without --out: checked, not written.
    let out = ok(&[
        "recover",
        "--manifest",
        p(&manifest),
        "--trust",
        p(&op_pub),
        "--keys-dir",
        p(&keys),
        "--shard",
        p(&shard(1)),
        "--shard",
        p(&shard(4)),
        "--shard",
        p(&shard(5)),
    ]);
    assert!(out.contains("secret not written"), "{out}");
    // With --out FILE: 0600 and exact bytes.
    let rec = d.join("recovered.bin");
    ok(&[
        "recover",
        "--manifest",
        p(&manifest),
        "--keys-dir",
        p(&keys),
        "--shard",
        p(&shard(2)),
        "--shard",
        p(&shard(3)),
        "--shard",
        p(&shard(5)),
        "--out",
        p(&rec),
    ]);
    assert_eq!(fs::read(&rec).unwrap(), b"my master secret");
    assert_eq!(mode(&rec), 0o600);
    // Never overwritten.
    let err = fails(&[
        "recover",
        "--manifest",
        p(&manifest),
        "--keys-dir",
        p(&keys),
        "--shard",
        p(&shard(2)),
        "--shard",
        p(&shard(3)),
        "--shard",
        p(&shard(5)),
        "--out",
        p(&rec),
    ]);
    assert!(err.contains("already exists"), "{err}");
    // --out - writes only the secret to stdout.
    let o = vault(&[
        "recover",
        "--manifest",
        p(&manifest),
        "--keys-dir",
        p(&keys),
        "--shard",
        p(&shard(1)),
        "--shard",
        p(&shard(2)),
        "--shard",
        p(&shard(3)),
        "--out",
        "-",
    ]);
    assert!(o.status.success());
    assert_eq!(o.stdout, b"my master secret");

    // Unseal to a share file (0600), then recover from share files + shards.
    let share4 = d.join("share4.pqvu");
    ok(&[
        "unseal",
        "--shard",
        p(&shard(4)),
        "--key",
        p(&keys.join("v4.key")),
        "--out",
        p(&share4),
        "--manifest",
        p(&manifest),
        "--trust",
        p(&op_pub),
    ]);
    assert_eq!(mode(&share4), 0o600);
    let rec2 = d.join("recovered2.bin");
    ok(&[
        "recover",
        "--manifest",
        p(&manifest),
        "--key",
        p(&keys.join("v1.key")),
        "--key",
        p(&keys.join("v2.key")),
        "--shard",
        p(&shard(1)),
        "--shard",
        p(&shard(2)),
        "--share",
        p(&share4),
        "--out",
        p(&rec2),
    ]);
    assert_eq!(fs::read(&rec2).unwrap(), b"my master secret");
    // Unsealing with the wrong key names the problem.
    let err = fails(&[
        "unseal",
        "--shard",
        p(&shard(4)),
        "--key",
        p(&keys.join("v1.key")),
        "--out",
        p(&d.join("x")),
    ]);
    assert!(err.contains("wrong key"), "{err}");

    // A tampered shard: verify and recover name it; recovery still works from the rest.
    let bad = d.join("bad.shard");
    let mut bytes = fs::read(shard(3)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&bad, &bytes).unwrap();
    let o = vault(&["verify", "--manifest", p(&manifest), p(&bad)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("was modified"));
    let out = ok(&[
        "recover",
        "--manifest",
        p(&manifest),
        "--keys-dir",
        p(&keys),
        "--shard",
        p(&bad),
        "--shard",
        p(&shard(1)),
        "--shard",
        p(&shard(2)),
        "--shard",
        p(&shard(4)),
    ]);
    assert!(
        out.contains("rejected") && out.contains("shard 3 was modified"),
        "{out}"
    );
    // Too few good shards: one line naming the count and the bad shard.
    let err = fails(&[
        "recover",
        "--manifest",
        p(&manifest),
        "--keys-dir",
        p(&keys),
        "--shard",
        p(&bad),
        "--shard",
        p(&shard(1)),
    ]);
    assert!(
        err.contains("only 1 good share(s), threshold is 3") && err.contains("was modified"),
        "{err}"
    );
}

#[test]
fn clear_errors_for_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["keygen", "--name", "op", "--out", p(d)]);
    ok(&["keygen", "--name", "a", "--out", p(d)]);
    ok(&["keygen", "--name", "b", "--out", p(d)]);
    let (op, a, b) = (d.join("op.key"), d.join("a.pub"), d.join("b.pub"));
    let base = [
        "create",
        "--signer",
        p(&op),
        "--recipient",
        p(&a),
        "--recipient",
        p(&b),
        "--out",
    ];
    let out_dir = d.join("v");
    let run = |threshold: &str| {
        let mut args = base.to_vec();
        args.extend([p(&out_dir), "--threshold", threshold]);
        fails(&args)
    };
    assert!(run("3").contains("exceeds the 2 shards"));
    assert!(run("1").contains("single shard"));
    assert!(run("auto:unanimous").contains("unknown threshold policy"));
    assert!(run("lots").contains("threshold"));

    let junk = d.join("junk");
    fs::write(&junk, b"hello world").unwrap();
    assert!(fails(&["inspect", p(&junk)]).contains("not a pqvault file"));
    // A public file where a key is expected.
    let err = fails(&[
        "unseal",
        "--shard",
        p(&junk),
        "--key",
        p(&d.join("a.pub")),
        "--out",
        p(&d.join("o")),
    ]);
    assert!(err.contains("not a pqvault"), "{err}");
    // A key file given as a recipient.
    let err = fails(&[
        "create",
        "--signer",
        p(&d.join("op.key")),
        "--recipient",
        p(&d.join("a.key")),
        "--recipient",
        p(&d.join("b.pub")),
        "--out",
        p(&out_dir),
    ]);
    assert!(err.contains("not a pqvault public identity"), "{err}");
    assert!(fails(&["inspect", p(&d.join("missing"))]).contains("cannot open"));
    // Nothing was written by the failed creates.
    assert!(!out_dir.join("manifest.pqvm").exists());
}

/// An unknown KEM suite id, in a shard, an identity or a manifest, is an
/// error that names the id and the file; nothing panics.
#[test]
fn unknown_suite_ids_are_named_with_their_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for n in ["op", "a", "b"] {
        ok(&["keygen", "--name", n, "--out", p(d)]);
    }
    let v = d.join("v");
    ok(&[
        "create",
        "--signer",
        p(&d.join("op.key")),
        "--recipient",
        p(&d.join("a.pub")),
        "--recipient",
        p(&d.join("b.pub")),
        "--threshold",
        "2",
        "--out",
        p(&v),
    ]);
    let shard = fs::read_dir(&v)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "shard"))
        .unwrap();
    let inspected = ok(&["inspect", p(&shard)]);
    assert!(
        inspected.contains("x25519-mlkem768-hqc192v5"),
        "{inspected}"
    );
    // Suite id at bytes 6..8 of PQVS, PQVM and (after the name) PQVI.
    let mut bytes = fs::read(&shard).unwrap();
    bytes[6..8].copy_from_slice(&9u16.to_be_bytes());
    let bad = d.join("suite9.shard");
    fs::write(&bad, &bytes).unwrap();
    for err in [
        fails(&["inspect", p(&bad)]),
        fails(&[
            "unseal",
            "--shard",
            p(&bad),
            "--key",
            p(&d.join("a.key")),
            "--out",
            p(&d.join("o")),
        ]),
    ] {
        assert!(err.contains("unknown KEM suite id 9"), "{err}");
        assert!(err.contains("suite9.shard"), "{err}");
    }
    let mut m = fs::read(v.join("manifest.pqvm")).unwrap();
    m[6..8].copy_from_slice(&9u16.to_be_bytes());
    let bad_m = d.join("suite9.pqvm");
    fs::write(&bad_m, &m).unwrap();
    let err = fails(&["inspect", p(&bad_m)]);
    assert!(
        err.contains("unknown KEM suite id 9") && err.contains("suite9.pqvm"),
        "{err}"
    );
    let mut id = fs::read(d.join("a.pub")).unwrap();
    let at = 6 + 4 + 1; // magic and version, name length (u32), name "a"
    id[at..at + 2].copy_from_slice(&9u16.to_be_bytes());
    let bad_id = d.join("suite9.pub");
    fs::write(&bad_id, &id).unwrap();
    let err = fails(&[
        "create",
        "--signer",
        p(&d.join("op.key")),
        "--recipient",
        p(&bad_id),
        "--recipient",
        p(&d.join("b.pub")),
        "--out",
        p(&d.join("w")),
    ]);
    assert!(
        err.contains("unknown KEM suite id 9") && err.contains("suite9.pub"),
        "{err}"
    );
}

/// `keygen --kem-suite x25519-mlkem768-hqc192r4` still makes suite-1
/// identities (spares for existing suite-1 vaults); a vault is sealed with
/// its recipients' one suite, and mixing suites is refused by name.
#[test]
fn suite_1_identities_still_work_and_suites_do_not_mix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["keygen", "--name", "op", "--out", p(d)]);
    let out = ok(&[
        "keygen",
        "--name",
        "old1",
        "--kem-suite",
        "x25519-mlkem768-hqc192r4",
        "--out",
        p(d),
    ]);
    assert!(out.contains("x25519-mlkem768-hqc192r4"), "{out}");
    ok(&[
        "keygen",
        "--name",
        "old2",
        "--kem-suite",
        "x25519-mlkem768-hqc192r4",
        "--out",
        p(d),
    ]);
    ok(&["keygen", "--name", "new", "--out", p(d)]);
    let err = fails(&[
        "keygen",
        "--name",
        "x",
        "--kem-suite",
        "rot13",
        "--out",
        p(d),
    ]);
    assert!(err.contains("unknown KEM suite"), "{err}");
    let v = d.join("v1");
    ok(&[
        "create",
        "--signer",
        p(&d.join("op.key")),
        "--recipient",
        p(&d.join("old1.pub")),
        "--recipient",
        p(&d.join("old2.pub")),
        "--threshold",
        "2",
        "--out",
        p(&v),
    ]);
    let m = ok(&["inspect", p(&v.join("manifest.pqvm"))]);
    assert!(m.contains("x25519-mlkem768-hqc192r4"), "{m}");
    let rec = ok(&[
        "recover",
        "--manifest",
        p(&v.join("manifest.pqvm")),
        "--keys-dir",
        p(d),
        "--shard",
        p(&v.join("shard-001-old1.shard")),
        "--shard",
        p(&v.join("shard-002-old2.shard")),
        "--out",
        p(&d.join("secret")),
    ]);
    assert!(rec.contains("matches"), "{rec}");
    let err = fails(&[
        "create",
        "--signer",
        p(&d.join("op.key")),
        "--recipient",
        p(&d.join("old1.pub")),
        "--recipient",
        p(&d.join("new.pub")),
        "--out",
        p(&d.join("mixed")),
    ]);
    assert!(err.contains("different KEM suites"), "{err}");
}

/// Attack 7 through the binary: holder 2 of a 3-of-5 vault in epoch 2
/// reported the commitment of a wrong share, so its share file passes its
/// own checks. `vault recover` with all five (k = t + 2) corrects it,
/// names it, and writes the right secret.
#[test]
fn recover_corrects_and_names_a_lying_holder() {
    use vault::identity::SecretIdentity;
    use vault::kem::hybrid::Suite;
    use vault::manifest::{Manifest, ManifestBody, ShardEntry, VaultId};
    use vault::share::{secret_commitment, ShareRecord, BLIND_LEN};

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let op = SecretIdentity::generate("op").unwrap();
    let op_pub = d.join("op.pub");
    fs::write(&op_pub, op.public().encode()).unwrap();
    let holders: Vec<SecretIdentity> = (1..=5)
        .map(|i| SecretIdentity::generate(&format!("v{i}")).unwrap())
        .collect();

    let secret = b"the liar is share 2";
    let mut payload = secret.to_vec();
    payload.extend_from_slice(&[0x42; BLIND_LEN]);
    let vault_id = VaultId::from_bytes([0x74; 16]);
    let mut records: Vec<ShareRecord> = vault::shamir::split(&payload, 3, 5)
        .unwrap()
        .into_iter()
        .map(|share| ShareRecord {
            vault_id,
            epoch: 2,
            threshold: 3,
            n: 5,
            share,
        })
        .collect();
    records[1].share.value[0] ^= 0x5a; // the lie, and its reported commitment below
    let body = ManifestBody {
        suite: Suite::DEFAULT,
        vault_id,
        epoch: 2,
        created_unix: 1,
        threshold: 3,
        n: 5,
        secret_len: secret.len() as u32,
        secret_commitment: secret_commitment(&vault_id, secret, &payload[secret.len()..]),
        shards: records
            .iter()
            .zip(&holders)
            .map(|(r, h)| ShardEntry {
                index: r.share.index,
                recipient: h.public().fingerprint(),
                recipient_name: h.public().name().to_string(),
                blob_hash: [0; 32],
                share_commitment: r.commitment(),
            })
            .collect(),
    };
    let manifest = d.join("manifest.pqvm");
    fs::write(
        &manifest,
        Manifest::sign(&body, op.public(), op.signing_key()).unwrap(),
    )
    .unwrap();
    let share = |i: usize| d.join(format!("share-{i}.pqvu"));
    for (i, r) in records.iter().enumerate() {
        fs::write(share(i + 1), &r.encode()[..]).unwrap();
    }

    let rec = d.join("recovered.bin");
    let mut args = vec![
        "recover".to_string(),
        "--manifest".into(),
        p(&manifest).into(),
        "--trust".into(),
        p(&op_pub).into(),
        "--out".into(),
        p(&rec).into(),
    ];
    for i in 1..=5 {
        args.extend(["--share".to_string(), p(&share(i)).to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ok(&args);
    assert!(
        out.contains(&format!(
            "rejected {}: share 2 disagrees with the other shares",
            p(&share(2))
        )),
        "{out}"
    );
    assert!(
        out.contains("corrected 1 wrong share(s) by decoding"),
        "{out}"
    );
    assert!(
        out.contains("from shares [1, 3, 4] (also good: [5])"),
        "{out}"
    );
    assert_eq!(fs::read(&rec).unwrap(), secret);

    // Four shares (k = t + 1) see the lie but cannot tell who told it: one
    // error line saying how many shares would, and nothing written.
    let rec2 = d.join("recovered2.bin");
    let paths: Vec<_> = (1..=4).map(share).collect();
    let mut four: Vec<&str> = args[..5].to_vec();
    four.extend(["--out", p(&rec2)]);
    for path in &paths {
        four.extend(["--share", p(path)]);
    }
    let err = fails(&four);
    assert!(
        err.contains("shares [1, 2, 3, 4] passed their own checks but do not decode")
            && err.contains("correcting 1 wrong share(s) needs at least 5 shares"),
        "{err}"
    );
    assert!(!rec2.exists());
}

// --- SLIP-39 paper backups (vault backup slip39 / vault restore slip39) ---

/// Runs vault with `stdin`; returns (success, stdout, stderr).
fn vault_stdin(args: &[&str], stdin: &[u8]) -> (bool, Vec<u8>, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_vault"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vault");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        o.stdout,
        String::from_utf8(o.stderr).unwrap(),
    )
}

/// `vault backup slip39 --threshold t --shares n` of `secret`: the mnemonics.
fn slip39_backup(secret: &Path, t: u8, n: u8, extra: &[&str]) -> Vec<String> {
    let (t, n) = (t.to_string(), n.to_string());
    let mut args = vec![
        "backup",
        "slip39",
        "--threshold",
        &t,
        "--shares",
        &n,
        "--secret-file",
        p(secret),
    ];
    args.extend_from_slice(extra);
    ok(&args).lines().map(String::from).collect()
}

#[test]
fn help_lists_the_slip39_commands() {
    let help = ok(&["--help"]);
    assert!(
        help.contains("backup") && help.contains("restore"),
        "{help}"
    );
    assert!(ok(&["backup", "--help"]).contains("slip39"));
    assert!(ok(&["restore", "--help"]).contains("slip39"));
    let help = ok(&["create", "--help"]);
    assert!(
        help.contains("--backup-slip39") && help.contains("--backup-out"),
        "{help}"
    );
}

#[test]
fn slip39_backup_restore_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret = d.join("secret.bin");
    let bytes: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(91) ^ 0x5c).collect();
    fs::write(&secret, &bytes).unwrap();

    // stdout: one mnemonic per line, nothing else; the summary on stderr.
    let (good, stdout, stderr) = vault_stdin(
        &["backup", "slip39", "--threshold", "2", "--shares", "3", "-"],
        &bytes,
    );
    assert!(good, "{stderr}");
    let lines: Vec<&str> = std::str::from_utf8(&stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines.iter().all(|l| l.split(' ').count() == 33),
        "{lines:?}"
    );
    assert!(
        stderr.contains("3 shares, any 2 restore the secret"),
        "{stderr}"
    );
    assert!(stderr.contains("extendable flag set"), "{stderr}");

    // Any two restore it, written 0600.
    let m = d.join("m.txt");
    fs::write(
        &m,
        format!("# shares 1 and 3\n{}\n\n{}\n", lines[0], lines[2]),
    )
    .unwrap();
    let out_file = d.join("restored.bin");
    let out = ok(&[
        "restore",
        "slip39",
        "--mnemonics",
        p(&m),
        "--out",
        p(&out_file),
    ]);
    assert!(
        out.contains("restored a 32-byte secret from 2 shares"),
        "{out}"
    );
    assert!(out.contains("restored without a passphrase"), "{out}");
    assert_eq!(fs::read(&out_file).unwrap(), bytes);
    assert_eq!(mode(&out_file), 0o600);
    // Never overwritten; printed only with --out -.
    let err = fails(&[
        "restore",
        "slip39",
        "--mnemonics",
        p(&m),
        "--out",
        p(&out_file),
    ]);
    assert!(err.contains("already exists"), "{err}");
    let (good, stdout, stderr) = vault_stdin(
        &["restore", "slip39", "--out", "-"],
        format!("{}\n{}\n", lines[1], lines[2]).as_bytes(),
    );
    assert!(good, "{stderr}");
    assert_eq!(stdout, bytes);

    // --out DIR: one 0600 file per share in a 0700 directory; restore reads
    // the directory; a second backup into it is refused.
    let paper = d.join("paper");
    let out = ok(&[
        "backup",
        "slip39",
        "--threshold",
        "3",
        "--shares",
        "5",
        "--secret-file",
        p(&secret),
        "--out",
        p(&paper),
    ]);
    assert!(out.contains("5 shares, any 3 restore the secret"), "{out}");
    assert_eq!(mode(&paper), 0o700);
    for i in 1..=5 {
        let f = paper.join(format!("slip39-share-{i:02}.txt"));
        assert_eq!(mode(&f), 0o600, "{}", f.display());
        assert!(out.contains(p(&f)), "{out}");
        assert_eq!(fs::read_to_string(&f).unwrap().lines().count(), 1);
    }
    let r = d.join("from-dir.bin");
    let out = ok(&[
        "restore",
        "slip39",
        "--mnemonics",
        p(&paper),
        "--out",
        p(&r),
    ]);
    assert!(out.contains("extra shares, checked to agree"), "{out}");
    assert_eq!(fs::read(&r).unwrap(), bytes);
    let err = fails(&[
        "backup",
        "slip39",
        "--threshold",
        "3",
        "--shares",
        "5",
        "--secret-file",
        p(&secret),
        "--out",
        p(&paper),
    ]);
    assert!(err.contains("already exists"), "{err}");

    // Groups: 2 of 3 groups.
    let out = ok(&[
        "backup",
        "slip39",
        "--group-threshold",
        "2",
        "--group",
        "1-of-1",
        "--group",
        "2-of-3",
        "--group",
        "3-of-5",
        "--secret-file",
        p(&secret),
    ]);
    let g: Vec<&str> = out.lines().collect();
    assert_eq!(g.len(), 9);
    let pick = d.join("groups.txt");
    fs::write(&pick, [g[0], g[2], g[3]].join("\n")).unwrap();
    let r = d.join("groups.bin");
    let out = ok(&["restore", "slip39", "--mnemonics", p(&pick), "--out", p(&r)]);
    assert!(out.contains("2 of 3 groups needed"), "{out}");
    assert_eq!(fs::read(&r).unwrap(), bytes);
}

#[test]
fn slip39_passphrase_wrong_gives_a_different_secret_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret = d.join("secret.bin");
    fs::write(&secret, [7u8; 16]).unwrap();
    let pass = d.join("pass.txt");
    fs::write(&pass, "correct horse\n").unwrap();
    let (good, stdout, stderr) = vault_stdin(
        &[
            "backup",
            "slip39",
            "--threshold",
            "2",
            "--shares",
            "2",
            "--passphrase-file",
            p(&pass),
            "--secret-file",
            p(&secret),
        ],
        b"",
    );
    assert!(good, "{stderr}");
    assert!(
        stderr.contains("a wrong one gives a different secret"),
        "{stderr}"
    );
    let m = d.join("m.txt");
    fs::write(&m, &stdout).unwrap();

    let right = d.join("right.bin");
    let out = ok(&[
        "restore",
        "slip39",
        "--mnemonics",
        p(&m),
        "--passphrase-file",
        p(&pass),
        "--out",
        p(&right),
    ]);
    assert!(out.contains("does not check the passphrase"), "{out}");
    assert_eq!(fs::read(&right).unwrap(), [7u8; 16]);

    // A wrong passphrase is no error: a different secret, and a warning.
    let wrong_pass = d.join("wrong.txt");
    fs::write(&wrong_pass, "correct horse!").unwrap();
    let wrong = d.join("wrong.bin");
    let out = ok(&[
        "restore",
        "slip39",
        "--mnemonics",
        p(&m),
        "--passphrase-file",
        p(&wrong_pass),
        "--out",
        p(&wrong),
    ]);
    assert!(
        out.contains("a wrong one restores a different secret"),
        "{out}"
    );
    assert_ne!(fs::read(&wrong).unwrap(), [7u8; 16]);
    assert_eq!(fs::read(&wrong).unwrap().len(), 16);
    // No passphrase at all: also different, and said.
    let none = d.join("none.bin");
    let out = ok(&["restore", "slip39", "--mnemonics", p(&m), "--out", p(&none)]);
    assert!(
        out.contains("if the backup was made with one, this is a different secret"),
        "{out}"
    );
    assert_ne!(fs::read(&none).unwrap(), [7u8; 16]);

    // SLIP-39 passphrases are printable ASCII.
    fs::write(&wrong_pass, "café").unwrap();
    let err = fails(&[
        "restore",
        "slip39",
        "--mnemonics",
        p(&m),
        "--passphrase-file",
        p(&wrong_pass),
        "--out",
        p(&d.join("x.bin")),
    ]);
    assert!(
        err.contains("passphrase character 4 is not printable ASCII"),
        "{err}"
    );
}

#[test]
fn slip39_bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret = d.join("secret.bin");
    fs::write(&secret, [0x42u8; 32]).unwrap();
    let a = slip39_backup(&secret, 2, 3, &[]);
    let b = slip39_backup(&secret, 2, 3, &[]);
    let restore = |name: &str, lines: &[&str]| {
        let m = d.join(name);
        fs::write(&m, lines.join("\n")).unwrap();
        fails(&[
            "restore",
            "slip39",
            "--mnemonics",
            p(&m),
            "--out",
            p(&d.join("out.bin")),
        ])
    };

    // A typo: share, file, line and word position, and the closest word.
    let words: Vec<&str> = a[1].split(' ').collect();
    let mut typo: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    let original = typo[9].clone();
    let mut chars: Vec<char> = original.chars().collect();
    chars[1] = if chars[1] == 'q' { 'x' } else { 'q' };
    typo[9] = chars.into_iter().collect();
    let err = restore("typo.txt", &[&a[0], &typo.join(" ")]);
    assert!(
        err.contains("share 2 (") && err.contains("typo.txt line 2)"),
        "{err}"
    );
    assert!(err.contains("word 10"), "{err}");
    assert!(
        err.contains(&format!("did you mean {original:?}?")),
        "{err}"
    );

    // A wrong but valid word: the checksum fails and names the word.
    let mut swapped: Vec<&str> = words.clone();
    swapped[14] = if words[14] == "zero" {
        "academic"
    } else {
        "zero"
    };
    let err = restore("checksum.txt", &[&a[0], &swapped.join(" ")]);
    assert!(
        err.contains("share 2 (") && err.contains("checksum does not match"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "word 15 is wrong if only one word is: the only word that fits there is {:?}",
            words[14]
        )),
        "{err}"
    );

    // Shares of two different backups.
    let err = restore("mixed.txt", &[&a[0], &b[1]]);
    assert!(
        err.contains("share 2 (") && err.contains("does not belong with share 1"),
        "{err}"
    );
    assert!(err.contains("identifiers differ"), "{err}");

    // Too few.
    let err = restore("few.txt", &[&a[2]]);
    assert!(
        err.contains("not enough shares: given 1 of the 2 shares needed: 1 more share needed"),
        "{err}"
    );

    // The same share twice.
    let err = restore("dup.txt", &[&a[0], &a[0]]);
    assert!(
        err.contains("share 2 (") && err.contains("repeats share 1"),
        "{err}"
    );

    // A missing word.
    let short: Vec<&str> = words[..32].to_vec();
    let err = restore("short.txt", &[&a[0], &short.join(" ")]);
    assert!(
        err.contains("has 32 words, a length no SLIP-39 share has"),
        "{err}"
    );

    // Secrets SLIP-39 cannot hold, and layouts it does not allow.
    fs::write(&secret, [1u8; 33]).unwrap();
    let err = fails(&[
        "backup",
        "slip39",
        "--threshold",
        "2",
        "--shares",
        "3",
        "--secret-file",
        p(&secret),
    ]);
    assert!(
        err.contains("33 bytes; SLIP-39 needs an even number of bytes"),
        "{err}"
    );
    assert!(err.contains("trailing newline"), "{err}");
    fs::write(&secret, [1u8; 14]).unwrap();
    let err = fails(&[
        "backup",
        "slip39",
        "--threshold",
        "2",
        "--shares",
        "3",
        "--secret-file",
        p(&secret),
    ]);
    assert!(err.contains("at least 16 bytes (128 bits)"), "{err}");
    fs::write(&secret, [1u8; 16]).unwrap();
    let err = fails(&[
        "backup",
        "slip39",
        "--threshold",
        "1",
        "--shares",
        "3",
        "--secret-file",
        p(&secret),
    ]);
    assert!(err.contains("threshold 1"), "{err}");
    let err = fails(&[
        "backup",
        "slip39",
        "--threshold",
        "4",
        "--shares",
        "3",
        "--secret-file",
        p(&secret),
    ]);
    assert!(err.contains("between 1 and the number of shares"), "{err}");
    let err = fails(&[
        "backup",
        "slip39",
        "--threshold",
        "2",
        "--shares",
        "17",
        "--secret-file",
        p(&secret),
    ]);
    assert!(err.contains("1 to 16 shares"), "{err}");
    let err = fails(&[
        "backup",
        "slip39",
        "--group",
        "2-of-3",
        "--group",
        "2-of-3",
        "--secret-file",
        p(&secret),
    ]);
    assert!(err.contains("--group-threshold"), "{err}");
    let err = fails(&[
        "backup",
        "slip39",
        "--group",
        "2of3",
        "--secret-file",
        p(&secret),
    ]);
    assert!(err.contains("is not T-of-N"), "{err}");
    let err = fails(&["backup", "slip39", "--threshold", "2", "--shares", "3"]);
    assert!(err.contains("no secret given"), "{err}");
}

#[test]
fn slip39_backup_at_create_and_rebuild_from_paper() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = d.join("keys");
    ok(&["keygen", "--name", "op", "--out", p(&d.join("op"))]);
    for i in 1..=3 {
        ok(&["keygen", "--name", &format!("v{i}"), "--out", p(&keys)]);
    }
    let pubs: Vec<String> = (1..=3)
        .map(|i| p(&keys.join(format!("v{i}.pub"))).to_string())
        .collect();
    let op_key = d.join("op/op.key");
    let create = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "create",
            "--signer",
            p(&op_key),
            "--threshold",
            "2",
            "--out",
            p(out),
        ];
        for pb in &pubs {
            args.extend(["--recipient", pb.as_str()]);
        }
        args.extend_from_slice(extra);
        ok(&args)
    };
    let recover = |vault_dir: &Path, out: &Path| {
        ok(&[
            "recover",
            "--manifest",
            p(&vault_dir.join("manifest.pqvm")),
            "--key",
            p(&keys.join("v1.key")),
            "--key",
            p(&keys.join("v3.key")),
            "--keys-dir",
            p(&keys),
            "--shard",
            p(&vault_dir.join("shard-001-v1.shard")),
            "--shard",
            p(&vault_dir.join("shard-003-v3.shard")),
            "--out",
            p(out),
        ])
    };

    // A generated secret, backed up on paper at creation.
    let v1 = d.join("vault1");
    let paper = d.join("paper");
    let out = create(
        &v1,
        &["--backup-slip39", "2-of-3", "--backup-out", p(&paper)],
    );
    assert!(
        out.contains("SLIP-39 backup: 3 shares, any 2 restore the secret"),
        "{out}"
    );
    for i in 1..=3 {
        assert_eq!(mode(&paper.join(format!("slip39-share-{i:02}.txt"))), 0o600);
    }
    // The paper backup holds the vault's secret.
    let from_shards = d.join("from-shards.bin");
    recover(&v1, &from_shards);
    let pick = d.join("two.txt");
    let two = [
        fs::read_to_string(paper.join("slip39-share-01.txt")).unwrap(),
        fs::read_to_string(paper.join("slip39-share-03.txt")).unwrap(),
    ]
    .concat();
    fs::write(&pick, two).unwrap();
    let from_paper = d.join("from-paper.bin");
    ok(&[
        "restore",
        "slip39",
        "--mnemonics",
        p(&pick),
        "--out",
        p(&from_paper),
    ]);
    assert_eq!(
        fs::read(&from_paper).unwrap(),
        fs::read(&from_shards).unwrap()
    );
    assert_eq!(fs::read(&from_paper).unwrap().len(), 32);

    // The mesh is gone: a new vault from the paper copy holds the same secret.
    let v2 = d.join("vault2");
    create(&v2, &["--secret-file", p(&from_paper)]);
    let again = d.join("again.bin");
    recover(&v2, &again);
    assert_eq!(fs::read(&again).unwrap(), fs::read(&from_paper).unwrap());

    // Refused before anything is written: a secret SLIP-39 cannot hold, the
    // backup in the vault's own directory.
    let odd = d.join("odd.bin");
    fs::write(&odd, [9u8; 21]).unwrap();
    let v3 = d.join("vault3");
    let mut args = vec![
        "create",
        "--signer",
        p(&op_key),
        "--threshold",
        "2",
        "--out",
        p(&v3),
    ];
    for pb in &pubs {
        args.extend(["--recipient", pb.as_str()]);
    }
    let paper3 = d.join("paper3");
    let mut odd_args = args.clone();
    odd_args.extend([
        "--secret-file",
        p(&odd),
        "--backup-slip39",
        "2-of-3",
        "--backup-out",
        p(&paper3),
    ]);
    let err = fails(&odd_args);
    assert!(
        err.contains("--backup-slip39") && err.contains("even number of bytes"),
        "{err}"
    );
    assert!(!v3.exists() && !paper3.exists());
    // The vault's own files are checked before the backup is written.
    let mut used = vec![
        "create",
        "--signer",
        p(&op_key),
        "--threshold",
        "2",
        "--out",
        p(&v1),
    ];
    for pb in &pubs {
        used.extend(["--recipient", pb.as_str()]);
    }
    used.extend(["--backup-slip39", "2-of-3", "--backup-out", p(&paper3)]);
    let err = fails(&used);
    assert!(err.contains("already exists"), "{err}");
    assert!(!paper3.exists());
    let mut same = args.clone();
    same.extend(["--backup-slip39", "2-of-3", "--backup-out", p(&v3)]);
    let err = fails(&same);
    assert!(err.contains("--backup-out must differ from --out"), "{err}");
    // --backup-slip39 without --backup-out is a usage error.
    let mut alone = args.clone();
    alone.extend(["--backup-slip39", "2-of-3"]);
    let o = vault(&alone);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--backup-out <DIR>"), "{err}");
}

/// `vault create` signs the operator's transition policy and says what it
/// survives; numbers that cannot hold are refused before anything is
/// written; `vault policy sign` makes a newer version.
#[test]
fn create_signs_a_transition_policy_and_refuses_one_that_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["keygen", "--name", "operator", "--out", p(&d.join("op"))]);
    for i in 1..=7 {
        let name = format!("v{i}");
        ok(&["keygen", "--name", &name, "--out", p(&d.join("keys"))]);
    }
    let mut args: Vec<String> = vec![
        "create".into(),
        "--signer".into(),
        p(&d.join("op/operator.key")).into(),
    ];
    for i in 1..=6 {
        args.push("--recipient".into());
        args.push(p(&d.join(format!("keys/v{i}.pub"))).into());
    }
    let with = |extra: &[&str], out: &str| {
        let mut a = args.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(["--out".to_string(), p(&d.join(out)).to_string()]);
        a
    };
    // 6 holders cannot tolerate 2 liars (n >= 3f + 1 = 7).
    let a = with(&["--byzantine", "2"], "bad");
    let err = fails(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("n >= 3f + 1"), "{err}");
    assert!(!d.join("bad").exists(), "nothing written");
    // A floor above t.
    let a = with(&["--floor", "5"], "bad2");
    let err = fails(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("floor 5"), "{err}");
    // The default: f = 1 for 6 holders, floor = t = 4, quorum 4.
    let a = with(&[], "vault");
    let out = ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.contains("f = 1 liar(s) tolerated, floor t >= 4"),
        "{out}"
    );
    assert!(out.contains("need 4 of 6 holders' votes"), "{out}");
    assert!(out.contains("heals 2 lost holder(s)"), "{out}");
    assert!(d.join("vault/policy.pqvl").exists());
    // A newer policy for the same vault: f = 0, floor 3.
    let out = ok(&[
        "policy",
        "sign",
        "--manifest",
        p(&d.join("vault/manifest.pqvm")),
        "--signer",
        p(&d.join("op/operator.key")),
        "--byzantine",
        "0",
        "--floor",
        "3",
        "--policy-version",
        "2",
        "--out",
        p(&d.join("policy-2.pqvl")),
    ]);
    assert!(out.contains("version 2"), "{out}");
    assert!(out.contains("crashes only"), "{out}");
}

/// An oversized or missing shard file is one bad candidate, named and
/// skipped; an error names its cause once.
#[test]
fn recover_skips_an_oversized_shard_and_errors_say_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["keygen", "--name", "operator", "--out", p(&d.join("op"))]);
    for i in 1..=3 {
        ok(&[
            "keygen",
            "--name",
            &format!("v{i}"),
            "--out",
            p(&d.join("keys")),
        ]);
    }
    ok(&[
        "create",
        "--signer",
        p(&d.join("op/operator.key")),
        "--recipients-dir",
        p(&d.join("keys")),
        "--threshold",
        "2",
        "--out",
        p(&d.join("vault")),
    ]);
    let big = d.join("huge.shard");
    fs::write(&big, vec![0u8; 3 << 20]).unwrap();
    let out = ok(&[
        "recover",
        "--manifest",
        p(&d.join("vault/manifest.pqvm")),
        "--keys-dir",
        p(&d.join("keys")),
        "--shard",
        p(&big),
        "--shard",
        p(&d.join("vault/shard-001-v1.shard")),
        "--shard",
        p(&d.join("nowhere.shard")),
        "--shard",
        p(&d.join("vault/shard-002-v2.shard")),
    ]);
    assert!(
        out.contains("rejected") && out.contains("huge.shard"),
        "{out}"
    );
    assert!(out.contains("nowhere.shard"), "{out}");
    assert!(out.contains("recovered 32-byte secret"), "{out}");
    let err = fails(&["inspect", p(&d.join("missing.pqvm"))]);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[test]
fn genesis_shards_are_sealed_to_initial_keys_and_open_with_them_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = d.join("keys");
    let out = ok(&[
        "keygen",
        "--name",
        "op",
        "--out",
        p(&d.join("op")),
        "--no-initial-key",
    ]);
    assert!(!out.contains("initial key"), "{out}");
    assert!(!d.join("op/op.ikey").exists());
    for i in 1..=3 {
        let out = ok(&["keygen", "--name", &format!("v{i}"), "--out", p(&keys)]);
        assert!(out.contains("initial key"), "{out}");
        assert_eq!(mode(&keys.join(format!("v{i}.ikey"))), 0o600);
    }
    let j: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "--json", p(&keys.join("v2.ipub"))])).unwrap();
    assert_eq!(j["kind"], "pqvault initial kem key");
    assert_eq!(j["identity"], "v2");
    let j: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "--json", p(&keys.join("v2.ikey"))])).unwrap();
    assert_eq!(j["note"], "secret key material is not shown");
    let vault_dir = d.join("vault");
    let out = ok(&[
        "create",
        "--recipient",
        p(&keys.join("v1.pub")),
        "--recipient",
        p(&keys.join("v2.pub")),
        "--recipient",
        p(&keys.join("v3.pub")),
        "--signer",
        p(&d.join("op/op.key")),
        "--threshold",
        "2",
        "--out",
        p(&vault_dir),
    ]);
    assert_eq!(
        out.matches("sealed to its initial KEM key").count(),
        3,
        "{out}"
    );
    let manifest = vault_dir.join("manifest.pqvm");
    let shard = |i: u8| vault_dir.join(format!("shard-{i:03}-v{i}.shard"));
    let j: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "--json", p(&shard(1))])).unwrap();
    assert!(
        j["sealed_to"].as_str().unwrap().starts_with("epoch key"),
        "{j}"
    );

    // The identity key no longer opens it; the initial key does.
    let err = fails(&[
        "unseal",
        "--shard",
        p(&shard(1)),
        "--key",
        p(&keys.join("v1.key")),
        "--out",
        p(&d.join("s1.pqvu")),
    ]);
    assert!(err.contains("initial key"), "{err}");
    ok(&[
        "unseal",
        "--manifest",
        p(&manifest),
        "--shard",
        p(&shard(1)),
        "--key",
        p(&keys.join("v1.ikey")),
        "--out",
        p(&d.join("s1.pqvu")),
    ]);
    // Offline recovery with the keys directory (identities and initial keys).
    let out = ok(&[
        "recover",
        "--manifest",
        p(&manifest),
        "--keys-dir",
        p(&keys),
        "--shard",
        p(&shard(2)),
        "--shard",
        p(&shard(3)),
    ]);
    assert!(out.contains("recovered 32-byte secret"), "{out}");
    // Without the initial keys, each shard is named as needing one.
    let ids = d.join("ids");
    fs::create_dir(&ids).unwrap();
    for i in 1..=3 {
        fs::copy(
            keys.join(format!("v{i}.key")),
            ids.join(format!("v{i}.key")),
        )
        .unwrap();
    }
    let err = fails(&[
        "recover",
        "--manifest",
        p(&manifest),
        "--keys-dir",
        p(&ids),
        "--shard",
        p(&shard(2)),
        "--shard",
        p(&shard(3)),
    ]);
    assert_eq!(
        err.matches("offer the validator's initial key").count(),
        2,
        "{err}"
    );

    // A statement another identity signed is refused by `create`, naming it.
    fs::copy(keys.join("v2.ipub"), keys.join("v1.ipub")).unwrap();
    let err = fails(&[
        "create",
        "--recipient",
        p(&keys.join("v1.pub")),
        "--recipient",
        p(&keys.join("v2.pub")),
        "--signer",
        p(&d.join("op/op.key")),
        "--threshold",
        "2",
        "--out",
        p(&d.join("vault2")),
    ]);
    assert!(err.contains("v1.ipub") && err.contains("refused"), "{err}");
    // `--initial-only` makes a fresh one for the existing identity.
    let out = ok(&[
        "keygen",
        "--name",
        "v1",
        "--out",
        p(&keys),
        "--initial-only",
    ]);
    assert!(out.contains("initial key"), "{out}");
    ok(&[
        "create",
        "--recipient",
        p(&keys.join("v1.pub")),
        "--recipient",
        p(&keys.join("v2.pub")),
        "--signer",
        p(&d.join("op/op.key")),
        "--threshold",
        "2",
        "--out",
        p(&d.join("vault2")),
    ]);
}
