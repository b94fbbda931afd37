//! The state every handler and background task shares ([`State`]), and the
//! small rules about it: round bounds, the probe outcome, clocks. The
//! daemon (`crate::daemon`) builds it at start and runs the loops; handlers
//! import it from here, so neither imports the other.

use crate::api::{Gossip, Hello, ProbeResult};
use crate::config::Member;
use crate::metrics::Metrics;
use crate::peer::PeerClient;
use crate::store::Store;
use crate::tls::MeshTls;
use mesh_agent::detector::{Detector, News, State as MemberState, Transition};
use mesh_agent::health::PeerHealth;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vault::identity::{PublicIdentity, SecretIdentity};

/// The wall clock in Unix milliseconds (0 if it reads before 1970).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A peer's clock minus ours, in seconds: it answered `peer_ms` to a
/// request we sent at `sent_ms` that took `rtt` to come back (its answer
/// is taken to be made half way through).
pub fn clock_skew_seconds(peer_ms: u64, sent_ms: u64, rtt: Duration) -> f64 {
    let mid = sent_ms as f64 + rtt.as_secs_f64() * 500.0;
    (peer_ms as f64 - mid) / 1000.0
}

/// Most repair or re-share rounds a validator keeps at once: a heal has
/// one or a few; every round needs a certified proposal.
pub const MAX_ROUNDS: usize = 64;

/// How long a round's state is kept: far longer than any round lasts
/// (a leader gives up after 20 s), short enough that shares of abandoned
/// rounds do not linger in memory.
pub const ROUND_TTL: Duration = Duration::from_secs(600);

/// Drops entries older than [`ROUND_TTL`] and, if still at [`MAX_ROUNDS`],
/// the oldest, so that one more fits.
pub fn prune<K: Ord + Clone, V>(map: &mut BTreeMap<K, V>, started: impl Fn(&V) -> Instant) {
    map.retain(|_, v| started(v).elapsed() < ROUND_TTL);
    while map.len() >= MAX_ROUNDS {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| started(v))
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        map.remove(&oldest);
    }
}

/// Most news items taken from one message (a mesh has fewer members).
pub const MAX_NEWS: usize = 1024;

/// Vaults per member kept from its hello, for [`State::role`].
pub const MAX_REPORTED_VAULTS: usize = 1024;

/// A failed probe that took this much longer than twice its timeout says
/// our own process stalled (paused, starved), not that the target failed.
const STALL_SLACK: Duration = Duration::from_millis(100);

/// How one direct probe went.
#[derive(Debug)]
pub enum Probe {
    /// It answered: what it said and the round-trip time.
    Ok(Hello, Duration),
    /// No usable answer within the timeout, after this long.
    Failed(Duration),
    /// No connection could be opened: nobody listens there.
    Refused(Duration),
    /// The probe failed long after its timeout: our own process stalled,
    /// so the failure says nothing about the target.
    Stalled,
}

/// What a helper said about an indirect probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndirectAnswer {
    /// It reached the target, which reported this incarnation.
    Ack(u64),
    /// It answered us but could not reach the target: a confirmation.
    Nack,
    /// No usable answer in time: the helper is stalled, or we are in
    /// trouble.
    Silent,
    /// The helper refused the connection: it is down, not us.
    Gone,
}

