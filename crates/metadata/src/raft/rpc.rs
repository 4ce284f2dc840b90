//! What controllers say to each other over TCP, and how it is framed.
//!
//! Frame bytes: `length: u32 BE | JSON payload`. One request at a time per connection, each
//! answered by one response, so no correlation ids are needed.

use std::io;

use crate::quorum::QuorumDescription;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Applied, ControllerNode, NodeId, TypeConfig};
use crate::liveness::HeartbeatReply;
use crate::quotas::mutation::{Charged, MutationCharge};
use crate::state::{BrokerId, Command};
use crate::voters::{VoterChange, VoterChangeRefused};

/// Bounds what a peer (or anything else connecting to the controller port) can make us
/// allocate; snapshot chunks are far smaller (openraft's default chunk is 3 MiB).
pub const MAX_FRAME: u32 = 64 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A command proposed on a controller that is not the leader, forwarded to the leader.
    Propose(Command),
    /// A broker's heartbeat, sent to (or forwarded to) the leader; never written to the log.
    BrokerHeartbeat {
        broker: BrokerId,
        epoch: u64,
    },
    /// DescribeQuorum asked of a controller that is not the leader, which alone knows the
    /// followers' progress.
    DescribeQuorum,
    /// A controller asks to be in the membership (as an observer if it is not a voter), with
    /// its address and directory id; sent to any controller, forwarded to the leader.
    Join {
        id: NodeId,
        node: ControllerNode,
    },
    /// AddRaftVoter or RemoveRaftVoter, forwarded to the leader.
    ChangeVoters(VoterChange),
    /// A client's topic mutations, charged to its controller mutation quota by the leader.
    ChargeMutation(MutationCharge),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Propose(Result<Applied, ProposeRefused>),
    BrokerHeartbeat(Result<HeartbeatReply, ProposeRefused>),
    DescribeQuorum(Result<QuorumDescription, ProposeRefused>),
    Join(Result<(), ProposeRefused>),
    ChangeVoters(Result<Result<(), VoterChangeRefused>, ProposeRefused>),
    ChargeMutation(Result<Charged, ProposeRefused>),
}

/// Why a forwarded proposal was not committed by the node it was sent to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposeRefused {
    /// That node is not the leader either (leadership moved meanwhile).
    NotLeader { leader: Option<NodeId> },
    /// Raft on that node failed or is shutting down.
    Unavailable(String),
}

pub async fn write_frame<T: Serialize>(
    out: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> io::Result<()> {
    let payload = serde_json::to_vec(message).map_err(io::Error::other)?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l <= MAX_FRAME);
    let len = len.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&payload);
    out.write_all(&frame).await?;
    out.flush().await
}

/// The next frame, or UnexpectedEof at a clean end of stream, or InvalidData for an oversized
/// or undecodable frame (the caller closes the connection).
pub async fn read_frame<T: DeserializeOwned>(
    input: &mut (impl AsyncRead + Unpin),
) -> io::Result<T> {
    let len = input.read_u32().await?;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the limit"),
        ));
    }
    let mut payload = vec![0; len as usize];
    input.read_exact(&mut payload).await?;
    serde_json::from_slice(&payload).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversize_is_rejected() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(
            &mut a,
            &Request::Propose(Command::FenceBroker {
                id: 3,
                epoch: Some(7),
            }),
        )
        .await
        .unwrap();
        let got: Request = read_frame(&mut b).await.unwrap();
        assert!(matches!(
            got,
            Request::Propose(Command::FenceBroker {
                id: 3,
                epoch: Some(7)
            })
        ));

        a.write_all(&(MAX_FRAME + 1).to_be_bytes()).await.unwrap();
        let err = read_frame::<Request>(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn garbage_is_invalid_data() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&3u32.to_be_bytes()).await.unwrap();
        a.write_all(b"{x}").await.unwrap();
        let err = read_frame::<Request>(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
