//! Backing off and counting in every retry loop (docs/decisions.md D35).
//!
//! [`Backoff`] is the sans-IO part: it holds a loop's base interval, cap
//! and consecutive failures, and on each failure says how long to wait
//! before the next attempt; the loop does the sleeping (and a caller that
//! must not draw randomness passes the jitter in,
//! [`Backoff::on_failure_rolled`]). [`Retry`] pairs one with
//! the loop's series of `pqvault_retry_failures_total{loop}` and
//! `pqvault_retry_consecutive_failures{loop}` ([`Loop`] names them).
//!
//! The `k`-th failure in a row waits `base · 2^(k-1)`, capped at `cap`,
//! times a factor drawn uniformly from [0.75, 1.25]. With that spread a
//! wait below the cap is always longer than the one before it
//! (`0.75 · 2 > 1.25`), so a loop failing steadily slows down at every
//! step, while validators that failed together (a peer's death is seen by
//! all of them at once) drift apart instead of retrying in step.

use crate::metrics::Metrics;
use prometheus::{IntCounter, IntGauge};
use std::time::Duration;

/// Exponential backoff with a cap and ±25 % jitter, for one retry loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff whose first wait is about `base` and no wait above `cap`
    /// (before jitter).
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            failures: 0,
        }
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The wait after `failures` failures in a row, before jitter:
    /// `base · 2^(failures-1)`, at most the cap (zero for no failure).
    pub fn nominal(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        self.base
            .saturating_mul(1u32 << (failures - 1).min(20))
            .min(self.cap)
    }

    /// Records a failure; returns the wait before the next attempt, with
    /// jitter from the system's random number generator.
    pub fn on_failure(&mut self) -> Duration {
        let mut r = [0u8; 2];
        // Without randomness the wait is the nominal one: still bounded.
        let roll = match aws_lc_rs::rand::fill(&mut r) {
            Ok(()) => u16::from_le_bytes(r),
            Err(_) => u16::MAX / 2,
        };
        self.on_failure_rolled(roll)
    }

    /// [`Backoff::on_failure`] with the jitter given: `roll` 0 waits 75 %
    /// of the nominal wait, `u16::MAX` 125 %.
    pub fn on_failure_rolled(&mut self, roll: u16) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let factor = 0.75 + 0.5 * f64::from(roll) / f64::from(u16::MAX);
        self.nominal(self.failures).mul_f64(factor)
    }

    /// Records a success: the next failure starts again from the base.
    pub fn on_success(&mut self) {
        self.failures = 0;
    }
}

/// The retry loops, as the `loop` label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loop {
    /// The healing pass (`crate::heal`).
    Heal,
    /// DNS discovery (`crate::discovery`).
    Discovery,
    /// Artifact anti-entropy rounds (`crate::artifacts::sync`).
    ArtifactSync,
    /// Delivery of a repair or re-share round message
    /// (`crate::rounds::deliver`).
    RoundDelivery,
    /// A write to the replicated epoch log while no leader answers
    /// (`crate::consensus`).
    EpochLogWrite,
    /// The epoch-log leader's replication to an unreachable member
    /// (`crate::consensus::network`).
    EpochLogReplication,
    /// Accepting a connection on the peer port.
    AcceptPeer,
    /// Accepting a connection on the ops port.
    AcceptOps,
    /// Accepting a connection on the app port.
    AcceptApp,
}

impl Loop {
    /// Every loop, exported at 0 from the start.
    pub const ALL: [Loop; 9] = [
        Loop::Heal,
        Loop::Discovery,
        Loop::ArtifactSync,
        Loop::RoundDelivery,
        Loop::EpochLogWrite,
        Loop::EpochLogReplication,
        Loop::AcceptPeer,
        Loop::AcceptOps,
        Loop::AcceptApp,
    ];

    /// The `loop` label.
    pub fn name(self) -> &'static str {
        match self {
            Loop::Heal => "heal",
            Loop::Discovery => "discovery",
            Loop::ArtifactSync => "artifact_sync",
            Loop::RoundDelivery => "round_delivery",
            Loop::EpochLogWrite => "epoch_log_write",
            Loop::EpochLogReplication => "epoch_log_replication",
            Loop::AcceptPeer => "accept_peer",
            Loop::AcceptOps => "accept_ops",
            Loop::AcceptApp => "accept_app",
        }
    }

    /// True for a loop that runs once per process for its whole life, so
    /// that its consecutive failures are one number. Per-message and
    /// per-member retries (many at once, each ending within its own budget
    /// or at its next success) only count.
    pub fn runs_forever(self) -> bool {
        !matches!(
            self,
            Loop::RoundDelivery | Loop::EpochLogWrite | Loop::EpochLogReplication
        )
    }
}

/// A [`Backoff`] that counts its loop's failures in the metrics. A clone
/// shares the series and copies the streak.
#[derive(Debug, Clone)]
pub struct Retry {
    backoff: Backoff,
    failures_total: IntCounter,
    consecutive: Option<IntGauge>,
}

impl Retry {
    /// A retry for `lp` with `backoff`'s base and cap.
    pub fn new(metrics: &Metrics, lp: Loop, backoff: Backoff) -> Self {
        let labels = [lp.name()];
        Retry {
            backoff,
            failures_total: metrics.retry_failures.with_label_values(&labels),
            consecutive: lp.runs_forever().then(|| {
                metrics
                    .retry_consecutive_failures
                    .with_label_values(&labels)
            }),
        }
    }