/// Everything the handlers and background tasks share.
pub struct State {
    /// Our validator id.
    pub id: String,
    /// Our identity (signing keys, and the KEM key of genesis shards).
    pub identity: Arc<SecretIdentity>,
    /// Our KEM keys: the identity's and one per (vault, epoch) from epoch 2
    /// on, erased once the vault moves past their epoch.
    pub keys: Arc<crate::keyring::Keyring>,
    /// Shard custody.
    pub store: Mutex<Store>,
    /// Metrics registry.
    pub metrics: Metrics,
    /// TLS configurations.
    pub tls: MeshTls,
    /// Other members: the static list, plus those DNS discovery found
    /// (removed ones included: [`State::members`] leaves them out).
    pub(crate) members: std::sync::RwLock<Vec<Member>>,
    /// Member ids removed, by the operator or by certificate
    /// ([`crate::membership`]).
    pub(crate) removed: std::sync::RwLock<std::collections::BTreeSet<String>>,
    /// Client for DNS discovery (learns who answers at an address).
    pub discover: PeerClient,
    /// Per-peer health.
    pub health: Mutex<BTreeMap<String, PeerHealth>>,
    /// Set once the store is verified and the peer port listens.
    pub ready: AtomicBool,
    /// Our incarnation: boot time in Unix milliseconds, raised by one each
    /// time we refute a suspicion of ourselves.
    pub(crate) incarnation: AtomicU64,
    /// Boot time in Unix milliseconds (a new one means a new process).
    pub booted: u64,
    /// Boot time each member last reported.
    pub(crate) booted_seen: Mutex<BTreeMap<String, u64>>,
    /// Vaults and epochs each member last reported in its hello (at most
    /// [`MAX_REPORTED_VAULTS`] each): what [`State::role`] compares ours with.
    pub(crate) peer_vaults: Mutex<BTreeMap<String, Vec<(String, u64)>>>,
    /// Detector news to push to every member.
    pub(crate) outbox: Mutex<Vec<Gossip>>,
    /// Suspicions of ourselves refuted since the last probe period.
    pub(crate) self_refuted: AtomicUsize,
    /// Mesh client for probes and custody reads (short timeout, kept-alive
    /// connections).
    pub client: PeerClient,
    /// Mesh client for repair and epoch requests (longer timeout).
    pub ctl: PeerClient,
    /// When this process started (healing waits a grace period after it).
    pub started: Instant,
    /// SWIM-style failure detector over the members.
    pub detector: Mutex<Detector>,
    /// Counts changes of the detector's view (a member suspected, declared
    /// dead or back; [`State::record`]): healing, and votes waiting for a
    /// settled view, wake on it rather than on a timer.
    pub view_changes: tokio::sync::watch::Sender<u64>,
    /// Members' public identities, fetched over mTLS and cached.
    pub identities: Mutex<BTreeMap<String, PublicIdentity>>,
    /// Repair rounds this validator takes part in.
    /// Bounded: see [`MAX_ROUNDS`].
    pub rounds: Mutex<BTreeMap<[u8; 16], (crate::rounds::RoundCell, Instant)>>,
    /// Shares re-sealed for a next epoch, waiting for its certificate.
    pub pending: Mutex<BTreeMap<vault::manifest::VaultId, crate::epochs::Prepared>>,
    /// Lost shares wait this long for spares before a re-share.
    pub reshare_after: Duration,
    /// How long a leader gives a re-share's dealing (`heal.reshare_window_ms`).
    pub reshare_window: Duration,
    /// Refresh after every repair (`heal.refresh`).
    pub refresh: bool,
    /// Peers' certificates must bind identity and role (`tls.require_identity`).
    pub require_identity: bool,
    /// How long a member must be dead before its shares count as lost
    /// (`heal.grace_ms`): for healing and for our votes alike.
    pub heal_grace: Duration,
    /// Serializes our votes on transition proposals (judge, then record,
    /// then sign: one decision at a time).
    pub voting: Mutex<()>,
    /// The proposal we last voted for per (vault, epoch), and the member
    /// that asked for the vote. Only that member may ask us to abort the
    /// attempt (`crate::proposals::abort`), and a successor that keeps the
    /// polynomial is signed only as that proposal's repair
    /// (`crate::epochs::sign`). In memory: after a restart the attempt
    /// waits for its timeout and the next one is voted afresh.
    #[allow(clippy::type_complexity)]
    pub voted_for:
        Mutex<BTreeMap<(vault::manifest::VaultId, u64), (crate::transition::Proposal, String)>>,
    /// The certified proposal we last took part in per (vault, epoch), as
    /// a helper, dealer or replacement (`POST /v1/transition`): a holder
    /// that helped a repair without voting for it signs its successor too.
    /// With the member that sent it: the proposer.
    #[allow(clippy::type_complexity)]
    pub acted_on:
        Mutex<BTreeMap<(vault::manifest::VaultId, u64), (crate::transition::Proposal, String)>>,
    /// The proposal we lead per (vault, epoch): (proposal, since, whether
    /// it was certified and announced, so the next one is a new attempt).
    #[allow(clippy::type_complexity)]
    pub proposing: Mutex<
        BTreeMap<(vault::manifest::VaultId, u64), (crate::transition::Proposal, Instant, bool)>,
    >,
    /// Certified transitions we lead that some holder has not committed
    /// yet: (epoch left, commit body, holders of the next epoch).
    #[allow(clippy::type_complexity)]
    pub unfinished:
        Mutex<BTreeMap<vault::manifest::VaultId, (u64, Vec<u8>, Vec<(u8, Option<Member>)>)>>,
    /// Since when each vault has had lost shares (healing's clock).
    pub lost_since: Mutex<BTreeMap<vault::manifest::VaultId, Instant>>,
    /// Threshold policy for re-sharing (`heal.policy`).
    pub policy: vault::policy::Policy,
    /// Re-share rounds this validator takes part in.
    pub reshares: Mutex<BTreeMap<[u8; 16], crate::reshare::Round>>,
    /// Re-share round we last dealt our share in, per (vault, epoch), and
    /// when: one at a time (`crate::reshare::REDEAL_AFTER`).
    #[allow(clippy::type_complexity)]
    pub dealt: Mutex<BTreeMap<(vault::manifest::VaultId, u64), ([u8; 16], Instant)>>,
    /// (vault, peer id) whose latest custody check failed.
    pub custody: Mutex<BTreeMap<(vault::manifest::VaultId, String), crate::custody::Verdict>>,
    /// Each peer's sealed shard of each vault, as fetched and verified
    /// against its manifest entry for the epoch kept with it: custody
    /// checks then ask for a keyed hash instead of the whole shard.
    #[allow(clippy::type_complexity)]
    pub custody_copies:
        Mutex<BTreeMap<(vault::manifest::VaultId, vault::identity::Fingerprint), (u64, Vec<u8>)>>,
    /// (vault, peer id) of holders convicted of lying: named bad dealers
    /// (`crate::reshare::check_dealing`) and requesters that split the
    /// signers (`crate::successor`). Their shares count as lost, like
    /// failed custody, so they neither lead nor stay holders.
    pub convicted: Mutex<std::collections::BTreeSet<(vault::manifest::VaultId, String)>>,
    /// (vault, peer id) of recipients we saw withhold their new share in a
    /// re-share of the epoch kept with it (`crate::reshare`, D57): their
    /// shares count as lost until a later epoch commits.
    pub withheld: Mutex<BTreeMap<(vault::manifest::VaultId, String), u64>>,
    /// (vault, peer id) of re-share recipients to the epoch and the live
    /// dealers it named missing without a receipt (`crate::reshare`, D57).
    #[allow(clippy::type_complexity)]
    pub accusations:
        Mutex<BTreeMap<(vault::manifest::VaultId, String), (u64, std::collections::BTreeSet<u8>)>>,
    /// Successor requests per (vault, epoch being left): asked of us,
    /// signed by us, or signed elsewhere and to finish (`crate::successor`).
    pub successors: Mutex<BTreeMap<(vault::manifest::VaultId, u64), crate::successor::Kept>>,
    /// Vaults whose shard on our own disk no longer matches its manifest.
    pub own_corrupt: Mutex<std::collections::BTreeSet<vault::manifest::VaultId>>,
    /// Artifact carriage, if `[artifacts] policy` is configured.
    pub artifacts: Option<Arc<crate::artifacts::Artifacts>>,
    /// The replicated epoch log, once started (`[consensus] enabled`).
    pub consensus: std::sync::OnceLock<Arc<crate::consensus::Consensus>>,
}

