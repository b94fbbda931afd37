//! SWIM failure detection with Lifeguard, as a pure state machine: it owns
//! each member's state (alive, suspect, dead), incarnations, suspicion
//! timers, the probe schedule and local health. The validator drives it
//! with probe results, news and time; it answers with transitions.
//!
//! **Probing (SWIM).** Each probe period the validator probes *one* member,
//! the next of a randomized round-robin ([`Detector::probe_targets`]), so
//! the failure-detection load per member stays constant however large the
//! mesh. Members we suspect, and members another member told us it
//! suspects, are probed too, every period, until settled. When a direct
//! probe fails the validator asks up to `k` other live members to probe the
//! target for it (indirect probes), so one lossy link does not condemn a
//! peer. If every probe fails the member becomes **suspect**, dated when
//! the failure was *observed*; if the suspicion is not refuted within the
//! suspicion timeout it is declared **dead**.
//!
//! **News.** What a validator suspects, and its own incarnation, travel
//! piggybacked on probe answers and are pushed once when a suspicion starts
//! or is refuted ([`News`]). News never declares anyone dead: a member is
//! declared dead only on our own failed probes. News of a suspicion makes
//! us probe the suspect ourselves and, if we suspect it too, counts as a
//! confirmation; news of a higher incarnation refutes suspicion and death
//! (a suspected member that hears of it raises its incarnation).
//!
//! **Lifeguard** (Dadgar et al., "Lifeguard: Local Health Awareness for
//! More Accurate Failure Detection", 2018), on unless the configuration
//! asks for plain SWIM (comparison only):
//!
//! * *LHA-Suspicion.* The suspicion timeout starts at `suspicion_max` and
//!   falls towards `suspicion_min` as independent confirmations arrive:
//!   `max - (max - min) * ln(C + 1) / ln(K + 1)` with `C` confirmations of
//!   the `K = k` expected. A confirmation is a nack from a helper or news
//!   from a member that suspects the same member on its own probes; it
//!   counts only from a member not counted yet, and only one per
//!   `window` (helpers that saw the same stall at the same moment are one
//!   observation, not two).
//! * *LHA-Probe.* A local health score in `0..=awareness_max` rises for
//!   each failed probe that no helper confirmed, each missed nack, each
//!   direct probe that failed while an indirect one reached the target, and
//!   each suspicion of ourselves we had to refute; it falls by one after a
//!   period in which every probe got an answer. The validator multiplies
//!   both its probe interval and its probe timeout by `awareness + 1`
//!   ([`Detector::scale`]), and while the score is above zero it declares
//!   nobody dead on its own evidence alone: at least one confirmation from
//!   another member is needed.
//!
//! Why not `foca`: foca implements SWIM over an unreliable datagram
//! transport with its own gossip of membership. Here membership comes from
//! configuration and discovery, every message is an authenticated mTLS
//! request/response, and only detector news is gossiped; a local state
//! machine this small is easier to audit than an adapter that tunnels
//! foca's datagrams through HTTP.

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
    /// Stable lower-case name (metric label, news).
    pub fn name(self) -> &'static str {
        match self {
            State::Alive => "alive",
            State::Suspect => "suspect",
            State::Dead => "dead",
        }
    }

    /// The state named `name` by [`State::name`].
    pub fn from_name(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.name() == name)
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
    /// Suspicion timeout once every expected confirmation has come.
    pub suspicion_min: Duration,
    /// Suspicion timeout with no confirmation (at least `suspicion_min`).
    pub suspicion_max: Duration,
    /// Helpers asked for indirect probes (`k`): also the number of
    /// confirmations that brings the timeout down to `suspicion_min`.
    pub indirect: usize,
    /// Highest local health awareness score.
    pub awareness_max: u32,
    /// Confirmations count at most one per window (the probe interval).
    pub window: Duration,
    /// Lifeguard on; off is plain SWIM: one fixed suspicion timeout
    /// (`suspicion_min`), no local health. For comparison only.
    pub lifeguard: bool,
}

