//! pqvault mesh agent: membership, failure detection, health scores and
//! replication helpers that the validator builds on.
//!
//! This crate is filled by the validator-mesh work; it exists now so the
//! workspace layout (validator -> mesh-agent -> vault) is fixed from day one.