    /// Counts a failed attempt; returns the wait before the next one.
    pub fn failed(&mut self) -> Duration {
        let wait = self.backoff.on_failure();
        self.failures_total.inc();
        if let Some(g) = &self.consecutive {
            g.set(i64::from(self.backoff.failures()));
        }
        wait
    }

    /// Records a successful attempt: the streak ends.
    pub fn succeeded(&mut self) {
        self.backoff.on_success();
        if let Some(g) = &self.consecutive {
            g.set(0);
        }
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn waits_double_from_the_base_up_to_the_cap() {
        let b = Backoff::new(100 * MS, 2000 * MS);
        let nominal: Vec<u128> = (0..8).map(|k| b.nominal(k).as_millis()).collect();
        assert_eq!(nominal, [0, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(b.nominal(u32::MAX), 2000 * MS);
        // No overflow for a base near the largest Duration.
        let huge = Backoff::new(Duration::MAX / 2, Duration::MAX);
        assert_eq!(huge.nominal(40), Duration::MAX);
    }

    #[test]
    fn jitter_stays_within_a_quarter_of_the_nominal_wait() {
        let mut low = Backoff::new(100 * MS, 2000 * MS);
        let mut high = low.clone();
        for k in 1..=10u32 {
            let nominal = low.nominal(k);
            assert_eq!(low.on_failure_rolled(0), nominal.mul_f64(0.75), "{k}");
            assert_eq!(
                high.on_failure_rolled(u16::MAX),
                nominal.mul_f64(1.25),
                "{k}"
            );
        }
        let mut b = Backoff::new(100 * MS, 2000 * MS);
        for k in 1..=200u32 {
            let (w, nominal) = (b.on_failure(), b.nominal(k));
            assert!(
                w >= nominal.mul_f64(0.75) && w <= nominal.mul_f64(1.25),
                "{k}: {w:?}"
            );
        }
    }

    #[test]
    fn jitter_spreads_the_waits() {
        let waits: std::collections::BTreeSet<Duration> = (0..50)
            .map(|_| Backoff::new(1000 * MS, 60_000 * MS).on_failure())
            .collect();
        // 50 draws of 16 bits: all equal only if the jitter is gone.
        assert!(waits.len() > 10, "{waits:?}");
        let (lo, hi) = (waits.first().copied(), waits.last().copied());
        assert!(lo < Some(900 * MS) && hi > Some(1100 * MS), "{lo:?} {hi:?}");
    }

    /// Below the cap, even the shortest next wait is longer than the
    /// longest current one: a loop failing steadily always slows down.
    #[test]
    fn waits_below_the_cap_grow_whatever_the_jitter() {
        let mut fast = Backoff::new(50 * MS, 30_000 * MS);
        let mut slow = fast.clone();
        let mut last = slow.on_failure_rolled(u16::MAX);
        fast.on_failure_rolled(0);
        while fast.nominal(fast.failures() + 1) < 30_000 * MS {
            let next = fast.on_failure_rolled(0);
            assert!(next > last, "{next:?} after {last:?}");
            last = slow.on_failure_rolled(u16::MAX);
        }
    }

    #[test]
    fn a_success_starts_again_from_the_base() {
        let mut b = Backoff::new(100 * MS, 2000 * MS);
        for _ in 0..5 {
            b.on_failure();
        }
        assert_eq!(b.failures(), 5);
        b.on_success();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.on_failure_rolled(0), 75 * MS);
        assert_eq!(b.failures(), 1);
    }

    #[test]
    fn retry_counts_every_failure_and_the_current_streak() -> Result<(), prometheus::Error> {
        let m = Metrics::new()?;
        let mut r = Retry::new(&m, Loop::Discovery, Backoff::new(MS, 10 * MS));
        let total = || m.retry_failures.with_label_values(&["discovery"]).get();
        let streak = || {
            m.retry_consecutive_failures
                .with_label_values(&["discovery"])
                .get()
        };
        r.failed();
        r.failed();
        assert_eq!((total(), streak(), r.failures()), (2, 2, 2));
        r.succeeded();
        assert_eq!((total(), streak(), r.failures()), (2, 0, 0));
        r.failed();
        assert_eq!((total(), streak()), (3, 1));
        // A per-message retry counts but leaves the streak gauge alone.
        let mut d = Retry::new(&m, Loop::RoundDelivery, Backoff::new(MS, 10 * MS));
        d.failed();
        let delivery = ["round_delivery"];
        assert_eq!(m.retry_failures.with_label_values(&delivery).get(), 1);
        assert_eq!(
            m.retry_consecutive_failures
                .with_label_values(&delivery)
                .get(),
            0
        );
        Ok(())
    }

    #[test]
    fn every_loop_is_exported_from_the_start() -> Result<(), prometheus::Error> {
        let text = Metrics::new()?.render();
        for lp in Loop::ALL {
            let series = format!("pqvault_retry_failures_total{{loop=\"{}\"}} 0", lp.name());
            assert!(text.contains(&series), "{series}");
        }
        Ok(())
    }
}
