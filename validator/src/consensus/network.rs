//! openraft's RPCs over the mutual-TLS peer API: each is one POST with a
//! JSON body (`/v1/raft/append`, `/v1/raft/vote`, `/v1/raft/snapshot`);
//! the answer is the JSON of the callee's `Result`.

use super::record::{PeerNode, TypeConfig};
use crate::config::Member;
use crate::peer::{PeerClient, PeerError};
use crate::retry::{Backoff, Loop, Retry};
use crate::state::State;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Weak;
use std::time::Duration;

/// Largest RPC answer read (answers carry no entries).
const MAX_ANSWER: usize = 64 << 10;

/// How replication to an unreachable member backs off: from 100 ms up to
/// 400 ms (500 ms with jitter, openraft's own fixed wait), so that a member
/// coming back hears from the leader well within its election timeout.
pub const REPLICATION_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(100), Duration::from_millis(400));

/// Dials members with the control client.
#[derive(Clone)]
pub struct Network {
    client: PeerClient,
    state: Weak<State>,
}

impl Network {
    /// RPCs through `client`, to the addresses `state` knows now.
    pub fn new(client: PeerClient, state: Weak<State>) -> Self {
        Network { client, state }
    }
}

/// Where to dial validator `node` now: its address in the live member
/// list (static or discovered, so a moved pod is followed), else the
/// address recorded in the Raft membership (a hint only).
pub fn dial(state: &Weak<State>, node: &PeerNode) -> Member {
    let addr = state
        .upgrade()
        .and_then(|s| s.members().into_iter().find(|m| m.id == node.id))
        .map(|m| m.addr)
        .unwrap_or_else(|| node.addr.clone());
    Member {
        id: node.id.clone(),
        addr,
    }
}

/// One member as an RPC target.
pub struct Connection {
    client: PeerClient,
    state: Weak<State>,
    target: u64,
    node: PeerNode,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &PeerNode) -> Connection {
        Connection {
            client: self.client.clone(),
            state: self.state.clone(),
            target,
            node: node.clone(),
        }
    }
}

/// Why an RPC got no decodable answer.
#[derive(Debug, thiserror::Error)]
#[error("raft rpc to {peer}: {reason}")]
struct RpcFailure {
    peer: String,
    reason: String,
}

impl Connection {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
    ) -> Result<Resp, RPCError<u64, PeerNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        // A voter the operator removed is treated as down, both ways.
        if self
            .state
            .upgrade()
            .is_some_and(|s| s.is_removed(&self.node.id))
        {
            let e = RpcFailure {
                peer: self.node.id.clone(),
                reason: "removed by the operator".into(),
            };
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        }
        let body = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let member = dial(&self.state, &self.node);
        let r = match self.client.post(&member, path, body, MAX_ANSWER).await {
            Ok(r) => r,
            Err(e @ (PeerError::Transport { .. } | PeerError::Timeout(_))) => {
                return Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => return Err(RPCError::Network(NetworkError::new(&e))),
        };
        if r.status != 200 {
            let e = RpcFailure {
                peer: self.node.id.clone(),
                reason: format!(
                    "status {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body[..r.body.len().min(200)]).trim()
                ),
            };
            return Err(RPCError::Network(NetworkError::new(&e)));
        }
        let res: Result<Resp, RaftError<u64, E>> =
            serde_json::from_slice(&r.body).map_err(|e| {
                RPCError::Network(NetworkError::new(&RpcFailure {
                    peer: self.node.id.clone(),
                    reason: format!("undecodable answer: {e}"),
                }))
            })?;
        res.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, PeerNode, RaftError<u64>>> {
        self.call("/v1/raft/append", &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, PeerNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call("/v1/raft/snapshot", &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, PeerNode, RaftError<u64>>> {
        self.call("/v1/raft/vote", &rpc).await
    }

    /// The waits openraft takes between replication attempts to an
    /// unreachable member, each attempt counted (`crate::retry`); dropped
    /// at its next successful RPC.
    fn backoff(&self) -> openraft::network::Backoff {
        let mut retry = self
            .state
            .upgrade()
            .map(|s| Retry::new(&s.metrics, Loop::EpochLogReplication, REPLICATION_BACKOFF));
        let mut uncounted = REPLICATION_BACKOFF;
        openraft::network::Backoff::new(std::iter::from_fn(move || {
            Some(match &mut retry {
                Some(r) => r.failed(),
                None => uncounted.on_failure(),
            })
        }))
    }
}
