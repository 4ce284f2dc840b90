//! The client side of the controller transport: openraft's RPCs to one peer over a TCP
//! connection opened on first use and reopened after any failure.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tokio::net::TcpStream;

use super::rpc::{read_frame, write_frame, Request, Response};
use super::{ControllerNode, NodeId, TypeConfig};
use crate::quorum::Contacts;

/// Connects to peers at the address their membership entry gives (`ControllerNode::addr`).
/// Followers' answers to AppendEntries are noted in `contacts` for DescribeQuorum.
pub struct Network {
    pub contacts: Arc<Contacts>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &ControllerNode) -> PeerClient {
        let mut client = PeerClient::new(target, node.addr.clone());
        client.contacts = Some(self.contacts.clone());
        client
    }
}

pub struct PeerClient {
    target: NodeId,
    addr: String,
    conn: Option<TcpStream>,
    /// Whether the last call got through: a peer going down is logged once, not at every
    /// heartbeat openraft retries while it stays down.
    reachable: bool,
    /// Where answered AppendEntries are noted; `None` for calls outside replication.
    contacts: Option<Arc<Contacts>>,
}

/// Unreachable makes openraft back off before retrying; other failures are retried sooner.
#[derive(Debug)]
pub enum CallError {
    Unreachable(io::Error),
    Failed(io::Error),
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, ControllerNode, RaftError<NodeId, E>>>;

impl PeerClient {
    pub fn new(target: NodeId, addr: String) -> Self {
        PeerClient {
            target,
            addr,
            conn: None,
            reachable: true,
            contacts: None,
        }
    }

    /// One request and its response within `ttl`. After a failure the connection may hold a
    /// late response, so it is dropped and the next call reconnects.
    pub async fn call(&mut self, request: &Request, ttl: Duration) -> Result<Response, CallError> {
        let timed_out = || {
            CallError::Failed(io::Error::new(
                io::ErrorKind::TimedOut,
                "controller RPC timed out",
            ))
        };
        let result = tokio::time::timeout(ttl, self.exchange(request))
            .await
            .unwrap_or_else(|_| Err(timed_out()));
        match (&result, self.reachable) {
            (Err(CallError::Unreachable(e) | CallError::Failed(e)), true) => {
                tracing::warn!(peer = self.target, addr = %self.addr, "controller peer unreachable: {e}");
                self.reachable = false;
            }
            (Ok(_), false) => {
                tracing::info!(peer = self.target, addr = %self.addr, "controller peer reachable again");
                self.reachable = true;
            }
            _ => {}
        }
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn exchange(&mut self, request: &Request) -> Result<Response, CallError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let conn = TcpStream::connect(&self.addr)
                    .await
                    .map_err(CallError::Unreachable)?;
                conn.set_nodelay(true).map_err(CallError::Failed)?;
                self.conn.insert(conn)
            }
        };
        write_frame(conn, request)
            .await
            .map_err(CallError::Failed)?;
        read_frame(conn).await.map_err(CallError::Failed)
    }

    /// Sends one openraft RPC; `unwrap` picks its answer out of the response. The remote
    /// node's own error (its RaftError) and our transport failures map to openraft's RPCError.
    async fn rpc<T, E: std::error::Error>(
        &mut self,
        request: Request,
        option: RPCOption,
        unwrap: impl FnOnce(Response) -> Option<Result<T, RaftError<NodeId, E>>>,
    ) -> RpcResult<T, E> {
        let response = self
            .call(&request, option.hard_ttl())
            .await
            .map_err(transport_error)?;
        let remote = unwrap(response).ok_or_else(mismatched)?;
        remote.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn transport_error<E: std::error::Error>(
    e: CallError,
) -> RPCError<NodeId, ControllerNode, RaftError<NodeId, E>> {
    match e {
        CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
        CallError::Failed(e) => RPCError::Network(NetworkError::new(&e)),
    }
}

fn mismatched<E: std::error::Error>() -> RPCError<NodeId, ControllerNode, RaftError<NodeId, E>> {
    let e = io::Error::new(io::ErrorKind::InvalidData, "peer answered a different RPC");
    RPCError::Network(NetworkError::new(&e))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let answer = self
            .rpc(Request::AppendEntries(rpc), option, |r| match r {
                Response::AppendEntries(remote) => Some(remote),
                _ => None,
            })
            .await;
        if let (Ok(_), Some(contacts)) = (&answer, &self.contacts) {
            contacts.answered(self.target);
        }
        answer
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.rpc(Request::InstallSnapshot(rpc), option, |r| match r {
            Response::InstallSnapshot(remote) => Some(remote),
            _ => None,
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.rpc(Request::Vote(rpc), option, |r| match r {
            Response::Vote(remote) => Some(remote),
            _ => None,
        })
        .await
    }
}
