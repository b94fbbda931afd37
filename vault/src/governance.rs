//! The operator-signed transition policy of a vault (`PQVL`).
//!
//! Who may move a vault between epochs, and to what, is the operator's
//! decision, not a validator's configuration: the policy fixes `f` (how
//! many members may lie), the threshold floor t' may never go below, and
//! how a shrink chooses t' for n' holders. `vault create --byzantine F
//! --floor T` signs one at genesis; `vault policy sign` signs a newer one
//! (a higher version replaces a lower, never the reverse). A vault without
//! a policy behaves as `f = 0`, floor 2, majority shrink.
//!
//! The arithmetic (../shared/DESIGN.md, "Parameters and their arithmetic"):
//! secrecy needs `t >= f + 1`; two certificates of one epoch share at
//! least `f + 1` signers with `quorum = max(t, ceil((n + f + 1) / 2))`;
//! healing needs `quorum <= n - f`, hence `n >= 3f + 1`; naming up to `f`
//! liars among `L` live holders needs `L >= t + 2f`.

use crate::codec::{FormatError, Kind, Reader, Writer};
use crate::identity::{Fingerprint, SecretIdentity};
use crate::manifest::VaultId;
use crate::operator_signed;
use crate::policy::Policy;
use crate::sign::SignError;
use thiserror::Error;

/// Wire kind of a signed policy.
pub const POLICY_KIND: Kind = Kind {
    magic: *b"PQVL",
    name: "pqvault transition policy",
    version: 1,
};

/// Signature domain of policies.
pub const POLICY_SIG_DOMAIN: &str = "transition-policy";

/// Why a policy is refused.
#[derive(Debug, Error)]
pub enum GovernanceError {
    /// Malformed bytes.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The numbers cannot be met.
    #[error("policy cannot hold: {0}")]
    Unsound(String),
    /// Signature or signer wrong.
    #[error("policy signature: {0}")]
    Signature(String),
    /// Signing failed.
    #[error("signing the policy: {0}")]
    Signing(#[from] SignError),
}

/// What the operator decides about a vault's transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransitionPolicy {
    /// Vault.
    pub vault_id: VaultId,
    /// Version: a higher one replaces a lower one.
    pub version: u32,
    /// First epoch whose transitions this policy governs (certificates of
    /// steps leaving earlier epochs are counted under the rules they were
    /// made with).
    pub effective_from: u64,
    /// Members that may lie (0: crashes only).
    pub f: u8,
    /// Lowest threshold any transition may reach.
    pub floor: u8,
    /// How a shrink picks t' for n' holders (never below `floor`).
    pub shrink: Policy,
}

/// Quorum of a `t`-of-`n` epoch with up to `f` liars:
/// `max(t, ceil((n + f + 1) / 2))`; with `f = 0` it is `max(t, n/2 + 1)`.
pub fn quorum(t: u8, n: u8, f: u8) -> u8 {
    let need = (u16::from(n) + u16::from(f) + 1).div_ceil(2);
    t.max(u8::try_from(need).unwrap_or(u8::MAX))
}

/// The threshold a shrink to `n_new` holders takes under `rule` and
/// `floor`: the rule's, never below the floor; `None` if that exceeds
/// `n_new` (the operator must act).
pub fn shrink_threshold(rule: Policy, floor: u8, n_new: u8) -> Option<u8> {
    let t = rule.threshold_for(n_new).ok()?.max(floor);
    (t <= n_new).then_some(t)
}

/// What a `t`-of-`n` vault under `f` survives, for `vault create` to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Survives {
    /// Votes a transition needs.
    pub quorum: u8,
    /// Lost holders the mesh heals on its own (`n - quorum`).
    pub heals_lost: u8,
    /// Liars among the participants a transition still detects.
    pub detects_liars: u8,
    /// Lost holders with which up to `f` liars can still be named
    /// (`L >= t + 2f` live holders); `None` if never.
    pub names_liars_with_lost: Option<u8>,
}

impl TransitionPolicy {
    /// The policy a vault without one follows.
    pub fn legacy(vault_id: VaultId) -> Self {
        TransitionPolicy {
            vault_id,
            version: 0,
            effective_from: 0,
            f: 0,
            floor: 2,
            shrink: Policy::Majority,
        }
    }

    /// The default `f` for `n` holders: 1 (one compromised sidecar is the
    /// everyday attacker) where `n >= 4` and `t >= 2` allow it, else 0.
    pub fn default_f(t: u8, n: u8) -> u8 {
        u8::from(n >= 4 && t >= 2)
    }

    /// Checks the numbers against a `t`-of-`n` epoch: `t >= f + 1`,
    /// `n >= 3f + 1`, `2 <= floor <= t`, `floor >= f + 1`.
    pub fn check(&self, t: u8, n: u8) -> Result<Survives, GovernanceError> {
        let f = self.f;
        let bad = |why: String| Err(GovernanceError::Unsound(why));
        if u16::from(t) < u16::from(f) + 1 {
            return bad(format!(
                "t = {t} with f = {f}: f liars plus nobody else must stay below t (t >= f + 1)"
            ));
        }
        if u16::from(n) < 3 * u16::from(f) + 1 {
            return bad(format!(
                "n = {n} with f = {f}: a quorum of honest live holders needs n >= 3f + 1 = {}",
                3 * u16::from(f) + 1
            ));
        }
        if self.floor < 2 || self.floor > t {
            return bad(format!(
                "floor {} must be between 2 and t = {t}",
                self.floor
            ));
        }
        if u16::from(self.floor) < u16::from(f) + 1 {
            return bad(format!(
                "floor {} with f = {f}: the floor must be at least f + 1",
                self.floor
            ));
        }
        let q = quorum(t, n, f);
        let named = (u16::from(t) + 2 * u16::from(f) <= u16::from(n)).then(|| n - t - 2 * f);
        Ok(Survives {
            quorum: q,
            heals_lost: n.saturating_sub(q),
            detects_liars: f,
            names_liars_with_lost: named,
        })
    }

