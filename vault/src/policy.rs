//! Adaptive threshold selection.
//!
//! Users name recipients, not thresholds: a [`Policy`] derives the Shamir
//! threshold t from the number of shards n, and a [`ThresholdSpec`] is what
//! the command line accepts ("auto", "auto:<policy>" or an exact number).
//! Every threshold produced here satisfies 2 <= t <= n <= 255: a threshold of
//! 1 would make each shard a copy of the secret, and t > n could never be
//! met.

use core::fmt;
use core::str::FromStr;

/// How the threshold follows the number of shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// t = floor(n/2) + 1: any majority recovers, so fewer than half of the
    /// shards may be lost (7 shards: t = 4, 3 may be lost).
    #[default]
    Majority,
    /// t = floor(2n/3) + 1: more than two thirds are needed, trading loss
    /// tolerance for collusion resistance (7 shards: t = 5).
    Supermajority,
}

impl Policy {
    /// The name used on the command line and in manifests.
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Majority => "majority",
            Policy::Supermajority => "supermajority",
        }
    }

    /// The threshold for `n` shards (at least 2, at most `n`).
    pub fn threshold_for(&self, n: u8) -> Result<u8, PolicyError> {
        if n < 2 {
            return Err(PolicyError::TooFewRecipients(n.into()));
        }
        let t = match self {
            Policy::Majority => n / 2 + 1,
            // floor(2n/3) = n - ceil(n/3), without overflowing u8.
            Policy::Supermajority => n - n.div_ceil(3) + 1,
        };
        Ok(t.max(2))
    }

    /// How many of `n` shards may be lost with the secret still recoverable.
    pub fn tolerated_losses(&self, n: u8) -> Result<u8, PolicyError> {
        Ok(n - self.threshold_for(n)?)
    }

    /// Every policy, for help texts and exhaustive tests.
    pub fn all() -> &'static [Policy] {
        &[Policy::Majority, Policy::Supermajority]
    }
}

impl FromStr for Policy {
    type Err = PolicyError;

    /// Parses a policy name (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Policy::all()
            .iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .copied()
            .ok_or_else(|| PolicyError::UnknownPolicy(s.to_owned()))
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A requested threshold: derived from a policy, or given exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdSpec {
    /// Derive t from the number of recipients.
    Auto(Policy),
    /// Use exactly this t (validated against n by [`ThresholdSpec::resolve`]).
    Exact(u8),
}

impl ThresholdSpec {
    /// The threshold for `n` recipients, refusing combinations that would be
    /// insecure (t < 2) or unrecoverable (t > n), and n outside 2..=255.
    pub fn resolve(&self, n: usize) -> Result<u8, PolicyError> {
        if n < 2 {
            return Err(PolicyError::TooFewRecipients(n));
        }
        let n8 = u8::try_from(n).map_err(|_| PolicyError::TooManyRecipients(n))?;
        match *self {
            ThresholdSpec::Auto(policy) => policy.threshold_for(n8),
            ThresholdSpec::Exact(t) if t < 2 => Err(PolicyError::ThresholdTooLow(t)),
            ThresholdSpec::Exact(t) if t > n8 => Err(PolicyError::ThresholdTooHigh { t, n }),
            ThresholdSpec::Exact(t) => Ok(t),
        }
    }
}

impl FromStr for ThresholdSpec {
    type Err = PolicyError;

    /// Parses "auto" (majority), "auto:<policy>" or a number from 1 to 255.
    /// A threshold of 1 parses but is refused by [`ThresholdSpec::resolve`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") {
            return Ok(ThresholdSpec::Auto(Policy::default()));
        }
        if let Some((head, policy)) = s.split_once(':') {
            if head.trim().eq_ignore_ascii_case("auto") {
                return policy.parse().map(ThresholdSpec::Auto);
            }
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PolicyError::BadThreshold(format!(
                "invalid threshold {s:?}: expected \"auto\", \"auto:<policy>\" \
                 ({}) or a number from 2 to 255",
                policy_names()
            )));
        }
        match s.parse::<u8>() {
            Ok(0) => Err(PolicyError::BadThreshold(
                "a threshold of 0 is meaningless: it must be at least 2".to_owned(),
            )),
            Ok(t) => Ok(ThresholdSpec::Exact(t)),
            Err(_) => Err(PolicyError::BadThreshold(format!(
                "threshold {s} is too large: at most 255 shards are supported"
            ))),
        }
    }
}

impl fmt::Display for ThresholdSpec {
    /// The inverse of [`FromStr`]: "auto:<policy>" or the number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThresholdSpec::Auto(policy) => write!(f, "auto:{policy}"),
            ThresholdSpec::Exact(t) => write!(f, "{t}"),
        }
    }
}

/// Why a threshold could not be chosen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// Sharing needs at least two recipients.
    #[error("need at least 2 recipients, got {0}")]
    TooFewRecipients(usize),
    /// GF(256) has only 255 nonzero evaluation points.
    #[error("at most 255 recipients are supported, got {0}")]
    TooManyRecipients(usize),
    /// An exact threshold below 2.
    #[error("a threshold of {0} would let any single shard reveal the secret")]
    ThresholdTooLow(u8),
    /// An exact threshold above the number of shards.
    #[error("threshold {t} exceeds the {n} shards: the secret could never be recovered")]
    ThresholdTooHigh { t: u8, n: usize },
    /// A policy name that is not one of [`Policy::all`].
    #[error("unknown threshold policy {0:?}: expected one of {names}", names = policy_names())]
    UnknownPolicy(String),
    /// A threshold argument that does not parse; the message says why.
    #[error("{0}")]
    BadThreshold(String),
}

