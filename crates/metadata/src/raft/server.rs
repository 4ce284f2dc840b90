//! The server side of the controller transport: accepts peers on the controller address and
//! hands their RPCs to the local Raft.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::network::PeerClient;
use super::rpc::{read_frame, write_frame, ProposeRefused, Request, Response};
use super::{Applied, ControllerNode, NodeId, Raft};

/// How long a controller waits for the leader it passes a joining controller's request to.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
use crate::liveness::BrokerSessions;
use crate::quorum::QuorumProgress;
use crate::quotas::mutation::ChargerSlot;
use crate::state::{ClusterMetadata, Command};
use crate::voters::{self, Reconfiguration};

/// What a controller serves its peers with.
#[derive(Clone)]
pub struct Services {
    pub raft: Raft,
    pub sessions: Arc<BrokerSessions>,
    pub progress: Arc<QuorumProgress>,
    pub voters: Arc<Reconfiguration>,
    pub metadata: watch::Receiver<Arc<ClusterMetadata>>,
    pub charger: Arc<ChargerSlot>,
}

/// Serves until the task is aborted; aborting it drops (and so aborts) every connection task.
pub async fn serve(listener: TcpListener, services: Services) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let services = services.clone();
                    connections.spawn(async move {
                        if let Err(e) = serve_connection(stream, services).await {
                            tracing::warn!(%peer, error = %e, "closing controller connection");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "accepting a controller connection failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(mut stream: TcpStream, services: Services) -> io::Result<()> {
    let Services {
        raft,
        sessions,
        progress,
        voters,
        metadata,
        charger,
    } = &services;
    stream.set_nodelay(true)?;
    loop {
        let request = match read_frame(&mut stream).await {
            Ok(request) => request,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let response = match request {
            Request::AppendEntries(rpc) => Response::AppendEntries(raft.append_entries(rpc).await),
            Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await),
            Request::InstallSnapshot(rpc) => {
                Response::InstallSnapshot(raft.install_snapshot(rpc).await)
            }
            Request::Propose(command) => {
                Response::Propose(propose_checked(raft, sessions, command).await)
            }
            Request::BrokerHeartbeat { broker, epoch } => {
                Response::BrokerHeartbeat(sessions.heartbeat(broker, epoch).await)
            }
            Request::DescribeQuorum => {
                let me = raft.metrics().borrow().id;
                let described = progress.describe(raft, me);
                Response::DescribeQuorum(described.ok_or_else(|| ProposeRefused::NotLeader {
                    leader: raft.metrics().borrow().current_leader,
                }))
            }
            Request::Join { id, node } => Response::Join(join(raft, voters, id, node).await),
            Request::ChangeVoters(change) => {
                let features = metadata.borrow().features.clone();
                Response::ChangeVoters(match voters.change(raft, features.as_ref(), change).await {
                    Ok(()) => Ok(Ok(())),
                    Err(Ok(refused)) => Ok(Err(refused)),
                    Err(Err(refused)) => Err(refused),
                })
            }
            Request::ChargeMutation(charge) => {
                let metrics = raft.metrics().borrow().clone();
                Response::ChargeMutation(if metrics.current_leader == Some(metrics.id) {
                    Ok(charger.charge(&charge))
                } else {
                    Err(ProposeRefused::NotLeader {
                        leader: metrics.current_leader,
                    })
                })
            }
        };
        write_frame(&mut stream, &response).await?;
    }
}

/// Records a joining controller if this node leads, or passes the request on to the leader
/// this node knows: a controller that has just started knows only its bootstrap servers.
async fn join(
    raft: &Raft,
    voters: &Reconfiguration,
    id: NodeId,
    node: ControllerNode,
) -> Result<(), ProposeRefused> {
    match voters.join(raft, id, node.clone()).await {
        Err(ProposeRefused::NotLeader {
            leader: Some(leader),
        }) if leader != raft.metrics().borrow().id => {
            let addr = {
                let metrics = raft.metrics();
                let m = metrics.borrow();
                m.membership_config
                    .membership()
                    .get_node(&leader)
                    .map(|n| n.addr.clone())
            };
            let Some(addr) = addr else {
                return Err(ProposeRefused::NotLeader {
                    leader: Some(leader),
                });
            };
            let request = Request::Join { id, node };
            match PeerClient::new(leader, addr)
                .call(&request, FORWARD_TIMEOUT)
                .await
            {
                Ok(Response::Join(answer)) => answer,
                _ => Err(ProposeRefused::NotLeader {
                    leader: Some(leader),
                }),
            }
        }
        other => other,
    }
}

/// Commits `command` through this node's Raft, which must be the leader, and a voter: a
/// leader that removed itself takes no writes while it resigns (see `voters::resign`).
pub async fn propose_locally(raft: &Raft, command: Command) -> Result<Applied, ProposeRefused> {
    if voters::resigning(raft) {
        return Err(ProposeRefused::NotLeader { leader: None });
    }
    match raft.client_write(command).await {
        Ok(written) => Ok(written.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
            Err(ProposeRefused::NotLeader {
                leader: to.leader_id,
            })
        }
        Err(e) => Err(ProposeRefused::Unavailable(e.to_string())),
    }
}

/// Commits `command` through this node's Raft, which must be the leader, once the checks only
/// the leader can make let it through: an election must go to a broker this controller knows
/// alive (`BrokerSessions::refuse_election`). A refusal is answered as the state machine
/// answers one, without logging anything. Proposals from the broker and from other
/// controllers come here; the controller's own bookkeeping (fences, unfences) does not.
pub async fn propose_checked(
    raft: &Raft,
    sessions: &BrokerSessions,
    command: Command,
) -> Result<Applied, ProposeRefused> {
    if let Some(refused) = sessions.refuse_election(&command).await? {
        return Ok(Applied(Some(Err(refused))));
    }
    propose_locally(raft, command).await
}

/// Confirms with a round of heartbeats that a quorum still follows this node, then waits
/// until it has applied everything committed before: its metadata is then current. openraft
/// keeps a leader cut off from the others in its role until it hears of a higher term, so
/// believing to lead proves nothing. Fails within a heartbeat interval without a quorum.
pub async fn confirm_leadership(raft: &Raft) -> Result<(), ProposeRefused> {
    // Boxed: openraft's future is deeply nested, and every proposal's future holds it; inline,
    // the broker's connection future outgrew rustc's layout query depth (with the workspace's
    // features, once the rebalance also awaited it).
    match Box::pin(raft.ensure_linearizable()).await {
        Ok(_) => Ok(()),
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
            Err(ProposeRefused::NotLeader {
                leader: to.leader_id,
            })
        }
        Err(e) => Err(ProposeRefused::Unavailable(format!(
            "leadership not confirmed: {e}"
        ))),
    }
}
