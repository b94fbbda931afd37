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
//! Why not `foca`: foca implements SWIM over an unreliable datagram
//! transport with its own gossip of membership. Here membership comes from
//! configuration and (next) the replicated epoch log, every message is an
//! authenticated mTLS request/response, and the detector only informs the
//! leader; a local state machine this small is easier to audit than an
//! adapter that tunnels foca's datagrams through HTTP.

use std::collections::BTreeMap;
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

#[derive(Debug, Clone)]
struct Entry {
    state: State,
    suspect_since: Option<Instant>,
    dead_since: Option<Instant>,
    incarnation: u64,
}

/// The failure detector for one validator's view of its peers.
#[derive(Debug, Clone)]
pub struct Detector {
    members: BTreeMap<String, Entry>,
    suspicion_timeout: Duration,
    indirect: usize,
    rotation: usize,
}

impl Detector {
    /// Starts with every member alive.
    pub fn new<I: IntoIterator<Item = String>>(
        ids: I,
        suspicion_timeout: Duration,
        indirect: usize,
    ) -> Self {
        let members = ids
            .into_iter()
            .map(|id| {
                (
                    id,
                    Entry {
                        state: State::Alive,
                        suspect_since: None,
                        dead_since: None,
                        incarnation: 0,
                    },
                )
            })
            .collect();
        Detector {
            members,
            suspicion_timeout,
            indirect,
            rotation: 0,
        }
    }

    /// Adds a member (alive, as it just answered); false if already known.
    pub fn add(&mut self, id: String) -> bool {
        if self.members.contains_key(&id) {
            return false;
        }
        self.members.insert(
            id,
            Entry {
                state: State::Alive,
                suspect_since: None,
                dead_since: None,
                incarnation: 0,
            },
        );
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
    /// an alive member becomes suspect.
    pub fn probes_failed(&mut self, id: &str, now: Instant) -> Option<Transition> {
        match self.state(id)? {
            State::Alive => self.set(id, State::Suspect, now),
            State::Suspect | State::Dead => None,
        }
    }

    /// Declares dead every member suspect for longer than the timeout.
    pub fn tick(&mut self, now: Instant) -> Vec<Transition> {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, e)| {
                e.state == State::Suspect
                    && e.suspect_since
                        .is_some_and(|t| now.saturating_duration_since(t) >= self.suspicion_timeout)
            })
            .map(|(id, _)| id.clone())
            .collect();
        expired
            .iter()
            .filter_map(|id| self.set(id, State::Dead, now))
            .collect()
    }

    /// Up to `k` alive members other than `target` to ask for indirect
    /// probes, rotating so the load spreads.
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
        (0..self.indirect.min(alive.len()))
            .map(|i| alive[(self.rotation + i) % alive.len()].clone())
            .collect()
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
            Duration::from_millis(200),
            2,
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
        let t0 = Instant::now();
        let tr = d.probes_failed("b", t0).unwrap();
        assert_eq!((tr.from, tr.to), (State::Alive, State::Suspect));
        assert!(d.probes_failed("b", t0).is_none(), "already suspect");
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
        let t0 = Instant::now();
        d.probes_failed("c", t0);
        let tr = d.probe_ok("c", 1, t0).unwrap();
        assert_eq!(tr.to, State::Alive);
        assert!(
            d.tick(t0 + Duration::from_secs(5)).is_empty(),
            "refuted suspicion never expires"
        );
        d.probes_failed("c", t0);
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
        let t0 = Instant::now();
        d.probes_failed("d", t0);
        let h1 = d.helpers_for("b");
        assert_eq!(h1.len(), 2);
        assert!(h1.iter().all(|h| h != "b" && h != "d"));
        let h2 = d.helpers_for("b");
        assert_ne!(h1, h2, "rotation spreads the load");
        let mut lone = Detector::new(["x".to_string()], Duration::from_millis(1), 3);
        assert!(lone.helpers_for("x").is_empty());
    }
}