/// "majority, supermajority", for error messages.
fn policy_names() -> String {
    Policy::all()
        .iter()
        .map(Policy::name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_thresholds() {
        let p = Policy::Majority;
        for (n, t) in [(2, 2), (3, 2), (4, 3), (5, 3), (7, 4), (10, 6), (255, 128)] {
            assert_eq!(p.threshold_for(n), Ok(t), "n = {n}");
        }
        assert_eq!(p.tolerated_losses(7), Ok(3));
        assert_eq!(p.tolerated_losses(2), Ok(0));
    }

    #[test]
    fn supermajority_thresholds() {
        let p = Policy::Supermajority;
        for (n, t) in [(2, 2), (3, 3), (4, 3), (6, 5), (7, 5), (9, 7), (255, 171)] {
            assert_eq!(p.threshold_for(n), Ok(t), "n = {n}");
        }
        assert_eq!(p.tolerated_losses(7), Ok(2));
    }

    #[test]
    fn thresholds_always_in_range() {
        for &p in Policy::all() {
            assert_eq!(p.threshold_for(0), Err(PolicyError::TooFewRecipients(0)));
            assert_eq!(p.threshold_for(1), Err(PolicyError::TooFewRecipients(1)));
            for n in 2..=255u8 {
                let t = p.threshold_for(n).unwrap();
                assert!((2..=n).contains(&t), "{p} n={n} t={t}");
                // A strict majority: two disjoint groups can never both recover.
                assert!(2 * u16::from(t) > u16::from(n));
            }
        }
    }

    #[test]
    fn policy_parsing() {
        for &p in Policy::all() {
            assert_eq!(p.to_string().parse(), Ok(p));
        }
        assert_eq!(" Majority ".parse(), Ok(Policy::Majority));
        let err = "quorum".parse::<Policy>().unwrap_err();
        assert_eq!(err, PolicyError::UnknownPolicy("quorum".into()));
        assert_eq!(
            err.to_string(),
            "unknown threshold policy \"quorum\": expected one of majority, supermajority"
        );
    }

    #[test]
    fn spec_parsing() {
        use ThresholdSpec::*;
        assert_eq!("auto".parse(), Ok(Auto(Policy::Majority)));
        assert_eq!(
            "auto:supermajority".parse(),
            Ok(Auto(Policy::Supermajority))
        );
        assert_eq!("3".parse(), Ok(Exact(3)));
        assert_eq!("255".parse(), Ok(Exact(255)));
        assert_eq!("1".parse(), Ok(Exact(1)));
        for spec in [
            Auto(Policy::Majority),
            Auto(Policy::Supermajority),
            Exact(4),
        ] {
            assert_eq!(spec.to_string().parse(), Ok(spec));
        }

        let msg = |s: &str| s.parse::<ThresholdSpec>().unwrap_err().to_string();
        assert_eq!(
            msg("auto:quorum"),
            "unknown threshold policy \"quorum\": expected one of majority, supermajority"
        );
        assert_eq!(
            msg("0"),
            "a threshold of 0 is meaningless: it must be at least 2"
        );
        assert_eq!(
            msg("256"),
            "threshold 256 is too large: at most 255 shards are supported"
        );
        assert_eq!(
            msg("99999999999999999999999"),
            "threshold 99999999999999999999999 is too large: at most 255 shards are supported"
        );
        for bad in ["", " ", "three", "-1", "+3", "2.5", "manual:3"] {
            assert!(msg(bad).starts_with("invalid threshold"), "{bad}");
        }
        assert_eq!(
            "auto:".parse::<ThresholdSpec>(),
            Err(PolicyError::UnknownPolicy(String::new()))
        );
        assert_eq!(
            msg("three"),
            "invalid threshold \"three\": expected \"auto\", \"auto:<policy>\" \
             (majority, supermajority) or a number from 2 to 255"
        );
    }

    #[test]
    fn resolve() {
        use ThresholdSpec::*;
        assert_eq!(Auto(Policy::Majority).resolve(7), Ok(4));
        assert_eq!(Auto(Policy::Supermajority).resolve(7), Ok(5));
        assert_eq!(Exact(4).resolve(4), Ok(4));
        assert_eq!(Exact(2).resolve(255), Ok(2));

        let msg = |spec: ThresholdSpec, n| spec.resolve(n).unwrap_err().to_string();
        assert_eq!(
            msg(Auto(Policy::Majority), 1),
            "need at least 2 recipients, got 1"
        );
        assert_eq!(msg(Exact(2), 0), "need at least 2 recipients, got 0");
        assert_eq!(
            msg(Exact(2), 256),
            "at most 255 recipients are supported, got 256"
        );
        assert_eq!(
            msg(Exact(1), 4),
            "a threshold of 1 would let any single shard reveal the secret"
        );
        assert_eq!(
            msg(Exact(5), 4),
            "threshold 5 exceeds the 4 shards: the secret could never be recovered"
        );
    }
}
