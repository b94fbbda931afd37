//! What the prod overlay survives: the loss table of docs/deploy.md ("What
//! a deployment survives") against the rendered manifests, the validator
//! config they carry and the vault's own policy arithmetic.
//!
//! From the render: the pods (StatefulSet replicas; required anti-affinity
//! makes a node one pod), the zones (topology spread: maxSkew 1 over at
//! least `minDomains` zones), the PodDisruptionBudget, and the epoch log's
//! voters (the static members of the config in the ConfigMap plus the pod
//! itself). From docs/deploy.md's own recipe: how many pods hold shares
//! (`cp pubs/validator-[0-N].pub holders/`) and the threshold option. From
//! the `vault` crate: t for `--threshold auto`, the default f, the quorum
//! `max(t, ceil((n + f + 1) / 2))` and the shrink rule. Every "yes" and
//! "no" of the table is then checked against the worst case over every way
//! to lose that many pods.

use pqvault_tests::deploy::{render_objects, root};
use serde_json::Value;
use validator::config::{Config, Overrides};
use vault::governance::TransitionPolicy;
use vault::manifest::VaultId;
use vault::policy::{Policy, ThresholdSpec};

/// The prod overlay's numbers.
#[derive(Debug)]
struct Deployment {
    pods: usize,
    holders: usize,
    voters: usize,
    /// Pods per zone in the most concentrated spread the constraints allow.
    zones: Vec<usize>,
    /// Pods a drain may take (PodDisruptionBudget maxUnavailable).
    drain: usize,
    t: u8,
    policy: TransitionPolicy,
    quorum: usize,
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} expected");
    found[0]
}

fn prod() -> Deployment {
    let objects = render_objects(&root().join("manifests/overlays/prod"));
    let sts = one(&objects, "StatefulSet");
    let pods = sts["spec"]["replicas"].as_u64().expect("replicas") as usize;
    let spec = &sts["spec"]["template"]["spec"];

    // One pod per node: losing a node loses one pod.
    let required =
        &spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    assert!(
        required.as_array().is_some_and(|terms| terms
            .iter()
            .any(|t| t["topologyKey"] == "kubernetes.io/hostname")),
        "prod must require one validator per node"
    );
    // Zones: maxSkew 1, refusing to schedule otherwise, over at least
    // minDomains zones. The most pods a zone can hold is with exactly
    // minDomains zones, spread as evenly as maxSkew 1 forces.
    let spread = spec["topologySpreadConstraints"]
        .as_array()
        .and_then(|c| {
            c.iter()
                .find(|c| c["topologyKey"] == "topology.kubernetes.io/zone")
        })
        .expect("a zone spread constraint");
    assert_eq!(spread["maxSkew"], 1);
    assert_eq!(spread["whenUnsatisfiable"], "DoNotSchedule");
    let domains = spread["minDomains"].as_u64().expect("minDomains") as usize;
    let zones: Vec<usize> = (0..domains)
        .map(|z| pods / domains + usize::from(z < pods % domains))
        .collect();

    let pdb = one(&objects, "PodDisruptionBudget");
    let drain = pdb["spec"]["maxUnavailable"]
        .as_u64()
        .expect("maxUnavailable") as usize;

    // The epoch log's voters: the config every pod runs, as the daemon reads it.
    let cm = one(&objects, "ConfigMap");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("validator.toml");
    std::fs::write(&path, cm["data"]["validator.toml"].as_str().expect("toml")).expect("write");
    let config = Config::load(
        Some(&path),
        Overrides {
            id: Some("validator-0".into()),
            ..Overrides::default()
        },
    )
    .expect("the daemon accepts the config");
    assert!(
        config.consensus.is_enabled(),
        "the table assumes the epoch log is on"
    );
    let voters = config.members.len() + 1;
    // Every voter is a pod of this StatefulSet (a voter that is never
    // scheduled would count as lost from the start).
    for m in &config.members {
        let ordinal: usize =
            m.id.strip_prefix("validator-")
                .and_then(|o| o.parse().ok())
                .expect("validator-N");
        assert!(ordinal < pods, "{} is a voter but no pod runs it", m.id);
    }
    assert_eq!(voters, pods, "one voter per pod");

    // The vault docs/deploy.md creates: `--threshold auto` over the holders
    // its recipe copies, with the default policy (f, floor, shrink rule) of
    // `vault create`.
    let doc = std::fs::read_to_string(root().join("docs/deploy.md")).expect("docs/deploy.md");
    let holders = doc
        .split("cp pubs/validator-[0-")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .and_then(|last| last.parse::<usize>().ok())
        .map(|last| last + 1)
        .expect("docs/deploy.md copies pubs/validator-[0-N].pub into holders/");
    assert!(
        doc.contains("--threshold auto"),
        "docs/deploy.md creates the vault with --threshold auto"
    );
    let spec: ThresholdSpec = "auto".parse().expect("auto");
    let t = spec.resolve(holders).expect("t");
    let n = u8::try_from(holders).expect("n");
    // `vault create`'s defaults (vault/src/cli/policy.rs `genesis`).
    let policy = TransitionPolicy {
        vault_id: VaultId::from_bytes([0; 16]),
        version: 1,
        effective_from: 1,
        f: TransitionPolicy::default_f(t, n),
        floor: t,
        shrink: Policy::Majority,
    };
    let quorum = usize::from(policy.check(t, n).expect("sound policy").quorum);
    Deployment {
        pods,
        holders,
        voters,
        zones,
        drain,
        t,
        policy,
        quorum,
    }
}

