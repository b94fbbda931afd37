//! The transition core: who may move a vault from one epoch to the next.
//!
//! Sans-IO, in the manner of quinn-proto and rustls:
//! - [`proposal`]: the wire formats of proposals, votes, certified
//!   proposals and aborts;
//! - [`authorize`](mod@authorize): the pure rules that say whether an input may act;
//! - [`gate`]: the one function every proposal, certified proposal, abort
//!   and certified abort passes through ([`gate::admit`]: the rules
//!   composed, and the effects an admitted input has, in order);
//! - [`replacements`]: the leader's choice of who leads and who takes each
//!   lost share;
//! - [`heal`]: healing's decision for one vault in one pass (finish an
//!   unfinished commit, wait, refresh, finish the log's decided successor,
//!   shrink, or repair with which rounds), asking the driver for each
//!   costly fact as it reaches it;
//! - [`attempt`]: the leader's phases of one attempt, from certification
//!   to commit, and what a failure in each calls for;
//! - [`signing`]: the checks a holder runs, in order, before it signs a
//!   successor; [`successor`] the rules those checks apply.
//!
//! Nothing here touches the network, the store, a clock or an RNG; the
//! validator's drivers (`crate::proposals`, `crate::rounds`,
//! `crate::reshare`, `crate::heal`, `crate::epochs`) bring the inputs (elapsed times and
//! random round ids included) and carry out the decisions.
//!
//! The rule (docs/protocol.md, "Certified proposals"): no helper, dealer or
//! replacement acts on anything but a proposal signed by a quorum of the
//! epoch's holders, each of which judged every target lost in its own view
//! and votes for one proposal per (epoch, attempt). An attempt that fails
//! after it was certified ends with a quorum-signed abort, which frees the
//! votes for the next attempt without waiting for the attempt timeout.

pub mod attempt;
pub mod authorize;
pub mod gate;
pub mod heal;
pub mod proposal;
pub mod replacements;
pub mod signing;
#[cfg(test)]
mod simulation;
pub mod successor;

pub use authorize::{
    authorize, authorize_abort, judge, judge_abort, not_aborted, AbortView, Chain, OwnView,
    PastVote, Refusal, Rules,
};
pub use proposal::{Abort, Action, CertifiedAbort, CertifiedProposal, Proposal, Vote};

/// A t-of-n manifest body of `epoch` held by `holders` (index k + 1 by the
/// k-th, named `validator-{h}`, fingerprint `fp(h)`): the unit tests'
/// epochs.
#[cfg(test)]
pub(crate) fn test_body(
    epoch: u64,
    holders: &[usize],
    t: u8,
    fp: impl Fn(usize) -> vault::identity::Fingerprint,
) -> vault::manifest::ManifestBody {
    vault::manifest::ManifestBody {
        suite: vault::kem::hybrid::Suite::DEFAULT,
        vault_id: vault::manifest::VaultId::from_bytes([9; 16]),
        epoch,
        created_unix: 0,
        threshold: t,
        n: holders.len() as u8,
        secret_len: 32,
        secret_commitment: [0; 32],
        shards: holders
            .iter()
            .enumerate()
            .map(|(k, h)| vault::manifest::ShardEntry {
                index: k as u8 + 1,
                recipient: fp(*h),
                recipient_name: format!("validator-{h}"),
                blob_hash: [0; 32],
                share_commitment: [0; 32],
            })
            .collect(),
    }
}