    /// Liars tolerated for the step leaving epoch `from_epoch`.
    pub fn f_at(&self, from_epoch: u64) -> u8 {
        if from_epoch >= self.effective_from {
            self.f
        } else {
            0
        }
    }

    /// The threshold a shrink to `n_new` holders takes (see
    /// [`shrink_threshold`]).
    pub fn shrink_threshold(&self, n_new: u8) -> Option<u8> {
        shrink_threshold(self.shrink, self.floor, n_new)
    }

    fn write_body(&self, w: &mut Writer) {
        let shrink = match self.shrink {
            Policy::Majority => 1,
            Policy::Supermajority => 2,
        };
        w.bytes(self.vault_id.as_bytes())
            .u32(self.version)
            .u64(self.effective_from)
            .u8(self.f)
            .u8(self.floor)
            .u8(shrink);
    }

    /// Signs the policy: `"PQVL" u16 vault_id:[16] version:u32
    /// effective_from:u64 f:u8 floor:u8 shrink:u8 signer:var ed25519:[64]
    /// mldsa:[3309]`.
    pub fn sign(&self, key: &SecretIdentity) -> Result<Vec<u8>, GovernanceError> {
        let mut w = Writer::new(POLICY_KIND);
        self.write_body(&mut w);
        Ok(operator_signed::finish_signed(w, key, POLICY_SIG_DOMAIN)?)
    }

    /// Decodes a signed policy and verifies it was signed by `trusted`.
    pub fn open(bytes: &[u8], trusted: &Fingerprint) -> Result<Self, GovernanceError> {
        let mut r = Reader::open(bytes, POLICY_KIND)?;
        let vault_id = VaultId::from_bytes(r.array("vault id")?);
        let version = r.u32("version")?;
        let effective_from = r.u64("effective from epoch")?;
        let f = r.u8("f")?;
        let floor = r.u8("floor")?;
        let shrink = match r.u8("shrink rule")? {
            1 => Policy::Majority,
            2 => Policy::Supermajority,
            other => {
                return Err(
                    FormatError::invalid("shrink rule", format!("unknown rule {other}")).into(),
                )
            }
        };
        operator_signed::verify_tail(
            r,
            trusted,
            POLICY_SIG_DOMAIN,
            "vault",
            GovernanceError::Signature,
        )?;
        Ok(TransitionPolicy {
            vault_id,
            version,
            effective_from,
            f,
            floor,
            shrink,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(f: u8, floor: u8) -> TransitionPolicy {
        TransitionPolicy {
            vault_id: VaultId::from_bytes([5; 16]),
            version: 1,
            effective_from: 1,
            f,
            floor,
            shrink: Policy::Majority,
        }
    }

    #[test]
    fn quorum_follows_the_design_arithmetic() {
        assert_eq!(quorum(4, 7, 0), 4);
        assert_eq!(quorum(4, 7, 1), 5);
        assert_eq!(quorum(2, 3, 0), 2);
        assert_eq!(quorum(3, 10, 3), 7);
        // f = 0 is today's max(t, n/2 + 1).
        for n in 2..=30u8 {
            for t in 2..=n {
                assert_eq!(quorum(t, n, 0), t.max(n / 2 + 1), "{t}-of-{n}");
            }
        }
    }

    /// The worked example of DESIGN.md: n = 7, t = 4.
    #[test]
    fn the_worked_example_holds() {
        let s = policy(0, 2).check(4, 7).unwrap();
        assert_eq!((s.quorum, s.heals_lost), (4, 3));
        let s = policy(1, 2).check(4, 7).unwrap();
        assert_eq!((s.quorum, s.heals_lost), (5, 2));
        // L = 5 live with 2 lost: t + 2f = 6 > 5, liars detected not named.
        assert_eq!(s.names_liars_with_lost, Some(1));
    }

    #[test]
    fn unsound_policies_are_refused() {
        assert!(policy(2, 3).check(4, 6).is_err(), "n < 3f + 1");
        assert!(policy(1, 2).check(1, 4).is_err(), "t < f + 1");
        assert!(policy(1, 5).check(4, 7).is_err(), "floor above t");
        assert!(policy(2, 2).check(4, 7).is_err(), "floor below f + 1");
        assert!(policy(1, 2).check(4, 7).is_ok());
    }

    #[test]
    fn shrinks_never_go_below_the_floor() {
        let p = policy(1, 3);
        assert_eq!(p.shrink_threshold(3), Some(3)); // majority says 2
        assert_eq!(p.shrink_threshold(5), Some(3));
        assert_eq!(p.shrink_threshold(2), None); // 3 > 2 holders
    }

    #[test]
    fn signed_by_the_operator_only_and_tamper_evident() {
        let op = SecretIdentity::generate("operator").unwrap();
        let other = SecretIdentity::generate("other").unwrap();
        let p = policy(1, 2);
        let bytes = p.sign(&op).unwrap();
        assert_eq!(
            TransitionPolicy::open(&bytes, &op.public().fingerprint()).unwrap(),
            p
        );
        assert!(TransitionPolicy::open(&bytes, &other.public().fingerprint()).is_err());
        let mut bad = bytes.clone();
        bad[34] ^= 1; // f
        assert!(TransitionPolicy::open(&bad, &op.public().fingerprint()).is_err());
        for cut in [0, 10, bytes.len() - 1] {
            assert!(TransitionPolicy::open(&bytes[..cut], &op.public().fingerprint()).is_err());
        }
    }
}
