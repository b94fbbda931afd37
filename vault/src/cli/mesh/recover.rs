//! `vault mesh recover`: the secret, recovered through the validators
//! (docs/protocol.md, "Recovery requests"). The current chain is fetched
//! and verified from the operator's signature (as `vault mesh fetch`); a
//! throwaway identity is generated; a request naming it, signed with the
//! operator's key (`PQVG`), goes to every validator; each holder answers
//! with its share sealed to the throwaway key (`PQVH`). The shares are
//! checked against the current manifest's commitments and decoded
//! (Berlekamp-Welch names wrong ones) by [`vault::recover`], and the secret
//! must match the manifest's secret commitment. Works after the validators'
//! keys rotated, which offline `vault recover` cannot.

use super::client::{post, Conn, Targets};
use super::fetch::{longest_chain, only_vault};
use anyhow::{anyhow, bail, Context, Result};
use rustls::ClientConfig;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vault::fsio::{self, Mode};
use vault::identity::SecretIdentity;
use vault::recover::{recover, Candidate};
use vault::recovery_request::{RecoveryAnswer, RecoveryRequest, MAX_ANSWER_LEN};
use vault::share::ShareRecord;
use zeroize::Zeroizing;

/// Arguments of `vault mesh recover`.
#[derive(clap::Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    conn: Conn,
    /// The vault (32 hex digits) [the only vault of DIR's `vault/`].
    #[arg(long)]
    vault: Option<String>,
    /// The operator's secret key: the vault's trusted signer, which signs
    /// the request and pins the chain [DIR/keys/operator.key]. (`--key` is
    /// the TLS key of the connection, as in `vault mesh status`.)
    #[arg(long, value_name = "OPERATOR.key")]
    signer: Option<PathBuf>,
    /// Where to write the secret: a new file (mode 0600), or `-` for stdout
    /// (the report then goes to stderr).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// What recovery through the mesh gave.
pub struct MeshRecovered {
    /// The secret, zeroized on drop.
    pub secret: Zeroizing<Vec<u8>>,
    /// The epoch recovered.
    pub epoch: u64,
    /// Validators that answered, with the share index each sent.
    pub answered: Vec<(String, u8)>,
    /// Validators that gave no usable answer, and why.
    pub refused: Vec<(String, String)>,
    /// Validators whose share was named wrong, and why.
    pub wrong: Vec<(String, String)>,
    /// Share indices the secret was interpolated from.
    pub used: Vec<u8>,
    /// Time from the first request to the decoded secret.
    pub took: Duration,
}

/// Runs `vault mesh recover`.
pub fn run(a: RecoverArgs) -> Result<()> {
    let key_path = match (&a.signer, &a.conn.dir) {
        (Some(k), _) => k.clone(),
        (None, Some(d)) => d.join("keys/operator.key"),
        (None, None) => bail!("give --signer (the operator's secret key) or a local mesh DIR"),
    };
    let operator = super::super::load_key(&key_path)?;
    let vault = match (&a.vault, &a.conn.dir) {
        (Some(v), _) => v.clone(),
        (None, Some(d)) => only_vault(d)?,
        (None, None) => bail!("give --vault ID or a local mesh DIR"),
    };
    let to_stdout = a.out.as_os_str() == "-";
    if !to_stdout && a.out.exists() {
        bail!("{} exists; give a new file", a.out.display());
    }
    let (config, targets) = a.conn.resolve()?;
    let mut report: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let r = recover_through_mesh(&config, &targets, &vault, &operator, &mut report)?;
    if to_stdout {
        let mut out = std::io::stdout().lock();
        out.write_all(&r.secret)?;
        out.flush()?;
    } else {
        fsio::write_atomic(&a.out, &r.secret, Mode::Secret, false)
            .with_context(|| format!("writing {}", a.out.display()))?;
        writeln!(report, "secret written to {} (mode 0600)", a.out.display())?;
    }
    Ok(())
}

