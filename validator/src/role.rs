//! This validator's role in the mesh, as `/readyz` and the `pqvault_role`
//! metric report it: a holder, a spare, a stale holder or still syncing.
//!
//! A pure function of what the validator holds and what its peers last
//! said in their `/v1/hello` answers, so it is tested without a mesh.

use std::collections::BTreeMap;

/// What a validator is to the vaults it knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// No member has answered since start: it cannot yet tell whether what
    /// it holds is current.
    Syncing,
    /// Holds a share of some vault at an epoch older than the one at least
    /// f + 1 peers report (so at least one honest peer): its share is of a
    /// retired polynomial until the mesh rebuilds one for it.
    Stale,
    /// Holds a share of a vault at the newest epoch its peers report.
    Holder,
    /// Holds no share: ready to take over a lost one.
    Spare,
}

impl Role {
    /// Every role, in the order of [`Role::name`]'s label values.
    pub const ALL: [Role; 4] = [Role::Holder, Role::Spare, Role::Stale, Role::Syncing];

    /// The label value (`pqvault_role{role=...}`) and `/readyz` word.
    pub fn name(self) -> &'static str {
        match self {
            Role::Holder => "holder",
            Role::Spare => "spare",
            Role::Stale => "stale",
            Role::Syncing => "syncing",
        }
    }
}

/// One vault this validator holds a share of.
#[derive(Clone, Debug)]
pub struct HeldVault {
    /// Vault id (hex).
    pub vault: String,
    /// Our epoch.
    pub epoch: u64,
    /// The vault's signed policy's f: a newer epoch counts once f + 1
    /// distinct peers report it (one liar cannot make us stale).
    pub f: u8,
}

/// The role, and for a stale holder which vault is behind (`"vault V at
/// epoch E, peers report N"`).
pub fn role(
    has_members: bool,
    heard_from_any: bool,
    held: &[HeldVault],
    peer_reports: &BTreeMap<String, Vec<(String, u64)>>,
) -> (Role, Option<String>) {
    if has_members && !heard_from_any {
        return (Role::Syncing, None);
    }
    for h in held {
        // Newer epochs reported for this vault, one per peer.
        let mut newer: Vec<u64> = peer_reports
            .values()
            .filter_map(|vaults| {
                vaults
                    .iter()
                    .find(|(v, e)| *v == h.vault && *e > h.epoch)
                    .map(|(_, e)| *e)
            })
            .collect();
        if newer.len() > usize::from(h.f) {
            // The (f+1)-th highest report: at least one honest peer has it.
            newer.sort_unstable_by(|a, b| b.cmp(a));
            let attested = newer[usize::from(h.f)];
            return (
                Role::Stale,
                Some(format!(
                    "vault {} at epoch {}, peers report {attested}",
                    h.vault, h.epoch
                )),
            );
        }
    }
    if held.is_empty() {
        (Role::Spare, None)
    } else {
        (Role::Holder, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(epoch: u64, f: u8) -> Vec<HeldVault> {
        vec![HeldVault {
            vault: "aa".into(),
            epoch,
            f,
        }]
    }

    fn reports(epochs: &[u64]) -> BTreeMap<String, Vec<(String, u64)>> {
        epochs
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("validator-{i}"), vec![("aa".to_string(), *e)]))
            .collect()
    }

    #[test]
    fn nothing_heard_yet_is_syncing_unless_alone() {
        assert_eq!(
            role(true, false, &held(1, 0), &reports(&[])).0,
            Role::Syncing
        );
        assert_eq!(
            role(false, false, &held(1, 0), &reports(&[])).0,
            Role::Holder
        );
        assert_eq!(role(false, false, &[], &reports(&[])).0, Role::Spare);
    }

    #[test]
    fn holder_and_spare() {
        assert_eq!(
            role(true, true, &held(3, 1), &reports(&[3, 3, 2])).0,
            Role::Holder
        );
        assert_eq!(role(true, true, &[], &reports(&[3, 3])).0, Role::Spare);
    }

    #[test]
    fn stale_needs_f_plus_one_peers_at_a_newer_epoch() {
        // One peer claiming epoch 9 is not enough under f = 1.
        assert_eq!(
            role(true, true, &held(1, 1), &reports(&[9, 1, 1])).0,
            Role::Holder
        );
        let (r, why) = role(true, true, &held(1, 1), &reports(&[9, 3, 1]));
        assert_eq!(r, Role::Stale);
        // The attested epoch is the second highest: 9 may be a lie.
        assert_eq!(why.as_deref(), Some("vault aa at epoch 1, peers report 3"));
        // f = 0 (legacy rules): one report suffices.
        assert_eq!(role(true, true, &held(1, 0), &reports(&[2])).0, Role::Stale);
    }
}
