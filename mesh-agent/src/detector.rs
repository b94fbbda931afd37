//! SWIM-style failure detection with Lifeguard-style suspicion, as a pure
//! state machine (the validator drives it with probe results and time).
//!
//! Each probe period the validator probes every member directly. When a
//! direct probe fails it asks up to `k` other live members to probe the
//! target for it (indirect probes), so one lossy link does not condemn a
//! peer. If every probe fails the member becomes **suspect**; if no probe
//! succeeds within the suspicion timeout it is declared **dead**. Any later
//! successful probe refutes suspicion or death (a restarted validator
//! rejoins with a higher incarnation, its boot time).
//!
//! Two Lifeguard refinements (Dadgar et al., "Lifeguard: Local Health
//! Awareness for More Accurate Failure Detection", 2018) keep a slow or
//! overloaded validator from condemning healthy peers:
//!
//! * **Suspicion scaled by confirmations (LHA-Suspicion).** A helper that
//!   reached us but not the target answers with a *nack*: an independent
//!   confirmation. The suspicion timeout starts at `suspicion_max` and
//!   falls towards `suspicion_min` as distinct helpers confirm, over
//!   successive rounds: `max - (max - min) * ln(C + 1) / ln(K + 1)` with
//!   `C` confirmations of the `K = k` expected. A dead peer in a healthy
//!   mesh is confirmed by every helper at once and is declared dead after
//!   `suspicion_min`; a suspicion nobody else shares takes `suspicion_max`.
//! * **Local health awareness (LHA-Probe).** A score in `0..=awareness_max`
//!   rises for each expected nack that never came (our own requests are
//!   failing: probably us, not them) and falls by one after a round in
//!   which every probe got an answer. The validator multiplies its probe
//!   timeout by `awareness + 1` ([`Detector::scale`]), so a validator
//!   starved of CPU or network waits longer before it blames anyone.
//!
//! Why not `foca`: foca implements SWIM over an unreliable datagram
//! transport with its own gossip of membership. Here membership comes from
//! configuration and discovery, every message is an authenticated mTLS
//! request/response, and the detector only informs the leader; a local
//! state machine this small is easier to audit than an adapter that
//! tunnels foca's datagrams through HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Where a member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Answering probes.
    Alive,
    /// Every recent probe failed; not yet declared dead.
    Suspect,
    /// No probe succeeded within the suspicion timeout.
    Dead,
}

impl State {
    /// Stable lower-case name (metric label).
    pub fn name(self) -> &'static str {
        match self {
            State::Alive => "alive",
            State::Suspect => "suspect",
            State::Dead => "dead",
        }
    }

    /// Every state, for exporting one gauge per state.
    pub const ALL: [State; 3] = [State::Alive, State::Suspect, State::Dead];
}

/// A change of state, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Member id.
    pub id: String,
    /// Previous state.
    pub from: State,
    /// New state.
    pub to: State,
}

/// Timing and fan-out of the detector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Suspicion timeout once every expected helper has confirmed.
    pub suspicion_min: Duration,
    /// Suspicion timeout with no confirmation (at least `suspicion_min`).
    pub suspicion_max: Duration,
    /// Helpers asked for indirect probes (`k`): also the number of
    /// confirmations that brings the timeout down to `suspicion_min`.
    pub indirect: usize,
    /// Highest local health awareness score.
    pub awareness_max: u32,
}

impl Config {
    /// Plain SWIM timing: one fixed suspicion timeout, no awareness.
    pub fn fixed(suspicion: Duration, indirect: usize) -> Self {
        Config {
            suspicion_min: suspicion,
            suspicion_max: suspicion,
            indirect,
            awareness_max: 0,
        }
    }
}

/// What the indirect probes of one failed member came back with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indirect {
    /// Helpers asked.
    pub asked: usize,
    /// Helpers that answered but could not reach the target (nacks).
    pub nacked_by: Vec<String>,
}

impl Indirect {
    /// Expected nacks that never came (helper down, or our requests failing).
    pub fn missed(&self) -> usize {
        self.asked.saturating_sub(self.nacked_by.len())
    }
}

#[derive(Debug, Clone)]
struct Entry {
    state: State,
    suspect_since: Option<Instant>,
    dead_since: Option<Instant>,
    incarnation: u64,
    /// Distinct helpers that confirmed the current suspicion.
    confirmations: BTreeSet<String>,
}

impl Entry {
    fn alive() -> Self {
        Entry {
            state: State::Alive,
            suspect_since: None,
            dead_since: None,
            incarnation: 0,
            confirmations: BTreeSet::new(),
        }
    }
}

