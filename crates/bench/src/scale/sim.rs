//! A simulated broker: the controller protocol samsa's brokers speak, without a data path.
//! It joins the metadata quorum as an observer (so the leader replicates the log to its
//! `Learner`), registers, and heartbeats to the active controller, following NotLeader
//! answers and trying the other voters when one does not answer, as Kafka's brokers do.
//! Many run as tasks of one process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use samsa_metadata::raft::network::PeerClient;
use samsa_metadata::raft::rpc::{ProposeRefused, Request, Response};
use samsa_metadata::raft::{Applied, ControllerNode, NodeId};
use samsa_metadata::state::BrokerId;
use samsa_metadata::{Command, CommandResult, HeartbeatReply};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::learner::Learner;

/// How long one controller RPC may take before the next voter is tried.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause before retrying a failed or refused RPC.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Talks to whichever voter leads, following NotLeader hints.
pub struct ControllerClient {
    voters: Vec<(NodeId, String)>,
    leader: Option<NodeId>,
    next: usize,
    conn: Option<(NodeId, PeerClient)>,
}

impl ControllerClient {
    pub fn new(voters: Vec<(NodeId, String)>) -> Self {
        ControllerClient {
            voters,
            leader: None,
            next: 0,
            conn: None,
        }
    }

    /// The voter that answered the last call.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// `request` answered by the leader, retried (on other voters, after a backoff) until
    /// `deadline`; `None` if no leader answered by then.
    pub async fn call(&mut self, request: &Request, deadline: Instant) -> Option<Response> {
        while Instant::now() < deadline {
            let target = match self.leader {
                Some(id) => id,
                None => {
                    self.next = (self.next + 1) % self.voters.len();
                    self.voters[self.next].0
                }
            };
            let Some(addr) = self.voters.iter().find(|v| v.0 == target).map(|v| &v.1) else {
                self.leader = None;
                continue;
            };
            if self.conn.as_ref().map(|c| c.0) != Some(target) {
                self.conn = Some((target, PeerClient::new(target, addr.clone())));
            }
            let (_, client) = self.conn.as_mut().expect("set above");
            match client.call(request, RPC_TIMEOUT).await {
                Ok(response) => match refusal(&response) {
                    None => {
                        self.leader = Some(target);
                        return Some(response);
                    }
                    Some(ProposeRefused::NotLeader { leader }) if *leader != Some(target) => {
                        self.leader = *leader;
                        if leader.is_none() {
                            tokio::time::sleep(RETRY_BACKOFF).await;
                        }
                    }
                    Some(_) => {
                        self.leader = None;
                        tokio::time::sleep(RETRY_BACKOFF).await;
                    }
                },
                Err(_) => {
                    self.leader = None;
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
            }
        }
        None
    }
}

/// The controller's refusal inside a response, if it is one.
fn refusal(response: &Response) -> Option<&ProposeRefused> {
    match response {
        Response::Propose(Err(r))
        | Response::BrokerHeartbeat(Err(r))
        | Response::DescribeQuorum(Err(r))
        | Response::Join(Err(r))
        | Response::ChangeVoters(Err(r))
        | Response::ChargeMutation(Err(r)) => Some(r),
        _ => None,
    }
}

/// What the benchmark watches of a simulated broker's heartbeats.
#[derive(Default)]
pub struct Beats {
    /// Cleared to make the broker fall silent (its session then expires).
    pub silenced: AtomicBool,
    /// The last heartbeat answered Active, and by which controller.
    pub last_ok: Mutex<Option<(Instant, NodeId)>>,
}

pub struct SimBroker {
    pub id: BrokerId,
    pub learner: Arc<Learner>,
    pub beats: Arc<Beats>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SimBroker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl SimBroker {
    /// Starts broker `id`'s observer and joins the quorum with it. Joins are made one at a
    /// time (the controller takes one membership change at once), so the caller awaits each.
    pub async fn join(
        id: BrokerId,
        full: bool,
        voters: &[(NodeId, String)],
        deadline: Instant,
    ) -> Result<SimBroker, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("broker {id}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let learner = Learner::new(full);
        let serving = tokio::spawn(learner.clone().serve(listener));
        let node = ControllerNode {
            addr: addr.to_string(),
            directory_id: Some(uuid::Uuid::new_v4()),
        };
        let request = Request::Join {
            id: id as NodeId,
            node,
        };
        let mut client = ControllerClient::new(voters.to_vec());
        while Instant::now() < deadline {
            match client.call(&request, deadline).await {
                Some(Response::Join(Ok(()))) => {
                    return Ok(SimBroker {
                        id,
                        learner,
                        beats: Arc::new(Beats::default()),
                        tasks: vec![serving],
                    })
                }
                // "a voter change is in progress": another join is being committed.
                _ => tokio::time::sleep(RETRY_BACKOFF).await,
            }
        }
        serving.abort();
        Err(format!("broker {id} could not join the quorum in time"))
    }

    /// Registers, then heartbeats every `interval` (retrying a failed one after a short
    /// backoff) until dropped, registering again when the controller asks.
    pub fn start_heartbeats(&mut self, voters: &[(NodeId, String)], interval: Duration) {
        let (id, beats) = (self.id, self.beats.clone());
        let mut client = ControllerClient::new(voters.to_vec());
        self.tasks.push(tokio::spawn(async move {
            let mut epoch = None;
            loop {
                if beats.silenced.load(Ordering::Acquire) {
                    tokio::time::sleep(interval).await;
                    continue;
                }
                let deadline = Instant::now() + interval;
                let Some(registered) = epoch else {
                    epoch = register(&mut client, id, deadline).await;
                    if epoch.is_none() {
                        tokio::time::sleep(RETRY_BACKOFF).await;
                    }
                    continue;
                };
                let beat = Request::BrokerHeartbeat {
                    broker: id,
                    epoch: registered,
                };
                match client.call(&beat, deadline).await {
                    Some(Response::BrokerHeartbeat(Ok(HeartbeatReply::Active))) => {
                        let by = client.leader().unwrap_or_default();
                        *beats.last_ok.lock().unwrap() = Some((Instant::now(), by));
                        tokio::time::sleep(interval).await;
                    }
                    Some(Response::BrokerHeartbeat(Ok(HeartbeatReply::Reregister))) => epoch = None,
                    _ => tokio::time::sleep(RETRY_BACKOFF).await,
                }
            }
        }));
    }
}

async fn register(client: &mut ControllerClient, id: BrokerId, deadline: Instant) -> Option<u64> {
    let incarnation = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // Port 1 refuses connections: a client that reads this broker from the metadata and
    // tries its (absent) data path fails at once.
    let command = Command::RegisterBroker {
        id,
        host: "127.0.0.1".into(),
        port: 1,
        rack: None,
        incarnation,
        previous_epoch: None,
        registry_url: None,
    };
    match client.call(&Request::Propose(command), deadline).await {
        Some(Response::Propose(Ok(Applied(Some(Ok(CommandResult::BrokerRegistered {
            epoch,
        })))))) => Some(epoch),
        _ => None,
    }
}
