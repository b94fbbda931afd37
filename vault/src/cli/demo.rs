//! `vault demo`: the whole mission from one command, with no external
//! services. Generates a local mesh (7 holders of a 4-of-7 vault with
//! `vault create`'s default policy, 3 spares), starts the validators,
//! SIGKILLs as many holders as that policy heals on its own, shows the
//! detection and the healing to a new certified epoch, recovers the secret
//! of the new epoch through its holders (`vault mesh recover`), carries a signed
//! quantized SNN artifact to every validator, and stops everything. It
//! checks its own outcome and fails (non-zero exit) if any step does not
//! hold.

use super::mesh::layout::{self, Generated, Node, Settings};
use super::mesh::observe::{self, sha256_hex, Http, View};
use super::mesh::supervise::{self, check_interrupt, Lifetime, Supervisor};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use vault::manifest::Manifest;

/// Arguments of `vault demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Empty (or missing) directory for the demo's files.
    #[arg(default_value = "pqvault-demo")]
    dir: PathBuf,
    /// Leave the mesh running at the end, to explore; stop it with
    /// `vault mesh down DIR`.
    #[arg(long)]
    keep: bool,
    /// The validator binary (default: $PQVAULT_VALIDATOR, else the one next
    /// to this vault executable).
    #[arg(long, value_name = "PATH")]
    validator_bin: Option<PathBuf>,
}

/// Holders of the demo's vault.
const HOLDERS: u8 = 7;
/// Spare validators.
const SPARES: u8 = 3;
/// Longest wait for any one phase before the demo gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often the demo polls the validators.
const POLL: Duration = Duration::from_millis(100);

