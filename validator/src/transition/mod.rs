//! The transition core: who may move a vault from one epoch to the next.
//!
//! Sans-IO, in the manner of quinn-proto and rustls: [`proposal`] holds the
//! wire formats of proposals, votes and certified proposals, and
//! [`authorize`] the pure functions that decide whether an input may act.
//! Nothing here touches the network, the store or a clock; the validator's
//! drivers (`crate::proposals`, `crate::rounds`, `crate::reshare`,
//! `crate::heal`) bring the inputs and carry out the decisions.
//!
//! The rule (docs/protocol.md, "Certified proposals"): no helper, dealer or
//! replacement acts on anything but a proposal signed by a quorum of the
//! epoch's holders, each of which judged every target lost in its own view
//! and votes for one proposal per (epoch, attempt).

pub mod authorize;
pub mod proposal;

pub use authorize::{authorize, judge, Chain, OwnView, PastVote, Refusal, Rules};
pub use proposal::{Action, CertifiedProposal, Proposal, Vote};
