//! Peer health scores in [0, 1].
//!
//! A score summarises what the local validator has observed of one peer:
//! probe success rate, probe latency (EWMA and a tail estimate), custody
//! (the peer serves its sealed shard and its hash matches the manifest) and
//! agreement on the vault epoch. Scores feed the leader's healing decisions
//! and the `/metrics` endpoint; they never decide anything alone.
//!
//! ```text
//! success  = successes / probes over the last `window` probes
//! latency  = (f(ewma) + f(p99)) / 2,  f(x) = 1 if x <= good, else good / x
//! custody  = 1 ok, 0 failed, 0.5 not yet checked
//! epoch    = 1 same epoch as ours, 0 different, 0.5 unknown
//! score    = 0.40·success + 0.20·latency + 0.25·custody + 0.15·epoch
//! ```
//! A failed custody check caps the score at 0.25: a peer that cannot prove
//! it holds the right shard is not healthy however fast it answers. So does
//! an integrity failure (the peer served data whose hash did not match, e.g.
//! an artifact chunk), until `window` later probes have passed.

use std::collections::VecDeque;
use std::time::Duration;

/// Tuning of the score; the defaults suit loopback and a LAN.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Number of recent probes the success rate covers.
    pub window: usize,
    /// Latency at or below which the latency component is perfect.
    pub good_latency: Duration,
    /// EWMA smoothing factor for latency, in (0, 1].
    pub ewma_alpha: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            window: 32,
            good_latency: Duration::from_millis(50),
            ewma_alpha: 0.2,
        }
    }
}

/// Result of the latest custody check of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Custody {
    /// Not checked yet.
    Unknown,
    /// The peer served its shard and the hash matched the manifest.
    Ok,
    /// The peer could not serve its shard, or it did not match.
    Failed,
}

/// Observations of one peer and the score derived from them.
#[derive(Debug, Clone)]
pub struct PeerHealth {
    config: HealthConfig,
    outcomes: VecDeque<bool>,
    latencies: VecDeque<Duration>,
    ewma_secs: Option<f64>,
    custody: Custody,
    epoch_agrees: Option<bool>,
    /// Probes left before the last integrity failure stops capping the score.
    integrity_strike: usize,
}

impl PeerHealth {
    /// A peer with no observations (score 0.5-ish: unknown, not bad).
    pub fn new(config: HealthConfig) -> Self {
        PeerHealth {
            outcomes: VecDeque::with_capacity(config.window),
            latencies: VecDeque::with_capacity(config.window),
            config,
            ewma_secs: None,
            custody: Custody::Unknown,
            epoch_agrees: None,
            integrity_strike: 0,
        }
    }

    /// Records a successful probe and its round-trip time.
    pub fn probe_ok(&mut self, rtt: Duration) {
        self.push_outcome(true);
        if self.latencies.len() == self.config.window {
            self.latencies.pop_front();
        }
        self.latencies.push_back(rtt);
        let x = rtt.as_secs_f64();
        let a = self.config.ewma_alpha.clamp(f64::MIN_POSITIVE, 1.0);
        self.ewma_secs = Some(match self.ewma_secs {
            None => x,
            Some(prev) => a * x + (1.0 - a) * prev,
        });
    }

    /// Records a failed (timed out or refused) probe.
    pub fn probe_failed(&mut self) {
        self.push_outcome(false);
    }

    /// Records that the peer served data that failed verification (for
    /// example an artifact chunk whose hash did not match): the score is
    /// capped at 0.25 for the next `window` probes.
    pub fn integrity_failure(&mut self) {
        self.integrity_strike = self.config.window.max(1);
    }

    /// True while an integrity failure still caps the score.
    pub fn integrity_suspect(&self) -> bool {
        self.integrity_strike > 0
    }