/// The failure detector for one validator's view of its peers.
#[derive(Debug, Clone)]
pub struct Detector {
    members: BTreeMap<String, Entry>,
    config: Config,
    awareness: u32,
    rotation: usize,
}

impl Detector {
    /// Starts with every member alive.
    pub fn new<I: IntoIterator<Item = String>>(ids: I, mut config: Config) -> Self {
        config.suspicion_max = config.suspicion_max.max(config.suspicion_min);
        Detector {
            members: ids.into_iter().map(|id| (id, Entry::alive())).collect(),
            config,
            awareness: 0,
            rotation: 0,
        }
    }

    /// Adds a member (alive, as it just answered); false if already known.
    pub fn add(&mut self, id: String) -> bool {
        if self.members.contains_key(&id) {
            return false;
        }
        self.members.insert(id, Entry::alive());
        true
    }

    /// Current state of `id`.
    pub fn state(&self, id: &str) -> Option<State> {
        self.members.get(id).map(|e| e.state)
    }

    /// Members and their states.
    pub fn states(&self) -> impl Iterator<Item = (&str, State)> {
        self.members.iter().map(|(id, e)| (id.as_str(), e.state))
    }

    fn set(&mut self, id: &str, to: State, now: Instant) -> Option<Transition> {
        let e = self.members.get_mut(id)?;
        let from = e.state;
        if from == to {
            return None;
        }
        e.state = to;
        e.suspect_since = (to == State::Suspect).then_some(now);
        e.dead_since = (to == State::Dead).then_some(now);
        if to != State::Suspect {
            e.confirmations.clear();
        }
        Some(Transition {
            id: id.to_string(),
            from,
            to,
        })
    }

    /// A probe (direct or indirect) of `id` succeeded; `incarnation` is what
    /// the member reported about itself.
    pub fn probe_ok(&mut self, id: &str, incarnation: u64, now: Instant) -> Option<Transition> {
        if let Some(e) = self.members.get_mut(id) {
            e.incarnation = e.incarnation.max(incarnation);
        }
        self.set(id, State::Alive, now)
    }

    /// The direct probe of `id` failed and so did every indirect probe:
    /// an alive member becomes suspect, dated `now`. Helpers that nacked
    /// confirm the suspicion (a member already suspect gathers them).
    pub fn probes_failed(
        &mut self,
        id: &str,
        indirect: &Indirect,
        now: Instant,
    ) -> Option<Transition> {
        let t = match self.state(id)? {
            State::Alive => self.set(id, State::Suspect, now),
            State::Suspect | State::Dead => None,
        };
        if let Some(e) = self.members.get_mut(id) {
            if e.state == State::Suspect {
                e.confirmations
                    .extend(indirect.nacked_by.iter().filter(|h| *h != id).cloned());
            }
        }
        t
    }

    /// Independent confirmations of the suspicion of `id`.
    pub fn confirmations(&self, id: &str) -> usize {
        self.members.get(id).map_or(0, |e| e.confirmations.len())
    }

    /// The suspicion timeout that applies with `confirmations` so far.
    /// At most `k` confirmations are expected, fewer in a mesh too small to
    /// have `k` helpers besides the suspect (none: the minimum applies).
    pub fn suspicion_timeout(&self, confirmations: usize) -> Duration {
        let (min, max) = (self.config.suspicion_min, self.config.suspicion_max);
        let k = self
            .config
            .indirect
            .min(self.members.len().saturating_sub(1));
        if k == 0 || confirmations >= k {
            return min;
        }
        let frac = ((confirmations + 1) as f64).ln() / ((k + 1) as f64).ln();
        let span = max.saturating_sub(min).as_secs_f64();
        max.saturating_sub(Duration::from_secs_f64(span * frac))
            .max(min)
    }