/// Runs the demo; see the module docs.
pub fn run(a: Args) -> Result<()> {
    let t_start = Instant::now();
    let binary = supervise::validator_binary(a.validator_bin.as_deref())?;
    supervise::catch_interrupts()?;
    let settings = Settings::FAST;
    let mut phases: Vec<(&str, Duration)> = Vec::new();

    // 1. Files.
    let t = Instant::now();
    // Kept in memory only, to compare with what recovery returns.
    let secret = vault::create::generate_secret()?;
    let g = layout::generate(&a.dir, HOLDERS, SPARES, &settings, Some(&secret))?;
    let root = a.dir.canonicalize()?;
    phases.push(("generate", t.elapsed()));
    println!(
        "1. generated in {} ({:.1?}): a mesh CA, {} validator identities and TLS certificates, \
         an operator, a {}-of-{} vault sealed to validator-1..{} (its 32-byte secret is random), \
         configs for {} holders and {} spares",
        root.display(),
        t.elapsed(),
        g.nodes.len(),
        g.t,
        g.n,
        g.n,
        HOLDERS,
        SPARES
    );
    let (f, quorum, heals) = (g.policy.f, g.survives.quorum, g.survives.heals_lost);
    println!(
        "   default policy (vault create): f = {f} lying member tolerated; a transition needs \
         max(t, ceil((n+f+1)/2)) = max({}, ceil(({}+{f}+1)/2)) = {quorum} of {} holders' votes, \
         so the mesh heals {} - {quorum} = {heals} lost holders on its own",
        g.t, g.n, g.n, g.n
    );
    println!("   demo settings: {}", settings.describe());

    // 2. Start.
    let lifetime = if a.keep {
        Lifetime::Detached
    } else {
        Lifetime::Attached
    };
    let mut sup = Supervisor::new(binary, lifetime);
    let http = Http::default();
    let took = super::mesh::start_all(&mut sup, &g.nodes, &http, PHASE_TIMEOUT)?;
    phases.push(("start", took));
    println!(
        "2. started {} validator processes on 127.0.0.1; all ready on /readyz in {took:.1?}",
        g.nodes.len()
    );

    // 3. The mesh, live.
    let t = Instant::now();
    let all = g.nodes.len() as u64;
    wait_for("every validator to see all members alive", || {
        let (views, _) = observe::views(&http, &g.nodes, &g.vault_id);
        Ok(views.iter().all(|v| v.up && v.sees_alive == all))
    })?;
    phases.push(("mesh up", t.elapsed()));
    println!(
        "3. the mesh is live ({:.1?}): every validator sees all {all} alive; from each ops port's /metrics:",
        t.elapsed()
    );
    let (views, scores) = observe::views(&http, &g.nodes, &g.vault_id);
    observe::print_table(&g.nodes, &views, &scores);

    // 4. Kill as many holders as the policy heals.
    let victims: Vec<&Node> = g.nodes[usize::from(g.n) - usize::from(heals)..usize::from(g.n)]
        .iter()
        .collect();
    let names: Vec<&str> = victims.iter().map(|n| n.id.as_str()).collect();
    if victims.is_empty() {
        bail!("the policy heals no lost holder: nothing to show");
    }
    let t_kill = Instant::now();
    for v in &victims {
        sup.kill9(&v.id)?;
    }
    println!(
        "4. SIGKILLed {} ({heals} holders, the most the policy heals: {} survivors >= quorum {quorum})",
        names.join(" and "),
        g.n - heals
    );

    // 5. Detection.
    let survivors: Vec<Node> = g
        .nodes
        .iter()
        .filter(|n| !names.contains(&n.id.as_str()))
        .cloned()
        .collect();
    let mut first_detect: Option<(Duration, String)> = None;
    wait_for("every survivor to declare the killed holders dead", || {
        let mut all_dead = true;
        for n in &survivors {
            let m = http.metrics(n);
            let dead = names.iter().all(|v| {
                m.as_ref()
                    .and_then(|m| m.get("pqvault_peer_state", &[("peer", v), ("state", "dead")]))
                    == Some(1.0)
            });
            if dead && first_detect.is_none() {
                first_detect = Some((t_kill.elapsed(), n.id.clone()));
            }
            all_dead &= dead;
        }
        Ok(all_dead)
    })?;
    let detected = t_kill.elapsed();
    phases.push(("detect", detected));
    if let Some((d, by)) = &first_detect {
        println!(
            "5. detected: {by} declared both dead {d:.1?} after the kill; every survivor by {detected:.1?} \
             (SWIM probes with Lifeguard's confirmed suspicion)"
        );
    }

    // 6. Healing to a new certified epoch.
    let heal = watch_healing(&http, &g, &survivors, &settings, t_kill)?;
    phases.push(("heal", heal.done.saturating_sub(detected)));
    println!(
        "6. healed (grace {} ms, then proposals certified by {quorum} of {} holders):",
        settings.grace_ms, g.n
    );
    for e in &heal.epochs {
        println!("   {e}");
    }
    println!(
        "   epoch {} certified on all {} holders {:.1?} after the kill",
        heal.epoch,
        heal.holders.len(),
        heal.done
    );
    let (views, scores) = observe::views(&http, &survivors, &g.vault_id);
    observe::print_table(&survivors, &views, &scores);
    if heal.epoch < 2 {
        bail!("the mesh did not move to a new epoch");
    }

    // 7. Recovery from the new epoch.
    let t = Instant::now();
    recover_new_epoch(&root, &g, &heal, &secret)?;
    phases.push(("recover", t.elapsed()));

    // 8. An artifact carried to every validator.
    let t = Instant::now();
    carry_artifact(&root, &http, &survivors)?;
    phases.push(("artifact", t.elapsed()));

    // 9. Stop, or keep.
    let t = Instant::now();
    if a.keep {
        sup.release();
        println!(
            "9. left {} validators running (logs in {}/validator-K/validator.log); stop them with:\n   vault mesh down {}",
            survivors.len(),
            root.display(),
            root.display()
        );
    } else {
        sup.stop_all(Duration::from_secs(5));
        phases.push(("stop", t.elapsed()));
        println!(
            "9. stopped every validator ({:.1?}); files stay in {}",
            t.elapsed(),
            root.display()
        );
    }
    let list: Vec<String> = phases
        .iter()
        .map(|(p, d)| format!("{p} {:.1}s", d.as_secs_f64()))
        .collect();
    println!(
        "demo passed in {:.1}s: {}",
        t_start.elapsed().as_secs_f64(),
        list.join(", ")
    );
    Ok(())
}