impl Deployment {
    fn spares(&self) -> usize {
        self.pods - self.holders
    }

    /// Every way to lose `lost` pods, as (holders lost, spares lost).
    fn ways(&self, lost: usize) -> Vec<(usize, usize)> {
        (0..=lost.min(self.holders))
            .filter(|h| lost - h <= self.spares())
            .map(|h| (h, lost - h))
            .collect()
    }

    /// t holders remain: the secret can be recovered (by the operator, if
    /// need be).
    fn recoverable(&self, holders_lost: usize) -> bool {
        self.holders - holders_lost >= usize::from(self.t)
    }

    /// The mesh restores itself without the operator (docs/protocol.md
    /// "Autonomous healing"): a quorum of live holders certifies the step,
    /// the epoch log has a leader (a majority of voters), and either a live
    /// spare takes each lost share or, with too few, the live holders may
    /// re-share among themselves under the policy's shrink rule.
    fn heals(&self, holders_lost: usize, spares_lost: usize) -> bool {
        if holders_lost == 0 {
            return true;
        }
        let live = self.holders - holders_lost;
        let voters_alive = self.voters - holders_lost - spares_lost;
        let spares_alive = self.spares() - spares_lost;
        let log_leader = voters_alive > self.voters / 2;
        let replaced = spares_alive >= holders_lost
            || self
                .policy
                .shrink_threshold(u8::try_from(live).expect("u8"))
                .is_some();
        live >= self.quorum && log_leader && replaced
    }

    /// (recoverable, heals) in the worst case of losing `lost` pods.
    fn worst(&self, lost: usize) -> (bool, bool) {
        if lost > self.pods {
            return (false, false);
        }
        let ways = self.ways(lost);
        (
            ways.iter().all(|&(h, _)| self.recoverable(h)),
            ways.iter().all(|&(h, s)| self.heals(h, s)),
        )
    }

    /// Pods lost with `z` zones: the largest zones, in the worst spread.
    fn pods_in_zones(&self, z: usize) -> usize {
        let mut sizes = self.zones.clone();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        sizes.iter().take(z).sum()
    }
}

/// The rows of the loss table: (first cell, recoverable, heals).
fn documented_rows() -> Vec<(String, bool, bool)> {
    let doc = std::fs::read_to_string(root().join("docs/deploy.md")).expect("docs/deploy.md");
    let section = doc
        .split("\n## What a deployment survives\n")
        .nth(1)
        .expect("docs/deploy.md has a section \"What a deployment survives\"");
    let section = section.split("\n## ").next().unwrap_or(section);
    let yes_no = |cell: &str| match cell.split([' ', ':', ',', '(']).next() {
        Some("yes") => true,
        Some("no") => false,
        _ => panic!("cell {cell:?} must start with yes or no"),
    };
    section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| ---"))
        .skip(1) // the header
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            assert!(cells.len() >= 3, "row {l:?}");
            (cells[0].to_string(), yes_no(cells[1]), yes_no(cells[2]))
        })
        .collect()
}

