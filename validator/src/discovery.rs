//! DNS discovery: members are the validators that answer at the addresses
//! a name resolves to (a Kubernetes headless service lists its ready and
//! not-ready pods' addresses under one name).
//!
//! Every `discovery.interval_ms` the name is resolved; each address that no
//! known member has is dialled, and the TLS handshake (mesh CA, our client
//! certificate) tells which validator id answers there. That id becomes a
//! member at that address, or a known member moves there (a rescheduled pod
//! gets a new IP). Discovery only adds: a member that disappears from DNS is
//! left to the failure detector, which declares it dead, and to healing.

use crate::config::{DiscoveryConfig, Member};
use crate::retry::{Backoff, Loop, Retry};
use crate::state::State;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Longest wait between failed look-ups: a name that comes back is
/// seen within a minute.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Resolves and dials every `config.interval_ms`, forever. A failed
/// look-up (the name does not resolve) backs off from one interval up to
/// [`BACKOFF_CAP`] and is counted (`crate::retry`); a success resumes the
/// interval.
pub async fn discovery_loop(state: Arc<State>, config: DiscoveryConfig) {
    let interval = Duration::from_millis(config.interval_ms);
    let mut retry = Retry::new(
        &state.metrics,
        Loop::Discovery,
        Backoff::new(interval, BACKOFF_CAP.max(interval)),
    );
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Addresses where we found ourselves: not dialled again.
    let mut own = BTreeSet::new();
    loop {
        tick.tick().await;
        match discover_once(&state, &config, &mut own).await {
            Ok(n) => {
                retry.succeeded();
                if n > 0 {
                    tracing::info!(changed = n, "discovery updated the membership");
                }
            }
            Err(e) => {
                let wait = retry.failed();
                tracing::warn!(
                    name = %config.dns,
                    failures = retry.failures(),
                    next_try_ms = wait.as_millis() as u64,
                    "discovery: {e}"
                );
                tokio::time::sleep(wait).await;
                tick.reset_immediately();
            }
        }
    }
}

/// One look-up; returns how many members were added or moved.
pub async fn discover_once(
    state: &Arc<State>,
    config: &DiscoveryConfig,
    own: &mut BTreeSet<SocketAddr>,
) -> Result<usize, String> {
    let found: BTreeSet<SocketAddr> = tokio::net::lookup_host((config.dns.as_str(), config.port))
        .await
        .map_err(|e| format!("cannot resolve: {e}"))?
        .collect();
    let known: BTreeSet<String> = state.members().into_iter().map(|m| m.addr).collect();
    let mut changed = 0;
    for addr in found {
        if own.contains(&addr) || known.contains(&addr.to_string()) {
            continue;
        }
        match state.discover.identify(addr).await {
            Ok(id) if id == state.id => {
                own.insert(addr);
            }
            Ok(id) => {
                let m = Member {
                    id,
                    addr: addr.to_string(),
                };
                if state.add_member(m) {
                    changed += 1;
                }
            }
            Err(e) => tracing::debug!(%addr, "discovery: no validator answered: {e}"),
        }
    }
    Ok(changed)
}