impl State {
    /// Convicts member `peer` of lying in epoch `epoch` of `vault` (a
    /// dealer named by its own signature, D48; a requester that split the
    /// signers, D49): its share counts as lost, its proposals get no vote.
    /// Kept in memory for the life of the process and on disk with the
    /// epoch, so a restart keeps it until a later epoch commits. Whether
    /// it is new here.
    pub fn convict(&self, vault: vault::manifest::VaultId, epoch: u64, peer: &str) -> bool {
        let new = self
            .convicted
            .lock()
            .is_ok_and(|mut c| c.insert((vault, peer.to_string())));
        if let Ok(store) = self.store.lock() {
            if let Err(e) = store.add_convicted(&vault, epoch, peer) {
                tracing::warn!(%vault, peer, "conviction not stored: {e}");
            }
        }
        self.metrics.convicted.with_label_values(&[peer]).set(1);
        new
    }

    /// Drops every conviction of member `peer`, in memory and on disk: the
    /// operator removed it, so an identity issued later under its id
    /// starts clean.
    fn unconvict(&self, peer: &str) {
        let vaults: Vec<vault::manifest::VaultId> = match self.convicted.lock() {
            Ok(mut c) => {
                let v = c
                    .iter()
                    .filter(|(_, p)| p == peer)
                    .map(|(v, _)| *v)
                    .collect();
                c.retain(|(_, p)| p != peer);
                v
            }
            Err(_) => return,
        };
        if vaults.is_empty() {
            return;
        }
        if let Ok(store) = self.store.lock() {
            for vault in vaults {
                if let Some(held) = store.get(&vault) {
                    if let Err(e) = store.unconvict(&vault, held.epoch, peer) {
                        tracing::warn!(%vault, peer, "conviction not dropped on disk: {e}");
                    }
                }
            }
        }
        tracing::info!(peer, "removed by the operator: its convictions are dropped");
    }