/// Polls `cond` every [`POLL`] until it holds; fails after
/// [`PHASE_TIMEOUT`] naming `what`, or on Ctrl-C.
fn wait_for(what: &str, mut cond: impl FnMut() -> Result<bool>) -> Result<()> {
    let t0 = Instant::now();
    loop {
        check_interrupt()?;
        if cond()? {
            return Ok(());
        }
        if t0.elapsed() > PHASE_TIMEOUT {
            bail!("timed out after {PHASE_TIMEOUT:?} waiting for {what}");
        }
        supervise::sleep(POLL)?;
    }
}

/// Where healing ended.
struct Healed {
    /// The settled epoch.
    epoch: u64,
    /// Its holders (ids).
    holders: Vec<String>,
    /// Its holders that were spares at epoch 1 (the rebuilt shares).
    rebuilt: Vec<String>,
    /// One line per epoch after the first, from the chain.
    epochs: Vec<String>,
    /// Kill to settled.
    done: Duration,
}

/// Watches the survivors until every share of the vault is held again at
/// one certified epoch (and, with refresh on, refreshed after the repair).
fn watch_healing(
    http: &Http,
    g: &Generated,
    survivors: &[Node],
    settings: &Settings,
    t_kill: Instant,
) -> Result<Healed> {
    let mut first_seen: BTreeMap<u64, Duration> = BTreeMap::new();
    let t0 = Instant::now();
    loop {
        check_interrupt()?;
        let (views, _) = observe::views(http, survivors, &g.vault_id);
        for v in views.iter().filter(|v| v.holder) {
            first_seen
                .entry(v.epoch)
                .or_insert_with(|| t_kill.elapsed());
        }
        if let Some(h) = settled(g, survivors, &views, settings, &first_seen) {
            return Ok(Healed {
                done: t_kill.elapsed(),
                ..h
            });
        }
        if t0.elapsed() > PHASE_TIMEOUT {
            let log: Vec<String> = survivors
                .iter()
                .map(|n| format!("{}: {}", n.id, super::mesh::log_tail(&n.log(), 3)))
                .collect();
            bail!(
                "the mesh did not heal within {PHASE_TIMEOUT:?}; last log lines:\n{}",
                log.join("\n")
            );
        }
        supervise::sleep(POLL)?;
    }
}