/// Recovers `vault`'s secret through the validators in `targets`, signing
/// the request with `operator` (the vault's trusted signer), and reports
/// each step on `report`. Fails unless the secret decodes and matches the
/// current manifest's secret commitment.
pub fn recover_through_mesh(
    config: &Arc<ClientConfig>,
    targets: &Targets,
    vault: &str,
    operator: &SecretIdentity,
    report: &mut dyn Write,
) -> Result<MeshRecovered> {
    if vault.len() != 32 || !vault.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("vault {vault:?}: a vault id is 32 hex digits");
    }
    let chain = longest_chain(
        config,
        targets,
        vault,
        &operator.public().fingerprint(),
        report,
    )?;
    let manifest = chain.current;
    let body = manifest.body();
    let epoch = body.epoch;
    let one_time = SecretIdentity::generate("one-time-recovery")
        .context("cannot generate the one-time recovery key")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| anyhow!("the system clock is before 1970"))?
        .as_secs();
    let request = RecoveryRequest::sign(operator, body.vault_id, epoch, now, one_time.public())
        .context("cannot sign the recovery request")?;
    writeln!(
        report,
        "asking {} validators for their shares of epoch {epoch} (request {}, sealed to one-time key {})",
        targets.len(),
        hex::encode(&request.digest()[..8]),
        one_time.public().fingerprint().short()
    )?;
    let t = Instant::now();
    let path = format!("/v1/vaults/{vault}/recover");
    // One thread per validator: each is a TLS exchange and an HQC
    // decapsulation.
    let answers: Vec<(String, Result<ShareRecord>)> = std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|(id, addr)| {
                let (path, request, one_time) = (&path, &request, &one_time);
                let h = s.spawn(move || {
                    let bytes = post(
                        config,
                        id,
                        *addr,
                        path,
                        request.encode(),
                        MAX_ANSWER_LEN as u64,
                    )?;
                    let answer = RecoveryAnswer::decode(&bytes)?;
                    Ok(answer.open(request, one_time)?)
                });
                (id.clone(), h)
            })
            .collect();
        handles
            .into_iter()
            .map(|(id, h)| {
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("the request thread failed")));
                (id, r)
            })
            .collect()
    });
    let mut answered = Vec::new();
    let mut refused = Vec::new();
    let mut records: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::new();
    for (id, r) in answers {
        match r {
            Ok(rec) => {
                writeln!(report, "{id:<13} answered with share {}", rec.share.index)?;
                answered.push((id.clone(), rec.share.index));
                records.push((id, rec.encode()));
            }
            Err(e) => {
                let why = format!("{e:#}");
                writeln!(report, "{id:<13} no share: {why}")?;
                refused.push((id, why));
            }
        }
    }
    let candidates: Vec<Candidate<'_>> = records
        .iter()
        .map(|(id, bytes)| Candidate::Unsealed {
            source: id.clone(),
            bytes: &bytes[..],
        })
        .collect();
    let r = recover(&manifest, &candidates, &[])
        .with_context(|| format!("recovering epoch {epoch} of vault {vault}"))?;
    let took = t.elapsed();
    let wrong: Vec<(String, String)> = r
        .rejected
        .iter()
        .map(|bad| (bad.source.clone(), bad.reason.to_string()))
        .collect();
    for (id, why) in &wrong {
        writeln!(report, "{id:<13} named wrong: {why}")?;
    }
    writeln!(
        report,
        "recovered the {}-byte secret of vault {vault} epoch {epoch} from shares {:?} in {took:.1?}; \
         it matches the manifest's commitment{}",
        r.secret.len(),
        r.used,
        if wrong.is_empty() {
            String::new()
        } else {
            format!(" ({} holder(s) named wrong)", wrong.len())
        }
    )?;
    Ok(MeshRecovered {
        secret: r.secret,
        epoch,
        answered,
        refused,
        wrong,
        used: r.used,
        took,
    })
}