impl Config {
    /// Plain SWIM timing: one fixed suspicion timeout, no local health.
    pub fn fixed(suspicion: Duration, indirect: usize) -> Self {
        Config {
            suspicion_min: suspicion,
            suspicion_max: suspicion,
            indirect,
            awareness_max: 0,
            window: Duration::ZERO,
            lifeguard: false,
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

/// One item of detector news: what a member says about a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct News {
    /// The member the news is about.
    pub id: String,
    /// Its state in the teller's view.
    pub state: State,
    /// Its incarnation in the teller's view.
    pub incarnation: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    state: State,
    suspect_since: Option<Instant>,
    dead_since: Option<Instant>,
    incarnation: u64,
    /// Distinct members that confirmed the current suspicion.
    confirmations: BTreeSet<String>,
    /// When the latest confirmation was counted.
    confirmed_at: Option<Instant>,
    /// Someone told us it suspects this member: probe it ourselves.
    verify: bool,
    /// When someone first told us it suspects this member (alive to us)
    /// since it last answered us or changed state.
    reported: Option<Instant>,
}

impl Entry {
    fn alive() -> Self {
        Entry {
            state: State::Alive,
            suspect_since: None,
            dead_since: None,
            incarnation: 0,
            confirmations: BTreeSet::new(),
            confirmed_at: None,
            verify: false,
            reported: None,
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
    /// The current round-robin order and our place in it.
    order: Vec<String>,
    next: usize,
    /// xorshift64 state for shuffling the round-robin.
    rng: u64,
    /// The first period (probes every member once) is behind us.
    started: bool,
}

impl Detector {
    /// Starts with every member alive; `seed` shuffles the probe order
    /// (give each validator its own, so that probes spread over the mesh).
    pub fn new<I: IntoIterator<Item = String>>(ids: I, mut config: Config) -> Self {
        config.suspicion_max = config.suspicion_max.max(config.suspicion_min);
        if !config.lifeguard {
            config.suspicion_max = config.suspicion_min;
            config.awareness_max = 0;
        }
        Detector {
            members: ids.into_iter().map(|id| (id, Entry::alive())).collect(),
            config,
            awareness: 0,
            rotation: 0,
            order: Vec::new(),
            next: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
            started: false,
        }
    }

    /// Seeds the shuffle of the probe order (any value; 0 is replaced).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        };
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Adds a member (alive, as it just answered); false if already known.
    pub fn add(&mut self, id: String) -> bool {
        if self.members.contains_key(&id) {
            return false;
        }
        self.members.insert(id, Entry::alive());
        true
    }

    /// Forgets a member (the operator removed it): no longer probed,
    /// asked to probe, or reported; false if unknown.
    pub fn remove(&mut self, id: &str) -> bool {
        // A stale entry in `order` is skipped by `probe_targets`.
        self.members.remove(id).is_some()
    }

    /// Current state of `id`.
    pub fn state(&self, id: &str) -> Option<State> {
        self.members.get(id).map(|e| e.state)
    }

    /// Members and their states.
    pub fn states(&self) -> impl Iterator<Item = (&str, State)> {
        self.members.iter().map(|(id, e)| (id.as_str(), e.state))
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// The members to probe this period: the next of the randomized
    /// round-robin (each member once per pass, a fresh order each pass),
    /// then every member we suspect and every member someone told us it
    /// suspects (until our own probe settles it). The very first period
    /// probes every member once, so that a validator that just started
    /// has a first-hand view of all at once.
    pub fn probe_targets(&mut self) -> Vec<String> {
        if !self.started {
            self.started = true;
            return self.members.keys().cloned().collect();
        }
        let mut out = Vec::new();
        if self.next >= self.order.len() {
            self.order = self.members.keys().cloned().collect();
            for i in (1..self.order.len()).rev() {
                let j = (self.random() % (i as u64 + 1)) as usize;
                self.order.swap(i, j);
            }
            self.next = 0;
        }
        while self.next < self.order.len() {
            let id = self.order[self.next].clone();
            self.next += 1;
            if self.members.contains_key(&id) {
                out.push(id);
                break;
            }
        }
        for (id, e) in self.members.iter_mut() {
            if (e.state == State::Suspect || e.verify) && !out.contains(id) {
                out.push(id.clone());
            }
            e.verify = false;
        }
        out
    }

    fn set(&mut self, id: &str, to: State, now: Instant) -> Option<Transition> {
        let e = self.members.get_mut(id)?;
        let from = e.state;
        if from == to {
            return None;
        }
        e.state = to;
        e.reported = None;
        e.suspect_since = (to == State::Suspect).then_some(now);
        e.dead_since = (to == State::Dead).then_some(now);
        if to != State::Suspect {
            e.confirmations.clear();
            e.confirmed_at = None;
        }
        Some(Transition {
            id: id.to_string(),
            from,
            to,
        })
    }

    /// Counts `by` as a confirmation of the suspicion of `id` if it is a
    /// member not counted yet and no confirmation was counted in the
    /// current window.
    fn confirm(&mut self, id: &str, by: &str, now: Instant) {
        let window = self.config.window;
        let Some(e) = self.members.get_mut(id) else {
            return;
        };
        if e.state != State::Suspect || by == id || e.confirmations.contains(by) {
            return;
        }
        if e.confirmed_at
            .is_some_and(|t| now.saturating_duration_since(t) < window)
        {
            return;
        }
        e.confirmations.insert(by.to_string());
        e.confirmed_at = Some(now);
    }

    /// A probe (direct or indirect) of `id` succeeded, or `id` itself just
    /// sent us an authenticated request; `incarnation` is what the member
    /// reported about itself (0: unknown). Always refutes.
    pub fn probe_ok(&mut self, id: &str, incarnation: u64, now: Instant) -> Option<Transition> {
        if let Some(e) = self.members.get_mut(id) {
            e.incarnation = e.incarnation.max(incarnation);
            e.verify = false;
            e.reported = None;
        }
        self.set(id, State::Alive, now)
    }

    /// The direct probe of `id` failed and so did every indirect probe,
    /// observed at `now`: an alive member becomes suspect, dated `now`.
    /// Helpers that nacked confirm the suspicion (one per window).
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
        for h in &indirect.nacked_by {
            self.confirm(id, h, now);
        }
        t
    }

    /// News from member `from`. A higher incarnation than we know, from
    /// the member itself (refutations are first-hand, so that no member
    /// can keep another alive), refutes suspicion and death; a suspicion
    /// (or death) at the incarnation we know confirms ours, or makes us
    /// probe the member ourselves. News never makes anyone suspect or dead.
    /// News about unknown members, or older than what we know, is ignored.
    pub fn news(&mut self, from: &str, news: &News, now: Instant) -> Option<Transition> {
        let e = self.members.get_mut(&news.id)?;
        match news.state {
            State::Alive => {
                if from != news.id || news.incarnation <= e.incarnation {
                    return None;
                }
                e.incarnation = news.incarnation;
                self.set(&news.id, State::Alive, now)
            }
            State::Suspect | State::Dead => {
                if news.incarnation < e.incarnation {
                    return None;
                }
                match e.state {
                    State::Alive => {
                        e.verify = true;
                        e.reported.get_or_insert(now);
                    }
                    State::Suspect => self.confirm(&news.id, from, now),
                    State::Dead => {}
                }
                None
            }
        }
    }

    /// What we would tell others: every member we suspect or declared
    /// dead, with the incarnation we know.
    pub fn gossip(&self) -> Vec<News> {
        self.members
            .iter()
            .filter(|(_, e)| e.state != State::Alive)
            .map(|(id, e)| News {
                id: id.clone(),
                state: e.state,
                incarnation: e.incarnation,
            })
            .collect()
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
    /// While our own health is impaired (awareness above zero), a
    /// suspicion nobody else confirmed never expires.
    pub fn tick(&mut self, now: Instant) -> Vec<Transition> {
        let impaired = self.awareness > 0;
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, e)| {
                e.state == State::Suspect
                    && !(impaired && e.confirmations.is_empty())
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

    /// Members alive in our view that another member told us it suspects
    /// (or declared dead) and that have not answered us since, each with
    /// when the first such report came: our own probe (due next period)
    /// has yet to settle them. News alone never changes a state; this only
    /// lets a caller wait, for a bounded time, until our own view has
    /// caught up with what others see.
    pub fn in_question(&self) -> Vec<(String, Instant)> {
        self.members
            .iter()
            .filter(|(_, e)| e.state == State::Alive)
            .filter_map(|(id, e)| e.reported.map(|t| (id.clone(), t)))
            .collect()
    }

    /// When the next suspicion expires if nothing changes meanwhile (no
    /// refutation, no new confirmation): the instant [`Detector::tick`]
    /// would declare a suspect dead. `None` with no suspicion that can
    /// expire (none, or only unconfirmed ones while our health is
    /// impaired). Lets the validator tick at that instant rather than at
    /// the end of its next probe period.
    pub fn next_expiry(&self) -> Option<Instant> {
        let impaired = self.awareness > 0;
        self.members
            .values()
            .filter(|e| e.state == State::Suspect && !(impaired && e.confirmations.is_empty()))
            .filter_map(|e| {
                e.suspect_since
                    .map(|t| t + self.suspicion_timeout(e.confirmations.len()))
            })
            .min()
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

    /// Updates local health after a probe period: `worse` counts the
    /// period's signs that we, not they, are in trouble (failed probes no
    /// helper confirmed, missed nacks, direct probes that failed where an
    /// indirect one succeeded, suspicions of ourselves refuted); with none,
    /// a period in which `acked` probes succeeded lowers awareness by one.
    pub fn round_done(&mut self, worse: usize, acked: usize) {
        let max = self.config.awareness_max;
        if worse > 0 {
            let up = u32::try_from(worse).unwrap_or(u32::MAX);
            self.awareness = self.awareness.saturating_add(up).min(max);
        } else if acked > 0 {
            self.awareness = self.awareness.saturating_sub(1);
        }
    }

    /// Local health awareness: 0 is healthy, up to `awareness_max`.
    pub fn awareness(&self) -> u32 {
        self.awareness
    }

    /// `d` (the probe timeout or interval) stretched by local health:
    /// `d * (awareness + 1)`.
    pub fn scale(&self, d: Duration) -> Duration {
        d.saturating_mul(self.awareness + 1)
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
    fn removed_members_are_neither_probed_nor_helpers() {
        let mut d = det();
        let _ = d.probe_targets();
        assert!(d.remove("b"));
        assert!(!d.remove("b"));
        for _ in 0..8 {
            assert!(!d.probe_targets().contains(&"b".to_string()));
        }
        assert!(!d.helpers_for("a").contains(&"b".to_string()));
        assert_eq!(d.state("b"), None);
        let news = News {
            id: "b".into(),
            state: State::Suspect,
            incarnation: 1,
        };
        assert!(d.news("c", &news, Instant::now()).is_none());
        assert_eq!(d.state("b"), None, "news does not bring it back");
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
    fn next_expiry_is_when_tick_declares_the_earliest_suspect_dead() {
        let mut d = det();
        let none = Indirect::default();
        let t0 = Instant::now();
        assert_eq!(d.next_expiry(), None, "nobody suspect");
        d.probes_failed("c", &none, t0 + Duration::from_millis(50));
        d.probes_failed("b", &none, t0);
        let at = d.next_expiry().unwrap();
        assert_eq!(at, t0 + Duration::from_millis(200));
        assert!(d.tick(at - Duration::from_millis(1)).is_empty());
        assert_eq!(d.tick(at).len(), 1);
        assert_eq!(d.next_expiry(), Some(t0 + Duration::from_millis(250)));
        d.probe_ok("c", 1, t0);
        assert_eq!(
            d.next_expiry(),
            None,
            "the dead and the refuted never expire"
        );
    }

    #[test]
    fn a_reported_member_is_in_question_until_it_answers_or_changes_state() {
        let mut d = det();
        let t0 = Instant::now();
        let said = |state| News {
            id: "b".into(),
            state,
            incarnation: 0,
        };
        assert!(d.in_question().is_empty());
        d.news("c", &said(State::Suspect), t0);
        d.news("d", &said(State::Dead), t0 + Duration::from_millis(5));
        assert_eq!(d.in_question(), vec![("b".to_string(), t0)]);
        assert_eq!(d.state("b"), Some(State::Alive), "news changes no state");
        d.probe_ok("b", 0, t0);
        assert!(d.in_question().is_empty(), "it answered us");
        d.news("c", &said(State::Suspect), t0);
        d.probes_failed("b", &Indirect::default(), t0);
        assert!(d.in_question().is_empty(), "now suspect in our own view");
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
                window: Duration::from_millis(100),
                lifeguard: true,
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
    fn confirmations_count_once_per_window_and_member() {
        let mut d = lifeguard();
        let t0 = Instant::now();
        // Two helpers that saw the same stall at the same moment: one.
        d.probes_failed("b", &nacks(&["c", "d"]), t0);
        assert_eq!(d.confirmations("b"), 1);
        // Another member, in the same window: still one.
        let e = News {
            id: "b".into(),
            state: State::Suspect,
            incarnation: 0,
        };
        d.news("e", &e, t0 + Duration::from_millis(50));
        assert_eq!(d.confirmations("b"), 1);
        // A later window, a member already counted: still one.
        d.probes_failed("b", &nacks(&["c"]), t0 + Duration::from_millis(150));
        assert_eq!(d.confirmations("b"), 1);
        d.news("e", &e, t0 + Duration::from_millis(150));
        assert_eq!(d.confirmations("b"), 2);
        assert!(d.tick(t0 + Duration::from_millis(199)).is_empty());
        assert_eq!(d.tick(t0 + Duration::from_millis(200)).len(), 1);
        assert_eq!(d.state("b"), Some(State::Dead));
        assert_eq!(d.confirmations("b"), 0, "confirmations end with suspicion");
    }

    #[test]
    fn suspicion_is_dated_when_observed() {
        let mut d = lifeguard();
        let t0 = Instant::now();
        // A round that started at t0 observed the failure 600 ms later: the
        // suspicion lasts its full timeout from then.
        let seen = t0 + Duration::from_millis(600);
        d.probes_failed("b", &nacks(&[]), seen);
        assert!(d.tick(seen + Duration::from_millis(799)).is_empty());
        assert_eq!(d.tick(seen + Duration::from_millis(800)).len(), 1);
    }

    #[test]
    fn news_refutes_with_a_higher_incarnation_and_never_kills() {
        let mut d = lifeguard();
        d.probe_targets(); // the first period, which probes everyone
        let t0 = Instant::now();
        d.probe_ok("b", 5, t0);
        let suspect = News {
            id: "b".into(),
            state: State::Suspect,
            incarnation: 5,
        };
        let dead = News {
            state: State::Dead,
            ..suspect.clone()
        };
        assert!(d.news("c", &suspect, t0).is_none());
        assert!(d.news("d", &dead, t0).is_none());
        assert_eq!(d.state("b"), Some(State::Alive), "news alone kills nobody");
        // ... but makes us probe it ourselves, once.
        assert!(d.probe_targets().contains(&"b".to_string()));
        d.probes_failed("b", &nacks(&[]), t0);
        let stale = News {
            id: "b".into(),
            state: State::Alive,
            incarnation: 5,
        };
        assert!(
            d.news("b", &stale, t0).is_none(),
            "not newer: no refutation"
        );
        let fresh = News {
            incarnation: 6,
            ..stale
        };
        assert!(d.news("c", &fresh, t0).is_none(), "only b may refute for b");
        let t = d.news("b", &fresh, t0).expect("refuted");
        assert_eq!((t.from, t.to), (State::Suspect, State::Alive));
        assert_eq!(d.incarnation("b"), Some(6));
        assert!(
            d.news("c", &suspect, t0).is_none(),
            "stale suspicion ignored"
        );
        assert!(d.gossip().is_empty());
        d.probes_failed("b", &nacks(&[]), t0);
        assert_eq!(
            d.gossip(),
            vec![News {
                id: "b".into(),
                state: State::Suspect,
                incarnation: 6
            }]
        );
    }

    #[test]
    fn round_robin_probes_each_member_once_per_pass_plus_suspects() {
        let mut d = lifeguard().with_seed(42);
        assert_eq!(d.probe_targets().len(), 5, "the first period probes all");
        let mut pass: Vec<String> = (0..5).flat_map(|_| d.probe_targets()).collect();
        assert_eq!(pass.len(), 5, "one target per period");
        pass.sort();
        assert_eq!(pass, ["a", "b", "c", "d", "e"]);
        d.probes_failed("c", &nacks(&[]), Instant::now());
        for _ in 0..5 {
            let t = d.probe_targets();
            assert!(
                t.contains(&"c".to_string()),
                "a suspect is probed every period"
            );
            assert!(t.len() <= 2);
        }
        let orders: BTreeSet<Vec<String>> = (0..4)
            .map(|_| {
                (0..5)
                    .flat_map(|_| d.probe_targets())
                    .filter(|id| id != "c")
                    .collect()
            })
            .collect();
        assert!(orders.len() > 1, "each pass is shuffled afresh");
    }

    #[test]
    fn impaired_validator_needs_a_confirmation() {
        let mut d = lifeguard();
        let t0 = Instant::now();
        d.round_done(1, 0);
        d.probes_failed("b", &nacks(&[]), t0);
        assert!(
            d.tick(t0 + Duration::from_secs(60)).is_empty(),
            "our own evidence alone kills nobody while we are unhealthy"
        );
        d.probes_failed("b", &nacks(&["c"]), t0);
        assert_eq!(d.tick(t0 + Duration::from_secs(60)).len(), 1);
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
        d.probes_failed("b", &nacks(&[]), t0 + Duration::from_millis(300));
        assert_eq!(d.confirmations("b"), 0);
        assert!(d.tick(t0 + Duration::from_millis(800)).is_empty());
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