/// Whether the survivors agree on a healed epoch; if so, what it is.
fn settled(
    g: &Generated,
    survivors: &[Node],
    views: &[View],
    settings: &Settings,
    first_seen: &BTreeMap<u64, Duration>,
) -> Option<Healed> {
    let holders: Vec<&View> = views.iter().filter(|v| v.up && v.holder).collect();
    let epoch = holders.first()?.epoch;
    let (_, n) = holders.first()?.t_n?;
    if epoch < 2
        || holders.len() as u64 != n
        || holders.iter().any(|v| v.epoch != epoch)
        || views.iter().any(|v| v.heal_pending != 0)
    {
        return None;
    }
    let node = survivors.iter().find(|s| s.id == holders[0].id)?;
    let chain = read_chain(&epoch_dir(node, &g.vault_id, epoch), epoch).ok()?;
    let mut lines = Vec::new();
    let mut last_kind = "";
    for k in 2..=epoch {
        let (prev, cur) = (chain.get(&(k - 1))?, chain.get(&k)?);
        let gone: Vec<&String> = prev.1.difference(&cur.1).collect();
        let came: Vec<&String> = cur.1.difference(&prev.1).collect();
        let at = first_seen
            .get(&k)
            .map_or("-".to_string(), |d| format!("{:.1?}", d));
        let (t, n) = cur.0;
        last_kind = if gone.is_empty() && came.is_empty() {
            "refresh"
        } else {
            "repair"
        };
        let what = if last_kind == "refresh" {
            "refresh: the same holders re-shared to a fresh polynomial, so older shares are useless"
                .to_string()
        } else {
            format!(
                "repair: the shares of {} rebuilt on spare(s) {} without the secret being rebuilt",
                join(&gone),
                join(&came)
            )
        };
        lines.push(format!(
            "epoch {k} ({t}-of-{n}) first seen {at} after the kill: {what}"
        ));
    }
    if settings.refresh && last_kind != "refresh" {
        return None;
    }
    let spares: BTreeSet<&str> = g
        .nodes
        .iter()
        .filter(|n| !n.holder)
        .map(|n| n.id.as_str())
        .collect();
    let ids: Vec<String> = holders.iter().map(|v| v.id.clone()).collect();
    Some(Healed {
        epoch,
        rebuilt: ids
            .iter()
            .filter(|i| spares.contains(i.as_str()))
            .cloned()
            .collect(),
        holders: ids,
        epochs: lines,
        done: Duration::ZERO,
    })
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// `node`'s directory of `vault` at `epoch` (shard, manifest and chain).
fn epoch_dir(node: &Node, vault: &str, epoch: u64) -> PathBuf {
    node.dir.join(format!("data/vaults/{vault}/epoch-{epoch}"))
}

/// One epoch of the chain: its (t, n) and its holders' names.
type EpochHolders = ((u8, u8), BTreeSet<String>);

/// Each epoch's (t, n) and holder names, from the anchor and the steps
/// in an epoch directory (decoded for display; recovery verifies them).
fn read_chain(dir: &Path, epoch: u64) -> Result<BTreeMap<u64, EpochHolders>> {
    let mut out = BTreeMap::new();
    let mut files = vec![dir.join("anchor.pqvm")];
    files.extend((2..=epoch).map(|k| dir.join(format!("step-{k}.pqvm"))));
    for f in files {
        let m = Manifest::decode(&super::read(&f, super::MAX_SMALL_FILE)?)?;
        let b = m.body();
        out.insert(
            b.epoch,
            (
                (b.threshold, b.n),
                b.shards.iter().map(|s| s.recipient_name.clone()).collect(),
            ),
        );
    }
    Ok(out)
}

/// The path of this `vault` executable (for the CLI steps it runs).
fn vault_exe() -> Result<PathBuf> {
    std::env::current_exe().context("cannot locate the vault executable")
}

/// Shows `args` as the command a reader would type.
fn shown(args: &[String], root: &Path) -> String {
    let r = format!("{}/", root.display());
    let words: Vec<String> = args.iter().map(|a| a.replace(&r, "")).collect();
    format!("vault {}", words.join(" "))
}

/// Recovers the secret of the new epoch through its holders, as `vault
/// mesh recover DIR` does (a request signed with the operator's key, each
/// share sealed to a one-time key), and compares it with the original.
fn recover_new_epoch(
    root: &Path,
    g: &Generated,
    heal: &Healed,
    secret: &zeroize::Zeroizing<Vec<u8>>,
) -> Result<()> {
    let (config, _) = super::mesh::client::Conn::local(root).resolve()?;
    let targets: Vec<(String, std::net::SocketAddr)> = g
        .nodes
        .iter()
        .filter(|n| heal.holders.contains(&n.id))
        .map(|n| (n.id.clone(), n.peer))
        .collect();
    let operator = super::load_key(&g.keys.join("operator.key"))?;
    let mut report = Vec::new();
    let r = super::mesh::recover::recover_through_mesh(
        &config,
        &targets,
        &g.vault_id,
        &operator,
        &mut report,
    )
    .context("recovery through the mesh")?;
    println!(
        "7. recovered the secret of epoch {} through its {} holders ({:.1?}; rebuilt on spares: {}): \
         a request signed with the operator's key, each share sealed to a one-time key, checked \
         against the manifest proven from the operator's signature; shares {:?} combined:\n   \
         (cd {} && vault mesh recover . --out secret.bin)",
        r.epoch,
        r.answered.len(),
        r.took,
        join(&heal.rebuilt.iter().collect::<Vec<_>>()),
        r.used,
        root.display()
    );
    for line in String::from_utf8_lossy(&report).lines() {
        println!("   {line}");
    }
    if !r.refused.is_empty() || !r.wrong.is_empty() {
        bail!(
            "honest holders failed the recovery: {} gave no share, {} were named wrong",
            r.refused.len(),
            r.wrong.len()
        );
    }
    if r.epoch != heal.epoch {
        bail!(
            "recovered epoch {}, but the mesh settled at epoch {}",
            r.epoch,
            heal.epoch
        );
    }
    let equal = r.secret.len() == secret.len() && bool::from(r.secret.ct_eq(secret));
    if !equal {
        bail!(
            "the secret recovered from epoch {} differs from the original",
            heal.epoch
        );
    }
    println!("   it equals the original secret (compared in constant time; never printed)");
    Ok(())
}

/// Packs and signs a small quantized SNN, pushes it to one validator, and
/// waits until every running validator serves the same bytes.
fn carry_artifact(root: &Path, http: &Http, running: &[Node]) -> Result<()> {
    let (name, version) = ("snn-demo", "1.0.0");
    let src = root.join("artifact-src");
    vault::fsio::create_private_dir(&src)?;
    let net = vault::artifact::testnet::small(8);
    std::fs::write(src.join("net.safetensors"), &net.safetensors)?;
    std::fs::write(
        src.join("meta.toml"),
        vault::artifact::testnet::meta_toml(name, version, &net.quant),
    )?;
    let dir = root.join("artifact");
    let s = |p: &Path| p.display().to_string();
    let pack = vec![
        "artifact".to_string(),
        "pack".into(),
        "--tensors".into(),
        s(&src.join("net.safetensors")),
        "--meta".into(),
        s(&src.join("meta.toml")),
        "--sign".into(),
        s(&root.join("keys/publisher.key")),
        "--out".into(),
        s(&dir),
    ];
    let to = running
        .first()
        .ok_or_else(|| anyhow!("no validator running"))?;
    let push = vec![
        "artifact".to_string(),
        "push".into(),
        "--to".into(),
        to.app.to_string(),
        s(&dir),
    ];
    let t = Instant::now();
    for args in [&pack, &push] {
        check_interrupt()?;
        let out = Command::new(vault_exe()?)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("cannot run vault artifact")?;
        if !out.status.success() {
            bail!(
                "{} failed: {}",
                shown(args, root),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let want = sha256_hex(&std::fs::read(dir.join("payload.safetensors"))?);
    println!(
        "8. packed, signed and pushed a quantized SNN ({} bytes, int8 LIF layers, signed by keys/publisher.key) to {} ({:.1?}):\n   {}\n   {}",
        net.safetensors.len(),
        to.id,
        t.elapsed(),
        shown(&pack, root),
        shown(&push, root)
    );
    let path = format!("/v1/artifacts/{name}/{version}");
    let mut served: BTreeMap<usize, String> = BTreeMap::new();
    wait_for("every validator to serve the artifact", || {
        for (i, n) in running.iter().enumerate() {
            if served.contains_key(&i) {
                continue;
            }
            if let Some(r) = http.get(n.app, &path) {
                if r.status == 200 {
                    served.insert(i, sha256_hex(&r.body));
                }
            }
        }
        Ok(served.len() == running.len())
    })?;
    println!(
        "   every running validator serves it (GET http://<app port>{path}) within {:.1?} of the push:",
        t.elapsed()
    );
    for (i, sum) in &served {
        println!("   {:<13} sha256 {sum}", running[*i].id);
    }
    if served.values().any(|s| s != &want) {
        bail!("validators serve different bytes for {name} {version}");
    }
    println!(
        "   identical on all {} (the payload's sha256)",
        served.len()
    );
    Ok(())
}
