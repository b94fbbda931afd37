//! pqvault mesh agent: membership, failure detection, health scores and
//! replication helpers that the validator builds on.
//!
//! The mesh agent never learns what a shard means: it moves opaque,
//! already-sealed bytes and observes peers.
//!
//! - [`detector`]: SWIM-style failure detection with Lifeguard-style suspicion
//!   and local health awareness.
//! - [`health`]: per-peer health scores from probes, custody and epoch.

pub mod detector;
pub mod health;