    /// Takes the convictions of every vault we hold at its current epoch
    /// back into memory, at start.
    pub fn restore_convictions(&self) {
        let held: Vec<(vault::manifest::VaultId, std::collections::BTreeSet<String>)> =
            match self.store.lock() {
                Ok(s) => s
                    .vaults()
                    .map(|(id, h)| (*id, s.convicted(id, h.epoch)))
                    .collect(),
                Err(_) => return,
            };
        for (vault, peers) in held {
            for p in &peers {
                self.metrics.convicted.with_label_values(&[p]).set(1);
            }
            if let Ok(mut c) = self.convicted.lock() {
                c.extend(peers.into_iter().map(|p| (vault, p)));
            }
        }
    }

    /// True if `id` may use the peer API.
    pub fn is_member(&self, id: &str) -> bool {
        !self.is_removed(id)
            && self
                .members
                .read()
                .is_ok_and(|m| m.iter().any(|m| m.id == id))
    }

    /// True if the operator removed `id` (or the set is poisoned).
    pub fn is_removed(&self, id: &str) -> bool {
        self.removed.read().map_or(true, |r| r.contains(id))
    }

    /// The other members now, without those the operator removed.
    pub fn members(&self) -> Vec<Member> {
        let Ok(removed) = self.removed.read() else {
            return Vec::new();
        };
        self.members
            .read()
            .map(|m| {
                m.iter()
                    .filter(|m| !removed.contains(&m.id))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Members the failure detector currently considers alive.
    pub fn alive_members(&self) -> Vec<Member> {
        let members = self.members();
        let Ok(d) = self.detector.lock() else {
            return Vec::new();
        };
        members
            .into_iter()
            .filter(|m| d.state(&m.id) == Some(mesh_agent::detector::State::Alive))
            .collect()
    }

    /// Whether the failure detector considers member `id` alive.
    pub fn is_alive(&self, id: &str) -> bool {
        self.detector
            .lock()
            .is_ok_and(|d| d.state(id) == Some(mesh_agent::detector::State::Alive))
    }

    /// Removed member ids, sorted.
    pub fn removed(&self) -> Vec<String> {
        self.removed
            .read()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Applies the membership the store now holds (the operator's
    /// statement and the certified removals it leaves in force): a newly
    /// removed member is no longer probed, asked, reported or exported;
    /// one no longer removed (the operator let it back) is probed again if
    /// configured.
    pub fn apply_removals(&self) {
        let Some((now, version)) = self
            .store
            .lock()
            .ok()
            .map(|s| (s.removed(), s.removal().version))
        else {
            return;
        };
        let before = match self.removed.write() {
            Ok(mut w) => std::mem::replace(&mut *w, now.clone()),
            Err(_) => return,
        };
        for id in now.difference(&before) {
            tracing::info!(member = %id, version, "member removed");
            if let Ok(mut d) = self.detector.lock() {
                d.remove(id);
            }
            if let Ok(mut h) = self.health.lock() {
                h.remove(id);
            }
            if let Ok(mut p) = self.peer_vaults.lock() {
                p.remove(id);
            }
            if let Ok(mut b) = self.booted_seen.lock() {
                b.remove(id);
            }
            if let Ok(mut i) = self.identities.lock() {
                i.remove(id);
            }
            self.unconvict(id);
            self.metrics.remove_peer(id);
        }
        for id in before.difference(&now) {
            if self.member(id).is_some() {
                tracing::info!(member = %id, version, "member no longer removed");
                if let Ok(mut d) = self.detector.lock() {
                    d.add(id.clone());
                }
                self.metrics.init_peer(id);
            }
        }
    }

    /// Adds a member found by discovery, or moves a known one to a new
    /// address (a rescheduled pod); true if anything changed.
    pub fn add_member(&self, m: Member) -> bool {
        if self.is_removed(&m.id) {
            tracing::debug!(member = %m.id, "discovery found a removed member: ignored");
            return false;
        }
        let Ok(mut members) = self.members.write() else {
            return false;
        };
        if let Some(known) = members.iter_mut().find(|k| k.id == m.id) {
            if known.addr == m.addr {
                return false;
            }
            tracing::info!(member = %m.id, from = %known.addr, to = %m.addr, "member moved");
            known.addr = m.addr;
            return true;
        }
        tracing::info!(member = %m.id, addr = %m.addr, "member discovered");
        if let Ok(mut d) = self.detector.lock() {
            d.add(m.id.clone());
        }
        members.push(m);
        true
    }

    /// Counts a connection closed on accept at `port`'s connection cap.
    pub fn refused(&self, port: &str) {
        self.metrics
            .connections_refused
            .with_label_values(&[port])
            .inc();
    }

    /// Counts an inbound peer connection by result.
    pub fn connection(&self, result: &str) {
        self.metrics
            .peer_connections
            .with_label_values(&[result])
            .inc();
    }

    /// Counts a peer API request.
    pub fn count(&self, endpoint: &str, code: u16) {
        self.metrics
            .peer_requests
            .with_label_values(&[endpoint, &code.to_string()])
            .inc();
    }

    /// The repair round `id`, if we take part in it.
    pub fn round(&self, id: &[u8; 16]) -> Option<crate::rounds::RoundCell> {
        self.rounds
            .lock()
            .ok()
            .and_then(|r| r.get(id).map(|(c, _)| c.clone()))
    }

    /// Records a round we take part in, forgetting rounds older than
    /// [`ROUND_TTL`] and, past [`MAX_ROUNDS`], the oldest.
    pub fn insert_round(&self, id: [u8; 16], round: crate::rounds::Round) {
        if let Ok(mut r) = self.rounds.lock() {
            prune(&mut r, |(_, at)| *at);
            r.insert(id, (Arc::new(Mutex::new(round)), Instant::now()));
        }
    }

    /// Probes `m` directly with `GET /v1/hello` and updates our view with
    /// what it answered (liveness, incarnation, restart, its news).
    pub async fn probe_direct(&self, m: &Member) -> Option<u64> {
        match self.probe_hello(m).await {
            Probe::Ok(h, _) => {
                self.answered(&m.id, &h);
                Some(h.incarnation)
            }
            Probe::Failed(_) | Probe::Refused(_) | Probe::Stalled => None,
        }
    }

    /// Probes `m` directly with `GET /v1/hello`, nothing more.
    pub async fn probe_hello(&self, m: &Member) -> Probe {
        // Lifeguard: a validator whose own requests fail waits longer.
        let timeout = match self.detector.lock() {
            Ok(d) => d.scale(self.client.timeout()),
            Err(_) => self.client.timeout(),
        };
        let t0 = Instant::now();
        let sent_ms = crate::byzantine::clock_now_ms();
        let r = self
            .client
            .with_timeout(timeout)
            .get(m, "/v1/hello", 64 << 10)
            .await;
        let rtt = t0.elapsed();
        if r.as_ref().is_err_and(|e| e.refused()) {
            return Probe::Refused(rtt);
        }
        let hello = r
            .ok()
            .filter(|r| r.status == 200)
            .and_then(|r| serde_json::from_slice::<Hello>(&r.body).ok());
        match hello {
            Some(h) => {
                if h.now_ms != 0 && !self.is_removed(&m.id) {
                    let skew = clock_skew_seconds(h.now_ms, sent_ms, rtt);
                    self.metrics
                        .clock_skew
                        .with_label_values(&[&m.id])
                        .set(skew);
                }
                Probe::Ok(h, rtt)
            }
            None if rtt > timeout.saturating_mul(2) + STALL_SLACK => Probe::Stalled,
            None => Probe::Failed(rtt),
        }
    }

    /// `id` answered a probe with `h`: it is alive; a new boot time means a
    /// new process (maybe a new key, maybe an empty disk); its news is
    /// taken in.
    pub fn answered(&self, id: &str, h: &Hello) {
        let restarted = match self.booted_seen.lock() {
            Ok(mut b) if h.booted != 0 => b
                .insert(id.to_string(), h.booted)
                .is_some_and(|p| p != h.booted),
            _ => false,
        };
        if let Ok(mut p) = self.peer_vaults.lock() {
            let vaults = h.vaults.iter().take(MAX_REPORTED_VAULTS).cloned().collect();
            p.insert(id.to_string(), vaults);
        }
        if restarted {
            tracing::info!(peer = %id, "peer restarted");
            if let Ok(mut ids) = self.identities.lock() {
                ids.remove(id);
            }
        }
        let t = self
            .detector
            .lock()
            .ok()
            .and_then(|mut d| d.probe_ok(id, h.incarnation, Instant::now()));
        self.record(t.as_slice());
        self.absorb(id, &h.news);
    }

    /// Member `id` just sent us an authenticated request: first-hand
    /// evidence that it is alive.
    pub fn heard_from(&self, id: &str) {
        let t = self
            .detector
            .lock()
            .ok()
            .and_then(|mut d| d.probe_ok(id, 0, Instant::now()));
        self.record(t.as_slice());
    }

    /// Takes in detector news from member `from`. News of a suspicion of
    /// ourselves is refuted: a higher incarnation, pushed to every member
    /// (and a sign for our local health that we are slow).
    pub fn absorb(&self, from: &str, news: &[Gossip]) {
        let now = Instant::now();
        let mut transitions = Vec::new();
        for g in news.iter().take(MAX_NEWS) {
            let Some(s) = MemberState::from_name(&g.state) else {
                continue;
            };
            if g.id == self.id {
                // Only a suspicion of our current incarnation: an older one
                // is refuted already, a higher one is forged.
                if s != MemberState::Alive && g.incarnation == self.incarnation() {
                    let inc = g.incarnation.saturating_add(1);
                    self.incarnation.fetch_max(inc, Ordering::AcqRel);
                    self.self_refuted.fetch_add(1, Ordering::AcqRel);
                    tracing::info!(by = %from, incarnation = inc, "refuting a suspicion of ourselves");
                    self.tell(Gossip {
                        id: self.id.clone(),
                        state: MemberState::Alive.name().into(),
                        incarnation: inc,
                    });
                }
                continue;
            }
            let item = News {
                id: g.id.clone(),
                state: s,
                incarnation: g.incarnation,
            };
            if let Ok(mut d) = self.detector.lock() {
                transitions.extend(d.news(from, &item, now));
            }
        }
        self.record(&transitions);
    }

    /// Queues news for every member (pushed within 50 ms).
    fn tell(&self, g: Gossip) {
        if let Ok(mut o) = self.outbox.lock() {
            if !o.contains(&g) {
                o.push(g);
            }
        }
    }

    /// Our current incarnation (boot time, raised by refutations).
    pub fn incarnation(&self) -> u64 {
        self.incarnation.load(Ordering::Acquire)
    }

    /// What we tell others about members: those we suspect or declared dead.
    pub fn gossip(&self) -> Vec<Gossip> {
        self.detector
            .lock()
            .map(|d| {
                d.gossip()
                    .into_iter()
                    .map(|n| Gossip {
                        id: n.id,
                        state: n.state.name().into(),
                        incarnation: n.incarnation,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asks `helper` to probe `target` for us.
    pub(crate) async fn probe_indirect(&self, helper: &Member, target: &str) -> IndirectAnswer {
        // The helper itself waits up to its probe timeout for the target.
        let r = match self
            .ctl
            .get(helper, &format!("/v1/probe/{target}"), 4 << 10)
            .await
        {
            Ok(r) => r,
            Err(e) if e.refused() => return IndirectAnswer::Gone,
            Err(_) => return IndirectAnswer::Silent,
        };
        match serde_json::from_slice::<ProbeResult>(&r.body) {
            Ok(p) if r.status == 200 && p.target == target => {
                self.heard_from(&helper.id);
                match p.ok {
                    true => IndirectAnswer::Ack(p.incarnation),
                    false => IndirectAnswer::Nack,
                }
            }
            _ => IndirectAnswer::Silent,
        }
    }

    pub(crate) fn member(&self, id: &str) -> Option<Member> {
        if self.is_removed(id) {
            return None;
        }
        self.members
            .read()
            .ok()
            .and_then(|m| m.iter().find(|m| m.id == id).cloned())
    }

    /// Logs and exports detector transitions; a new suspicion is queued as
    /// news for every member.
    pub fn record(&self, transitions: &[Transition]) {
        for t in transitions {
            // A probe under way when the member was removed.
            if self.is_removed(&t.id) {
                continue;
            }
            if t.from != t.to {
                self.view_changes.send_modify(|n| *n = n.wrapping_add(1));
            }
            match t.to {
                MemberState::Dead => {
                    tracing::warn!(peer = %t.id, "peer declared dead");
                    self.metrics.peer_deaths.with_label_values(&[&t.id]).inc();
                }
                MemberState::Suspect => {
                    tracing::info!(peer = %t.id, "peer suspected");
                    // Others probe it themselves; it refutes if alive.
                    let incarnation = self
                        .detector
                        .lock()
                        .ok()
                        .and_then(|d| d.incarnation(&t.id))
                        .unwrap_or(0);
                    self.tell(Gossip {
                        id: t.id.clone(),
                        state: MemberState::Suspect.name().into(),
                        incarnation,
                    });
                }
                MemberState::Alive => {
                    tracing::info!(peer = %t.id, from = t.from.name(), "peer alive");
                    // It may have come back re-enrolled with a new key:
                    // fetch its identity afresh.
                    if let Ok(mut ids) = self.identities.lock() {
                        ids.remove(&t.id);
                    }
                }
            }
            self.metrics.init_peer(&t.id);
            for s in MemberState::ALL {
                self.metrics
                    .peer_state
                    .with_label_values(&[&t.id, s.name()])
                    .set(i64::from(s == t.to));
            }
        }
    }

    /// Updates gauges derived from state before a scrape.
    pub fn refresh_gauges(&self) {
        self.metrics.set_role(self.role().0);
        self.metrics.epoch_keys.set(self.keys.epochs().len() as i64);
        self.metrics
            .initial_key
            .set(i64::from(self.keys.initial().is_some()));
        if let Ok(store) = self.store.lock() {
            self.metrics.shards_held.set(store.vaults().count() as i64);
            for (id, h) in store.vaults() {
                self.metrics
                    .vault_epoch
                    .with_label_values(&[&id.to_string()])
                    .set(h.epoch as i64);
                self.metrics.set_vault(&id.to_string(), &h.manifest);
            }
        }
        if let Ok(d) = self.detector.lock() {
            let alive = d.states().filter(|(_, s)| *s == MemberState::Alive);
            self.metrics.peers_healthy.set(alive.count() as i64 + 1);
        }
        if let Ok(secs) = vault::meshca::seconds_to_expiry(&self.tls.own_cert) {
            self.metrics.cert_expiry.set(secs);
        }
    }
}

impl State {
    /// Our role (holder, spare, stale, syncing) from what we hold and what
    /// the members last reported; for a stale holder, which vault is behind.
    pub fn role(&self) -> (crate::role::Role, Option<String>) {
        let held: Vec<crate::role::HeldVault> = match self.store.lock() {
            Ok(store) => store
                .vaults()
                .map(|(id, h)| crate::role::HeldVault {
                    vault: id.to_string(),
                    epoch: h.epoch,
                    f: store.policy(id).f,
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let reports = self
            .peer_vaults
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default();
        crate::role::role(
            !self.members().is_empty(),
            !reports.is_empty(),
            &held,
            &reports,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_skew_allows_half_the_round_trip() {
        let rtt = Duration::from_millis(200);
        assert!((clock_skew_seconds(10_100, 10_000, rtt)).abs() < 1e-9);
        assert!((clock_skew_seconds(130_100, 10_000, rtt) - 120.0).abs() < 1e-9);
        assert!((clock_skew_seconds(0, 60_000, Duration::ZERO) + 60.0).abs() < 1e-9);
    }

    /// Attack 8 at the unit level: however many rounds a member starts,
    /// at most MAX_ROUNDS are kept, the oldest go first, and none outlives
    /// ROUND_TTL.
    #[test]
    fn round_state_is_bounded_in_number_and_age() {
        let now = Instant::now();
        let mut map: BTreeMap<u32, Instant> = BTreeMap::new();
        for k in 0..1000u32 {
            prune(&mut map, |at| *at);
            map.insert(k, now + Duration::from_millis(u64::from(k)));
        }
        assert_eq!(map.len(), MAX_ROUNDS);
        assert_eq!(map.keys().next(), Some(&(1000 - MAX_ROUNDS as u32)));
        if let Some(old) = now.checked_sub(ROUND_TTL + Duration::from_secs(1)) {
            let mut map = BTreeMap::from([(1u32, old), (2, now)]);
            prune(&mut map, |at| *at);
            assert_eq!(map.keys().collect::<Vec<_>>(), vec![&2]);
        }
    }
}