    fn push_outcome(&mut self, ok: bool) {
        self.integrity_strike = self.integrity_strike.saturating_sub(1);
        if self.outcomes.len() == self.config.window.max(1) {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back(ok);
    }

    /// Records the latest custody check.
    pub fn set_custody(&mut self, c: Custody) {
        self.custody = c;
    }

    /// Records whether the peer reports the same vault epoch as ours.
    pub fn set_epoch_agreement(&mut self, agrees: bool) {
        self.epoch_agrees = Some(agrees);
    }

    /// Fraction of recent probes that succeeded (0.5 with no probes yet).
    pub fn success_rate(&self) -> f64 {
        if self.outcomes.is_empty() {
            return 0.5;
        }
        self.outcomes.iter().filter(|&&ok| ok).count() as f64 / self.outcomes.len() as f64
    }

    /// Smoothed latency, if any probe succeeded.
    pub fn latency_ewma(&self) -> Option<Duration> {
        self.ewma_secs.map(Duration::from_secs_f64)
    }

    /// 99th-percentile latency of the recent successful probes.
    pub fn latency_p99(&self) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let mut v: Vec<Duration> = self.latencies.iter().copied().collect();
        v.sort_unstable();
        let rank = ((v.len() as f64) * 0.99).ceil() as usize;
        v.get(rank.saturating_sub(1)).copied()
    }

    /// The score in [0, 1].
    pub fn score(&self) -> f64 {
        let good = self.config.good_latency.as_secs_f64().max(1e-9);
        let f = |d: Duration| {
            let x = d.as_secs_f64();
            if x <= good {
                1.0
            } else {
                good / x
            }
        };
        let latency = match (self.latency_ewma(), self.latency_p99()) {
            (Some(e), Some(p)) => (f(e) + f(p)) / 2.0,
            _ => 0.5,
        };
        let custody = match self.custody {
            Custody::Ok => 1.0,
            Custody::Failed => 0.0,
            Custody::Unknown => 0.5,
        };
        let epoch = match self.epoch_agrees {
            Some(true) => 1.0,
            Some(false) => 0.0,
            None => 0.5,
        };
        let s = 0.40 * self.success_rate() + 0.20 * latency + 0.25 * custody + 0.15 * epoch;
        let s = if self.custody == Custody::Failed || self.integrity_strike > 0 {
            s.min(0.25)
        } else {
            s
        };
        s.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn healthy() -> PeerHealth {
        let mut p = PeerHealth::new(HealthConfig::default());
        for _ in 0..32 {
            p.probe_ok(ms(2));
        }
        p.set_custody(Custody::Ok);
        p.set_epoch_agreement(true);
        p
    }

    #[test]
    fn perfect_peer_scores_one_and_unknown_is_middling() {
        assert!((healthy().score() - 1.0).abs() < 1e-9);
        let fresh = PeerHealth::new(HealthConfig::default()).score();
        assert!((0.4..=0.6).contains(&fresh), "{fresh}");
    }

    #[test]
    fn each_signal_lowers_the_score() {
        let base = healthy().score();
        let mut lossy = healthy();
        for _ in 0..16 {
            lossy.probe_failed();
        }
        assert!((lossy.success_rate() - 0.5).abs() < 1e-9, "window slides");
        assert!(lossy.score() < base);

        let mut slow = healthy();
        for _ in 0..32 {
            slow.probe_ok(ms(500));
        }
        assert!(slow.score() < base);
        assert!(slow.latency_p99().unwrap() >= ms(500));

        let mut split = healthy();
        split.set_epoch_agreement(false);
        assert!(split.score() < base);

        let mut bad = healthy();
        bad.set_custody(Custody::Failed);
        assert!(bad.score() <= 0.25);

        let mut liar = healthy();
        liar.integrity_failure();
        assert!(liar.score() <= 0.25 && liar.integrity_suspect());
        for _ in 0..32 {
            liar.probe_ok(ms(2));
        }
        assert!(!liar.integrity_suspect(), "the cap expires after a window");
        assert!((liar.score() - base).abs() < 1e-9);
    }

    #[test]
    fn score_stays_in_range_and_tail_tracks_spikes() {
        let mut p = PeerHealth::new(HealthConfig::default());
        for i in 0..1000u64 {
            if i % 7 == 0 {
                p.probe_failed();
            } else {
                p.probe_ok(ms(i % 300));
            }
            let s = p.score();
            assert!((0.0..=1.0).contains(&s), "{s}");
        }
        let mut q = healthy();
        q.probe_ok(ms(900));
        assert_eq!(q.latency_p99(), Some(ms(900)));
        assert!(q.latency_ewma().unwrap() < ms(900));
    }
}
