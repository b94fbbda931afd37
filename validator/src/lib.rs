//! pqvault validator: the daemon that keeps a sealed shard, talks to its
//! peers over mutual TLS with a hybrid post-quantum key exchange, scores
//! their health and exports metrics.
//!
//! - [`config`]: TOML file, environment and flags.
//! - [`tls`]: the one rustls configuration (aws-lc-rs, X25519MLKEM768).
//! - [`store`]: crash-safe shard custody.
//! - [`server`], [`api`]: the mutual-TLS peer API.
//! - [`status`]: `GET /v1/status`, the operator's read-only view.
//! - [`recovery`]: the operator's recovery requests, answered sealed to a
//!   one-time key.
//! - [`listener`]: connection cap and header/idle timeout of every port.
//! - [`peer`]: the mesh client.
//! - [`ops`], [`metrics`]: health, readiness and Prometheus metrics.
//! - [`role`]: holder, spare, stale or syncing, as readiness and metrics say.
//! - [`daemon`]: shared state, start-up and probing.
//! - [`artifacts`]: signed model artifacts: store, anti-entropy, APIs.
//! - [`custody`]: checking that every holder still has its committed shard.
//! - [`discovery`]: members from DNS (a Kubernetes headless service).
//! - [`membership`]: members the operator removed (`PQVN`).
//! - [`repair`]: the repair round: messages and state machines.
//! - [`rounds`]: driving repair rounds over the peer API.
//! - [`reshare`]: re-sharing among the holders: refresh and new (t, n).
//! - [`epochs`]: moving a vault to a certified new epoch after a repair.
//! - [`heal`]: autonomous healing: leading repairs onto spare members.
//! - [`consensus`]: the replicated epoch log (openraft).
//! - [`retry`]: backoff and failure counts shared by every retry loop.
//! - [`unsealed`]: a short-lived cache of our own unsealed shares.
//! - [`withdraw`]: refusing and withdrawing a stalled decision of the
//!   epoch log (D53).
//! - [`failpoint`]: crash points at every persistence step (test builds only).

pub mod api;
pub mod artifacts;
pub mod bodies;
pub mod byzantine;
pub mod config;
pub mod consensus;
pub mod custody;
pub mod daemon;
pub mod discovery;
pub mod epochs;
pub mod failpoint;
pub mod heal;
pub mod keyring;
pub mod listener;
pub mod membership;
pub mod metrics;
pub mod ops;
pub mod peer;
pub mod proposals;
pub mod recovery;
pub mod repair;
pub mod reshare;
pub mod retry;
pub mod role;
pub mod rounds;
pub mod server;
pub mod state;
pub mod status;
pub mod store;
pub mod successor;
pub mod tls;
pub mod transition;
pub mod unsealed;
pub mod withdraw;