/// Pods a documented row loses: "N pod(s)", "N zone(s)" or "drain + N pod(s)".
fn pods_lost(d: &Deployment, row: &str) -> usize {
    let count = |s: &str| -> usize {
        s.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("row {row:?}: no count"))
    };
    if let Some(rest) = row.strip_prefix("drain + ") {
        assert!(rest.contains("pod"), "row {row:?}");
        return d.drain + count(rest);
    }
    if row.contains("zone") {
        return d.pods_in_zones(count(row));
    }
    assert!(row.contains("pod"), "row {row:?}: pods, zones or a drain");
    count(row)
}

#[test]
fn the_prod_numbers_are_the_documented_ones() {
    let d = prod();
    // The figures the table's header and the PodDisruptionBudget's comment
    // quote: 8 pods, 7 holders of 4-of-7 with f = 1, quorum 5, a log
    // majority of 5 of 8 voters, 3 zones of at most 3, one pod per drain.
    assert_eq!(
        (d.pods, d.holders, d.t, d.policy.f, d.quorum),
        (8, 7, 4, 1, 5)
    );
    assert_eq!((d.voters, d.voters / 2 + 1), (8, 5));
    assert_eq!((d.zones.clone(), d.drain), (vec![3, 3, 2], 1));
}

#[test]
fn the_documented_loss_table_holds_for_the_prod_overlay() {
    let d = prod();
    let rows = documented_rows();
    assert!(!rows.is_empty(), "the loss table has rows");
    let mut checked = Vec::new();
    for (row, recoverable, heals) in &rows {
        let lost = pods_lost(&d, row);
        let (r, h) = d.worst(lost);
        assert_eq!(
            (*recoverable, *heals),
            (r, h),
            "docs/deploy.md row {row:?} ({lost} pods lost, worst case): recoverable {r}, heals {h} ({d:?})"
        );
        checked.push(lost);
    }
    // The table reaches the limits: the first pod count that is no longer
    // recoverable, the first that no longer heals, every zone count up to
    // the first unrecoverable one, and a drain with as many further losses
    // as still heal and one more.
    let first = |f: &dyn Fn(usize) -> bool| (1..=d.pods).find(|&k| !f(k)).unwrap_or(d.pods);
    let unrecoverable = first(&|k| d.worst(k).0);
    let unhealed = first(&|k| d.worst(k).1);
    for k in 1..=unrecoverable {
        assert!(
            rows.iter()
                .any(|(r, ..)| r == &format!("{k} pod") || r == &format!("{k} pods")),
            "the table lacks the row for {k} pods"
        );
    }
    let zones = (1..=d.zones.len())
        .find(|&z| !d.worst(d.pods_in_zones(z)).0)
        .unwrap_or(d.zones.len());
    for z in 1..=zones {
        let name = if z == 1 {
            "1 zone".to_string()
        } else {
            format!("{z} zones")
        };
        assert!(
            rows.iter().any(|(r, ..)| r == &name),
            "the table lacks {name:?}"
        );
    }
    let drain_rows = rows
        .iter()
        .filter(|(r, ..)| r.starts_with("drain + "))
        .count();
    assert!(
        drain_rows >= unhealed - d.drain,
        "the table needs drain + 1 .. drain + {} pods",
        unhealed - d.drain
    );
    println!("checked {} rows (pods lost: {checked:?}); first unrecoverable {unrecoverable}, first not healing {unhealed}", rows.len());
}

/// The arithmetic itself can say no: one more holder lost than the table's
/// last healing row breaks healing, and one below t breaks recovery.
#[test]
fn the_worst_case_arithmetic_can_fail() {
    let d = prod();
    assert_eq!(d.worst(2), (true, true));
    assert_eq!(
        d.worst(3),
        (true, false),
        "3 holders lost leave 4 < quorum 5"
    );
    assert_eq!(d.worst(4), (false, false), "4 holders lost leave 3 < t");
    // Packed into two zones (what minDomains 3 prevents), one zone could
    // hold 4 pods, all of them holders: below t.
    let two_zones = Deployment {
        zones: vec![4, 4],
        ..prod()
    };
    assert!(!two_zones.worst(two_zones.pods_in_zones(1)).0);
}
