//! The transition core: who may move a vault from one epoch to the next.
//!
//! Sans-IO, in the manner of quinn-proto and rustls: [`proposal`] holds the
//! wire formats of proposals, votes, certified proposals and aborts,
//! [`authorize`] the pure functions that decide whether an input may act,
//! and [`replacements`] the leader's choice of who leads and who takes each
//! lost share.
//! Nothing here touches the network, the store or a clock; the validator's
//! drivers (`crate::proposals`, `crate::rounds`, `crate::reshare`,
//! `crate::heal`) bring the inputs and carry out the decisions.
//!
//! The rule (docs/protocol.md, "Certified proposals"): no helper, dealer or
//! replacement acts on anything but a proposal signed by a quorum of the
//! epoch's holders, each of which judged every target lost in its own view
//! and votes for one proposal per (epoch, attempt). An attempt that fails
//! after it was certified ends with a quorum-signed abort, which frees the
//! votes for the next attempt without waiting for the attempt timeout.

pub mod authorize;
pub mod proposal;
pub mod replacements;

pub use authorize::{
    authorize, authorize_abort, judge, judge_abort, not_aborted, AbortView, Chain, OwnView,
    PastVote, Refusal, Rules,
};
pub use proposal::{Abort, Action, CertifiedAbort, CertifiedProposal, Proposal, Vote};