    /// Declares dead every member suspect for longer than its timeout.
    pub fn tick(&mut self, now: Instant) -> Vec<Transition> {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, e)| {
                e.state == State::Suspect
                    && e.suspect_since.is_some_and(|t| {
                        now.saturating_duration_since(t)
                            >= self.suspicion_timeout(e.confirmations.len())
                    })
            })
            .map(|(id, _)| id.clone())
            .collect();
        expired
            .iter()
            .filter_map(|id| self.set(id, State::Dead, now))
            .collect()
    }

    /// Up to `k` alive members other than `target` to ask for indirect
    /// probes, rotating so the load spreads (and successive rounds ask
    /// different helpers, which confirm independently).
    pub fn helpers_for(&mut self, target: &str) -> Vec<String> {
        let alive: Vec<&String> = self
            .members
            .iter()
            .filter(|(id, e)| e.state == State::Alive && id.as_str() != target)
            .map(|(id, _)| id)
            .collect();
        if alive.is_empty() {
            return Vec::new();
        }
        self.rotation = self.rotation.wrapping_add(1);
        (0..self.config.indirect.min(alive.len()))
            .map(|i| alive[(self.rotation + i) % alive.len()].clone())
            .collect()
    }

    /// Updates local health after a probe round: `missed` expected nacks
    /// never came (a failing member with no helper to ask counts one);
    /// with none missed, a round in which `acked` probes succeeded lowers
    /// awareness by one.
    pub fn round_done(&mut self, missed: usize, acked: usize) {
        let max = self.config.awareness_max;
        if missed > 0 {
            let up = u32::try_from(missed).unwrap_or(u32::MAX);
            self.awareness = self.awareness.saturating_add(up).min(max);
        } else if acked > 0 {
            self.awareness = self.awareness.saturating_sub(1);
        }
    }

    /// Local health awareness: 0 is healthy, up to `awareness_max`.
    pub fn awareness(&self) -> u32 {
        self.awareness
    }

    /// `timeout` stretched by local health: `timeout * (awareness + 1)`.
    pub fn scale(&self, timeout: Duration) -> Duration {
        timeout.saturating_mul(self.awareness + 1)
    }

    /// How long `id` has been dead, if it is.
    pub fn dead_for(&self, id: &str, now: Instant) -> Option<Duration> {
        self.members
            .get(id)
            .and_then(|e| e.dead_since)
            .map(|t| now.saturating_duration_since(t))
    }

    /// The highest incarnation `id` has reported.
    pub fn incarnation(&self, id: &str) -> Option<u64> {
        self.members.get(id).map(|e| e.incarnation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det() -> Detector {
        Detector::new(
            ["a", "b", "c", "d"].map(String::from),
            Config::fixed(Duration::from_millis(200), 2),
        )
    }

    #[test]
    fn added_members_start_alive_once() {
        let mut d = det();
        assert!(!d.add("d".into()), "a known member is not added again");
        assert!(d.add("e".into()));
        assert_eq!(d.state("e"), Some(State::Alive));
        assert_eq!(d.states().count(), 5);
    }

    #[test]
    fn suspect_then_dead_after_timeout() {
        let mut d = det();
        let none = Indirect::default();
        let t0 = Instant::now();
        let tr = d.probes_failed("b", &none, t0).unwrap();
        assert_eq!((tr.from, tr.to), (State::Alive, State::Suspect));
        assert!(d.probes_failed("b", &none, t0).is_none(), "already suspect");
        assert!(d.tick(t0 + Duration::from_millis(199)).is_empty());
        let dead = d.tick(t0 + Duration::from_millis(200));
        assert_eq!(
            dead,
            vec![Transition {
                id: "b".into(),
                from: State::Suspect,
                to: State::Dead
            }]
        );
        assert_eq!(d.state("b"), Some(State::Dead));
        assert_eq!(
            d.dead_for("b", t0 + Duration::from_millis(500)),
            Some(Duration::from_millis(300))
        );
        assert_eq!(d.dead_for("a", t0), None);
    }

    #[test]
    fn any_success_refutes() {
        let mut d = det();
        let none = Indirect::default();
        let t0 = Instant::now();
        d.probes_failed("c", &none, t0);
        let tr = d.probe_ok("c", 1, t0).unwrap();
        assert_eq!(tr.to, State::Alive);
        assert!(
            d.tick(t0 + Duration::from_secs(5)).is_empty(),
            "refuted suspicion never expires"
        );
        d.probes_failed("c", &none, t0);
        d.tick(t0 + Duration::from_secs(1));
        assert_eq!(d.state("c"), Some(State::Dead));
        // A restarted member rejoins with a higher incarnation.
        assert_eq!(d.probe_ok("c", 7, t0).map(|t| t.to), Some(State::Alive));
        assert_eq!(d.incarnation("c"), Some(7));
        assert!(d.probe_ok("zz", 1, t0).is_none(), "unknown ids are ignored");
    }

    #[test]
    fn helpers_are_alive_others_and_rotate() {
        let mut d = det();
        let none = Indirect::default();
        let t0 = Instant::now();
        d.probes_failed("d", &none, t0);
        let h1 = d.helpers_for("b");
        assert_eq!(h1.len(), 2);
        assert!(h1.iter().all(|h| h != "b" && h != "d"));
        let h2 = d.helpers_for("b");
        assert_ne!(h1, h2, "rotation spreads the load");
        let mut lone = Detector::new(
            ["x".to_string()],
            Config::fixed(Duration::from_millis(1), 3),
        );
        assert!(lone.helpers_for("x").is_empty());
    }

    fn lifeguard() -> Detector {
        Detector::new(
            ["a", "b", "c", "d", "e"].map(String::from),
            Config {
                suspicion_min: Duration::from_millis(200),
                suspicion_max: Duration::from_millis(800),
                indirect: 2,
                awareness_max: 4,
            },
        )
    }

    fn nacks(by: &[&str]) -> Indirect {
        Indirect {
            asked: 2,
            nacked_by: by.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn suspicion_timeout_falls_with_confirmations() {
        let d = lifeguard();
        assert_eq!(d.suspicion_timeout(0), Duration::from_millis(800));
        // ln 2 / ln 3 of the way down: 800 - 600 * 0.6309 = 421.4 ms.
        let one = d.suspicion_timeout(1);
        assert!(one > Duration::from_millis(421) && one < Duration::from_millis(422));
        assert_eq!(d.suspicion_timeout(2), Duration::from_millis(200));
        assert_eq!(d.suspicion_timeout(9), Duration::from_millis(200));
        // Two members: one possible helper, so one confirmation is all.
        let mut small = lifeguard();
        small.members.retain(|id, _| id == "a" || id == "b");
        assert_eq!(small.suspicion_timeout(1), Duration::from_millis(200));
        small.members.retain(|id, _| id == "a");
        assert_eq!(small.suspicion_timeout(0), Duration::from_millis(200));
    }

    #[test]
    fn confirmed_suspicion_expires_at_the_minimum() {
        let mut d = lifeguard();
        let t0 = Instant::now();
        d.probes_failed("b", &nacks(&["c", "d"]), t0);
        assert_eq!(d.confirmations("b"), 2);
        assert!(d.tick(t0 + Duration::from_millis(199)).is_empty());
        assert_eq!(d.tick(t0 + Duration::from_millis(200)).len(), 1);
        assert_eq!(d.state("b"), Some(State::Dead));
        assert_eq!(d.confirmations("b"), 0, "confirmations end with suspicion");
    }

    #[test]
    fn unconfirmed_suspicion_waits_for_the_maximum_and_gathers_confirmations() {
        let mut d = lifeguard();
        let t0 = Instant::now();
        // Nobody answered our indirect probes: maybe it is us.
        d.probes_failed("b", &nacks(&[]), t0);
        assert!(d.tick(t0 + Duration::from_millis(799)).is_empty());
        // The next round's helpers confirm; the same helper twice counts once,
        // and the suspect cannot confirm itself.
        d.probes_failed("b", &nacks(&["c", "c"]), t0 + Duration::from_millis(300));
        d.probes_failed("b", &nacks(&["b"]), t0 + Duration::from_millis(300));
        assert_eq!(d.confirmations("b"), 1);
        assert!(d.tick(t0 + Duration::from_millis(421)).is_empty());
        assert_eq!(d.tick(t0 + Duration::from_millis(422)).len(), 1);
    }

    #[test]
    fn refuted_suspicion_forgets_its_confirmations() {
        let mut d = lifeguard();
        let t0 = Instant::now();
        d.probes_failed("b", &nacks(&["c", "d"]), t0);
        d.probe_ok("b", 1, t0);
        d.probes_failed("b", &nacks(&[]), t0);
        assert_eq!(d.confirmations("b"), 0);
        assert!(d.tick(t0 + Duration::from_millis(500)).is_empty());
    }

    #[test]
    fn awareness_rises_with_missed_nacks_and_scales_timeouts() {
        let mut d = lifeguard();
        let base = Duration::from_millis(100);
        assert_eq!(d.scale(base), base);
        d.round_done(nacks(&["c"]).missed(), 3);
        assert_eq!(d.awareness(), 1);
        assert_eq!(d.scale(base), Duration::from_millis(200));
        d.round_done(7, 0);
        assert_eq!(d.awareness(), 4, "capped at awareness_max");
        d.round_done(0, 0);
        assert_eq!(d.awareness(), 4, "a round without an answer does not heal");
        for _ in 0..3 {
            d.round_done(0, 5);
        }
        assert_eq!(d.awareness(), 1);
        d.round_done(0, 5);
        d.round_done(0, 5);
        assert_eq!(d.awareness(), 0);
        let fixed = Detector::new(["a".to_string()], Config::fixed(base, 2));
        let mut fixed = fixed;
        fixed.round_done(5, 0);
        assert_eq!(fixed.awareness(), 0, "plain SWIM has no awareness");
    }
}
