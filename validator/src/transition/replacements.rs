//! Who takes each lost share: the leader's choice of replacements, sans-IO.
//!
//! Inputs are the lost indices, the holders that came back without a shard
//! (same key, fresh disk), the live spares in a fixed order, and the spares
//! already named for an index of this polynomial in an earlier attempt
//! (`data/named/`, D27). The rule, which voters check independently
//! ([`crate::transition::authorize`]): a member receives at most one share
//! of a polynomial, so a named spare may only ever get the index it was
//! named for; a returning holder takes its own index back first.

use std::collections::BTreeMap;
use vault::identity::Fingerprint;

/// The candidates for one healing pass.
#[derive(Debug, Clone)]
pub struct Candidates<T> {
    /// Lost share indices, in manifest order.
    pub lost: Vec<u8>,
    /// Holders back without a shard: index -> (fingerprint, member).
    pub returning: BTreeMap<u8, (Fingerprint, T)>,
    /// Live spares, in the order they are offered (by member id).
    pub spares: Vec<(Fingerprint, T)>,
    /// Spares named for an index of this polynomial before.
    pub named: BTreeMap<Fingerprint, u8>,
}

impl<T: Clone> Candidates<T> {
    /// The spares that may take one of the lost shares: every unnamed
    /// spare, and a named one only while its own index is lost.
    pub fn usable_spares(&self) -> Vec<(Fingerprint, T)> {
        self.spares
            .iter()
            .filter(|(fp, _)| self.named.get(fp).is_none_or(|i| self.lost.contains(i)))
            .cloned()
            .collect()
    }

    /// Whether every lost share can get a replacement now; if not, the
    /// leader waits for spares (or, after `reshare_after`, re-shares).
    pub fn enough(&self) -> bool {
        self.usable_spares().len() + self.returning.len() >= self.lost.len()
    }

    /// One replacement per lost index, in `lost` order: the returning
    /// holder of that index, else the spare named for it, else the next
    /// unnamed spare. An index with none is left out.
    pub fn assign(&self) -> Vec<(u8, (Fingerprint, T))> {
        let (mut kept, free): (Vec<_>, Vec<_>) = self
            .usable_spares()
            .into_iter()
            .partition(|(fp, _)| self.named.contains_key(fp));
        let mut free = free.into_iter();
        self.lost
            .iter()
            .filter_map(|i| {
                let again = kept
                    .iter()
                    .position(|(fp, _)| self.named.get(fp) == Some(i))
                    .map(|k| kept.remove(k));
                let to = self
                    .returning
                    .get(i)
                    .cloned()
                    .or(again)
                    .or_else(|| free.next())?;
                Some((*i, to))
            })
            .collect()
    }
}

/// The member that leads healing: the lowest id among the live holders of
/// the epoch (`None` when none is live). Every member computes it from its
/// own view; with the epoch log on, which proposal wins is decided there.
pub fn leader<'a>(live_holders: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    live_holders.into_iter().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(b: u8) -> Fingerprint {
        Fingerprint::from_bytes([b; 32])
    }

    fn spares(ids: &[u8]) -> Vec<(Fingerprint, String)> {
        ids.iter().map(|&b| (fp(b), format!("spare-{b}"))).collect()
    }

    #[test]
    fn free_spares_go_to_lost_indices_in_order() {
        let c = Candidates {
            lost: vec![2, 5],
            returning: BTreeMap::new(),
            spares: spares(&[8, 9, 10]),
            named: BTreeMap::new(),
        };
        assert!(c.enough());
        let a = c.assign();
        assert_eq!(
            a.iter().map(|(i, (f, _))| (*i, *f)).collect::<Vec<_>>(),
            [(2, fp(8)), (5, fp(9))]
        );
    }

    #[test]
    fn a_returning_holder_takes_its_own_index_back_first() {
        let c = Candidates {
            lost: vec![2, 5],
            returning: BTreeMap::from([(5, (fp(5), "validator-5".to_string()))]),
            spares: spares(&[8]),
            named: BTreeMap::new(),
        };
        let a = c.assign();
        assert_eq!(
            a.iter().map(|(i, (f, _))| (*i, *f)).collect::<Vec<_>>(),
            [(2, fp(8)), (5, fp(5))]
        );
    }

    /// Once per polynomial: a spare named for index 3 in an earlier attempt
    /// gets index 3 again while it is lost, and is never offered another.
    #[test]
    fn a_named_spare_gets_its_own_index_and_no_other() {
        let named = BTreeMap::from([(fp(8), 3)]);
        let c = Candidates {
            lost: vec![2, 3],
            returning: BTreeMap::new(),
            spares: spares(&[8, 9]),
            named: named.clone(),
        };
        let a = c.assign();
        assert_eq!(
            a.iter().map(|(i, (f, _))| (*i, *f)).collect::<Vec<_>>(),
            [(2, fp(9)), (3, fp(8))]
        );

        // Index 3 is no longer lost: the named spare is not usable at all,
        // so one spare cannot cover index 2 and the pass waits.
        let c = Candidates {
            lost: vec![2, 6],
            returning: BTreeMap::new(),
            spares: spares(&[8, 9]),
            named,
        };
        assert_eq!(c.usable_spares().len(), 1);
        assert!(!c.enough());
        let a = c.assign();
        assert_eq!(
            a.iter().map(|(i, (f, _))| (*i, *f)).collect::<Vec<_>>(),
            [(2, fp(9))]
        );
    }

    #[test]
    fn the_lowest_live_holder_id_leads() {
        assert_eq!(
            leader(["validator-3", "validator-10", "validator-2"]),
            Some("validator-10")
        );
        assert_eq!(leader(["validator-3", "validator-2"]), Some("validator-2"));
        assert_eq!(leader(Vec::<&str>::new()), None);
    }
}
