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
