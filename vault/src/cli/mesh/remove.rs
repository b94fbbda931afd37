//! `vault mesh remove`: the operator removes members from a mesh. Learns
//! the newest membership removal (`PQVN`) the validators hold over the
//! peer port (`GET /v1/membership`, verified from the operator's key),
//! signs the next version listing those already removed plus the new
//! ones (less any --readmit), and posts it to every validator (`POST
//! /v1/membership`); the ones it misses adopt it from their peers.

use super::client::{get, post_status, Conn};
use crate::cli::load_key;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use vault::fsio::{self, Mode};
use vault::membership::Removal;

/// Arguments of `vault mesh remove`.
#[derive(clap::Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    conn: Conn,
    /// Member ids to remove (with --validator flags and no local mesh, DIR
    /// may be left out).
    #[arg(value_name = "MEMBER")]
    members: Vec<String>,
    /// A removed member to let back (repeatable): left out of the new list.
    #[arg(long, value_name = "MEMBER")]
    readmit: Vec<String>,
    /// The operator's secret key, the validators' trusted signer
    /// [DIR/keys/operator.key].
    #[arg(long, value_name = "KEY")]
    signer: Option<PathBuf>,
    /// The operator's policy time, in seconds: a member dead this long is
    /// removed once a quorum of members, each on its own view, certifies it
    /// (0: never; [kept from the statement the validators hold]).
    #[arg(long, value_name = "SECONDS")]
    dead_after: Option<u32>,
    /// Version to sign [one above the highest a validator holds].
    #[arg(long, value_name = "N")]
    membership_version: Option<u32>,
    /// Also write the signed statement to this file (never overwriting).
    #[arg(long, value_name = "PQVN")]
    out: Option<PathBuf>,
    /// Sign and write --out only (MEMBER... is then the whole removed
    /// list, --membership-version is required); ask no validator.
    #[arg(long, requires = "out", requires = "membership_version")]
    offline: bool,
}

/// Runs `vault mesh remove`.
pub fn run(mut a: RemoveArgs) -> Result<()> {
    // `vault mesh remove --validator ID@ADDR MEMBER`: the first member
    // lands in DIR's place.
    if let Some(d) = a.conn.dir.take() {
        if d.is_dir() {
            a.conn.dir = Some(d);
        } else {
            a.members.insert(0, d.to_string_lossy().into_owned());
        }
    }
    if a.members.is_empty() && a.readmit.is_empty() && a.dead_after.is_none() {
        bail!("name at least one MEMBER to remove (or --readmit one, or set --dead-after)");
    }
    let signer = match (&a.signer, &a.conn.dir) {
        (Some(p), _) => p.clone(),
        (None, Some(d)) => d.join("keys/operator.key"),
        (None, None) => bail!("give --signer KEY or a local mesh DIR"),
    };
    let key = load_key(&signer)?;
    let operator = key.public().fingerprint();
    if a.offline {
        let version = a.membership_version.unwrap_or(1);
        let r = Removal {
            version,
            removed: a.members.iter().cloned().collect(),
            dead_after_s: a.dead_after.unwrap_or(0),
            readmitted: a.readmit.iter().map(|id| (id.clone(), version)).collect(),
        };
        return write_out(&r, &key, a.out.as_ref());
    }
    let (config, targets) = a.conn.resolve()?;
    // The newest statement any validator holds, verified from our key.
    let mut held = Removal::default();
    let mut answered = 0;
    for (id, addr) in &targets {
        match get(&config, id, *addr, "/v1/membership", 256 << 10) {
            Ok(b) => {
                answered += 1;
                match Removal::open(&b, &operator) {
                    Ok(r) if r.version > held.version => held = r,
                    Ok(_) => {}
                    Err(e) => eprintln!("{id}: its membership removal does not verify: {e}"),
                }
            }
            // 404: it holds none.
            Err(e) if format!("{e}").contains("HTTP 404") => answered += 1,
            Err(e) => eprintln!("{id}: {e:#}"),
        }
    }
    if answered == 0 {
        bail!("no validator answered: cannot learn the current version");
    }
    let version = match a.membership_version {
        Some(v) if v <= held.version => {
            bail!("--membership-version {v} is not above {}", held.version)
        }
        Some(v) => v,
        None => held
            .version
            .checked_add(1)
            .context("membership version exhausted")?,
    };
    let mut removed = held.removed.clone();
    let mut readmitted = held.readmitted.clone();
    removed.extend(a.members.iter().cloned());
    for id in &a.members {
        readmitted.remove(id);
    }
    for id in &a.readmit {
        // Also lets back a member removed by a certificate (a dead member
        // after the policy time), which this list does not name.
        if !removed.remove(id) {
            eprintln!(
                "{id} is not in the operator's list: readmitted in case a certificate removed it"
            );
        }
        readmitted.insert(id.clone(), version);
    }
    let r = Removal {
        version,
        removed,
        dead_after_s: a.dead_after.unwrap_or(held.dead_after_s),
        readmitted,
    };
    let bytes = r.sign(&key)?;
    if a.out.is_some() {
        write_out(&r, &key, a.out.as_ref())?;
    }
    let mut adopted = 0;
    for (id, addr) in &targets {
        match post_status(&config, id, *addr, "/v1/membership", &bytes) {
            Ok((200, _)) => {
                adopted += 1;
                println!("{id}: adopted version {version}");
            }
            // It took this version (or a newer one) from a peer meanwhile.
            Ok((409, body)) => {
                adopted += 1;
                println!(
                    "{id}: already holds it: {}",
                    String::from_utf8_lossy(&body).trim()
                );
            }
            Ok((code, body)) => println!(
                "{id}: refused (HTTP {code}): {}",
                String::from_utf8_lossy(&body).trim()
            ),
            Err(e) => println!("{id}: unreachable ({e:#}); it adopts the removal from a peer"),
        }
    }
    println!(
        "removed: {} (version {version})",
        r.removed.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    match r.dead_after_s {
        0 => println!("dead members are removed only by the operator"),
        s => println!("members dead for {s} s are removed once a quorum certifies it"),
    }
    if adopted == 0 {
        bail!("no validator adopted the removal");
    }
    Ok(())
}

fn write_out(
    r: &Removal,
    key: &vault::identity::SecretIdentity,
    out: Option<&PathBuf>,
) -> Result<()> {
    let Some(out) = out else {
        bail!("--offline needs --out");
    };
    fsio::write_atomic(out, &r.sign(key)?, Mode::Public, false)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} (version {})", out.display(), r.version);
    Ok(())
}
