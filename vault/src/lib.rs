//! pqvault core: hybrid post-quantum sealing, GF(256) Shamir sharing, signed
//! manifests.
//!
//! This crate is pure: no network, no daemon. The validator and mesh-agent
//! crates build on it. Modules, one concept each:
//!
//! - [`codec`]: the bounded binary codec every format uses.
//! - [`kem`]: X25519, ML-KEM-768 and HQC-192 behind one trait, and the
//!   hybrid combiner.
//! - [`sign`]: hybrid Ed25519 + ML-DSA-65 signatures.
//! - [`identity`]: validator/operator identities and fingerprints.
//! - [`epoch_key`], [`initial_key`]: the KEM keys shards are sealed to
//!   (per epoch, and for genesis), erased once their epoch is left.
//! - [`gf256`], [`shamir`]: constant-time field arithmetic and sharing.
//! - [`decode`]: Berlekamp-Welch decoding, correcting and naming wrong
//!   shares.
//! - [`policy`]: adaptive threshold policies.
//! - [`governance`]: the operator-signed transition policy (f, floor, shrink).
//! - [`share`], [`seal`]: share records and sealed shards.
//! - [`manifest`]: the signed record of a vault epoch.
//! - [`create`], [`recover`]: the two operations an operator runs.
//! - [`recovery_request`]: recovery through the validators: the signed
//!   request and the holders' answers sealed to a one-time key.
//! - [`repair`]: share repair and re-sharing arithmetic for the mesh.
//! - [`epoch`]: epoch certificates chaining manifests across repairs.
//! - [`membership`]: the operator-signed removal of mesh members.
//! - [`meshca`]: the mesh CA issuing validator TLS certificates.
//! - [`slip39`]: SLIP-39 mnemonic paper backups of a secret.
//! - [`fsio`]: atomic, permission-aware file writes.
//! - [`inspect`]: describing any pqvault file.
//! - [`artifact`]: signed, quantized spiking-network artifacts.

pub mod artifact;
pub mod chain;
pub mod codec;
pub mod create;
pub mod dealing;
pub mod decode;
pub mod epoch;
pub mod epoch_key;
pub mod fsio;
pub mod gf256;
pub mod governance;
pub mod identity;
pub mod initial_key;
pub mod inspect;
pub mod kem;
pub mod manifest;
pub mod membership;
pub mod meshca;
pub mod operator_signed;
pub mod policy;
pub mod recover;
pub mod recovery_request;
pub mod repair;
pub mod seal;
pub mod shamir;
pub mod share;
pub mod sign;
pub mod slip39;
