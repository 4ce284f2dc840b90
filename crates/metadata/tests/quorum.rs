//! Three controllers on loopback TCP with their logs in temporary directories: election,
//! replication, failover, restart, snapshot catch-up and loss of quorum, and the controller's
//! own decisions that depend on it (broker sessions, leader elections).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use samsa_metadata::{
    ClusterMetadata, Command, CommandError, CommandResult, Error, HeartbeatReply, MetadataNode,
    QuorumOptions, QuorumSeed,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous: elections on a loaded 2-core machine can take several rounds.
const WAIT: Duration = Duration::from_secs(20);

struct Cluster {
    dir: tempfile::TempDir,
    voters: BTreeMap<u64, SocketAddr>,
    nodes: BTreeMap<u64, MetadataNode>,
    options: QuorumOptions,
}

impl Cluster {
    async fn start(options: QuorumOptions) -> Cluster {
        // Not bind(0)'s ports: a node's connection to a peer not up yet could take one, and
        // a restarted node must get its own back.
        let voters = (1..=3)
            .map(|id| {
                (
                    id,
                    SocketAddr::from(([127, 0, 0, 1], samsa_test_ports::free_port())),
                )
            })
            .collect();
        let mut cluster = Cluster {
            dir: tempfile::tempdir().unwrap(),
            voters,
            nodes: BTreeMap::new(),
            options,
        };
        for id in 1..=3 {
            cluster.restart(id).await;
        }
        // Each voter records its directory id in the membership once the quorum has formed:
        // wait for that, so that the tests' logs grow only by what they do.
        for node in cluster.nodes.values() {
            let mut metrics = node.raft_metrics();
            wait(metrics.wait_for(|m| {
                let membership = m.membership_config.membership();
                membership.nodes().all(|(_, n)| n.directory_id.is_some())
            }))
            .await;
        }
        cluster
    }

    async fn restart(&mut self, id: u64) {
        let dir = self.dir.path().join(format!("node-{id}"));
        let node = MetadataNode::start_with(
            id,
            uuid::Uuid::from_u128(u128::from(id)),
            QuorumSeed::Voters(self.voters.clone()),
            dir,
            Some(self.voters[&id]),
            self.options.clone(),
        )
        .await
        .unwrap();
        self.nodes.insert(id, node);
    }

    async fn stop(&mut self, id: u64) {
        self.nodes.remove(&id).unwrap().shutdown().await.unwrap();
    }

    /// Stops every node but `kept`, which is left without a quorum; returns the stopped ones.
    async fn stop_all_but(&mut self, kept: u64) -> Vec<u64> {
        let others: Vec<u64> = self
            .nodes
            .keys()
            .copied()
            .filter(|&id| id != kept)
            .collect();
        for &id in &others {
            self.stop(id).await;
        }
        others
    }

    fn node(&self, id: u64) -> &MetadataNode {
        &self.nodes[&id]
    }

    /// The leader every running node agrees on, once they do.
    async fn leader(&self) -> u64 {
        let first = self.nodes.values().next().unwrap();
        let mut metrics = first.raft_metrics();
        let leader = wait(metrics.wait_for(|m| {
            m.current_leader
                .is_some_and(|l| self.nodes.contains_key(&l))
        }))
        .await
        .current_leader
        .unwrap();
        for node in self.nodes.values() {
            wait(
                node.raft_metrics()
                    .wait_for(|m| m.current_leader == Some(leader)),
            )
            .await;
        }
        leader
    }

    /// Waits until every running node's metadata equals `expected`.
    async fn converged(&self, expected: &ClusterMetadata) {
        for node in self.nodes.values() {
            wait(node.metadata().wait_for(|m| **m == *expected)).await;
        }
    }
}

async fn wait<T, E: std::fmt::Debug>(f: impl std::future::Future<Output = Result<T, E>>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .expect("condition not reached in time")
        .unwrap()
}

fn fast() -> QuorumOptions {
    QuorumOptions {
        heartbeat_interval: Duration::from_millis(50),
        election_timeout: (Duration::from_millis(300), Duration::from_millis(600)),
        propose_timeout: Duration::from_secs(10),
        snapshot_every: 10_000,
        logs_kept_after_snapshot: 0,
    }
}

fn register(id: i32) -> Command {
    Command::RegisterBroker {
        id,
        host: format!("broker-{id}"),
        port: 9092,
        rack: None,
        incarnation: 1,
        previous_epoch: None,
        registry_url: None,
    }
}

fn create_topic(name: &str, assignment: Vec<Vec<i32>>) -> Command {
    let id = [name.as_bytes()[0]; 16];
    Command::CreateTopic {
        name: name.into(),
        id,
        configs: BTreeMap::new(),
        assignment,
    }
}

/// Registers and unfences brokers `ids`, each through a different running controller.
async fn register_brokers(cluster: &Cluster, ids: impl IntoIterator<Item = i32>) {
    for (id, node) in ids.into_iter().zip(cluster.nodes.values().cycle()) {
        let CommandResult::BrokerRegistered { epoch } = node.propose(register(id)).await.unwrap()
        else {
            panic!("unexpected result");
        };
        node.propose(Command::UnfenceBroker { id, epoch })
            .await
            .unwrap();
    }
}

fn current(node: &MetadataNode) -> ClusterMetadata {
    (**node.metadata().borrow()).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_from_any_node_apply_everywhere_in_one_order() {
    let cluster = Cluster::start(fast()).await;
    let leader = cluster.leader().await;
    assert!((1..=3).contains(&leader));

    // Each registration goes through a different node (two of them followers, which forward);
    // the broker epochs show the order they committed in.
    for (id, via) in [(10, 1), (11, 2), (12, 3)] {
        let result = cluster.node(via).propose(register(id)).await.unwrap();
        assert_eq!(
            result,
            CommandResult::BrokerRegistered {
                epoch: (id - 10) as u64
            }
        );
    }
    for (id, via) in [(10, 3), (11, 1), (12, 2)] {
        cluster
            .node(via)
            .propose(Command::UnfenceBroker {
                id,
                epoch: (id - 10) as u64,
            })
            .await
            .unwrap();
    }
    let created = cluster
        .node(2)
        .propose(create_topic(
            "orders",
            vec![vec![10, 11, 12], vec![11, 12, 10]],
        ))
        .await;
    assert_eq!(
        created.unwrap(),
        CommandResult::TopicCreated { id: [b'o'; 16] }
    );
    let duplicate = cluster
        .node(3)
        .propose(create_topic("orders", vec![vec![10]]))
        .await;
    assert!(
        matches!(duplicate, Err(Error::Command(CommandError::TopicExists(_)))),
        "{duplicate:?}"
    );

    let expected = current(cluster.node(leader));
    assert_eq!(expected.brokers.len(), 3);
    assert_eq!(expected.topics["orders"].partitions[1].leader, 11);
    cluster.converged(&expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_controller_port_closes_only_that_connection() {
    let cluster = Cluster::start(fast()).await;
    let leader = cluster.leader().await;
    let mut stream = tokio::net::TcpStream::connect(cluster.voters[&1])
        .await
        .unwrap();
    stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        stream.read(&mut buf).await.unwrap(),
        0,
        "the node closes the connection"
    );
    register_brokers(&cluster, [1]).await;
    cluster.converged(&current(cluster.node(leader))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_and_the_old_one_catches_up_after_restart() {
    let mut cluster = Cluster::start(fast()).await;
    let old_leader = cluster.leader().await;
    register_brokers(&cluster, [1, 2]).await;
    cluster
        .node(old_leader)
        .propose(create_topic("t", vec![vec![1, 2]]))
        .await
        .unwrap();

    cluster.stop(old_leader).await;
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, old_leader);
    let survivor = *cluster.nodes.keys().find(|&&id| id != new_leader).unwrap();
    let epoch = current(cluster.node(survivor)).brokers[&1].epoch;
    cluster
        .node(survivor)
        .propose(Command::FenceBroker {
            id: 1,
            epoch: Some(epoch),
        })
        .await
        .unwrap();
    cluster
        .node(new_leader)
        .propose(create_topic("u", vec![vec![2]]))
        .await
        .unwrap();
    let expected = current(cluster.node(new_leader));
    assert_eq!(expected.topics["t"].partitions[0].leader, 2);

    cluster.restart(old_leader).await;
    cluster.converged(&expected).await;
    assert_eq!(
        cluster.leader().await,
        new_leader,
        "a returning node does not disrupt the leader"
    );
    cluster
        .node(old_leader)
        .propose(Command::DeleteTopic { name: "u".into() })
        .await
        .unwrap();
    cluster.converged(&current(cluster.node(new_leader))).await;
    assert!(!current(cluster.node(old_leader)).topics.contains_key("u"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_the_purged_log_catches_up_by_snapshot() {
    let mut cluster = Cluster::start(fast()).await;
    let leader = cluster.leader().await;
    let lagging = *cluster.nodes.keys().find(|&&id| id != leader).unwrap();
    register_brokers(&cluster, [1]).await;
    cluster.converged(&current(cluster.node(leader))).await;
    cluster.stop(lagging).await;

    register_brokers(&cluster, [2, 3]).await;
    cluster
        .node(leader)
        .propose(create_topic("t", vec![vec![1, 2, 3]; 4]))
        .await
        .unwrap();
    cluster.node(leader).compact().await.unwrap();
    let mut metrics = cluster.node(leader).raft_metrics();
    let applied = metrics.borrow().last_applied;
    wait(
        metrics.wait_for(|m| m.purged.is_some() && m.purged >= m.snapshot && m.snapshot >= applied),
    )
    .await;

    cluster.restart(lagging).await;
    let expected = current(cluster.node(leader));
    cluster.converged(&expected).await;
    // It never built a snapshot itself (snapshot_every is far away): this one is the leader's.
    wait(
        cluster
            .node(lagging)
            .raft_metrics()
            .wait_for(|m| m.snapshot.is_some()),
    )
    .await;

    // And it restarts from that snapshot and its own log.
    cluster.stop(lagging).await;
    cluster.restart(lagging).await;
    wait(
        cluster
            .node(lagging)
            .metadata()
            .wait_for(|m| **m == expected),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_survivor_cannot_commit() {
    let options = QuorumOptions {
        propose_timeout: Duration::from_secs(2),
        ..fast()
    };
    let mut cluster = Cluster::start(options).await;
    let leader = cluster.leader().await;
    register_brokers(&cluster, [1]).await;
    let before: Arc<ClusterMetadata> = cluster.node(leader).metadata().borrow().clone();
    cluster.stop_all_but(leader).await;

    let refused = cluster.node(leader).propose(register(2)).await;
    assert!(matches!(refused, Err(Error::Timeout(_))), "{refused:?}");
    assert_eq!(*cluster.node(leader).metadata().borrow(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_quorum_restarts_from_its_directories() {
    let mut cluster = Cluster::start(fast()).await;
    let leader = cluster.leader().await;
    register_brokers(&cluster, [1, 2]).await;
    cluster.node(leader).compact().await.unwrap();
    cluster
        .node(leader)
        .propose(create_topic("after-snapshot", vec![vec![2, 1]]))
        .await
        .unwrap();
    let expected = current(cluster.node(leader));
    cluster.converged(&expected).await;

    for id in 1..=3 {
        cluster.stop(id).await;
    }
    for id in 1..=3 {
        cluster.restart(id).await;
    }
    // The state comes back from each node's snapshot and log, before any new command.
    cluster.converged(&expected).await;
    let leader = cluster.leader().await;
    cluster
        .node(leader)
        .propose(Command::DeleteTopic {
            name: "after-snapshot".into(),
        })
        .await
        .unwrap();
    cluster.converged(&current(cluster.node(leader))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_unfence_and_silence_fences_without_growing_the_log() {
    let cluster = Cluster::start(fast()).await;
    let leader = cluster.leader().await;
    for node in cluster.nodes.values() {
        node.expire_broker_sessions(Duration::from_millis(400));
    }
    let follower = cluster
        .nodes
        .keys()
        .copied()
        .find(|&id| id != leader)
        .unwrap();
    let node = cluster.node(follower);
    let CommandResult::BrokerRegistered { epoch } = node.propose(register(7)).await.unwrap() else {
        panic!("unexpected result");
    };
    // Forwarded, the proposal returns once the leader applied it; this follower follows.
    wait(node.metadata().wait_for(|m| m.brokers.contains_key(&7))).await;
    assert!(current(node).brokers[&7].fenced);

    // The first heartbeat, forwarded by a follower, unfences; a stale epoch must re-register.
    assert_eq!(
        node.heartbeat(7, epoch).await.unwrap(),
        HeartbeatReply::Active
    );
    wait(node.metadata().wait_for(|m| !m.brokers[&7].fenced)).await;
    assert_eq!(
        node.heartbeat(7, epoch + 1).await.unwrap(),
        HeartbeatReply::Reregister
    );
    assert_eq!(
        node.heartbeat(8, 0).await.unwrap(),
        HeartbeatReply::Reregister
    );

    // Heartbeats are soft state on the leader: the log does not grow with them.
    let before = node.raft_metrics().borrow().last_log_index;
    for _ in 0..10 {
        assert_eq!(
            node.heartbeat(7, epoch).await.unwrap(),
            HeartbeatReply::Active
        );
    }
    assert_eq!(node.raft_metrics().borrow().last_log_index, before);

    // Silence past the session timeout fences the broker on every node.
    for node in cluster.nodes.values() {
        wait(
            node.metadata()
                .wait_for(|m| m.brokers.get(&7).is_some_and(|b| b.fenced)),
        )
        .await;
    }
}

/// Sessions the tests below keep: long enough that nobody is fenced for silence meanwhile,
/// but set, so the controllers judge which brokers are alive.
const SESSION: Duration = Duration::from_secs(60);

/// Brokers 1 and 2 registered and unfenced by commands, never by a heartbeat, and topic "t"
/// whose one partition prefers broker 1 but is led by broker 2, with 1 back in sync: what
/// the auto leader rebalance moves. Returns the two brokers' registration epochs.
async fn preferred_replica_led_elsewhere(cluster: &Cluster) -> (u64, u64) {
    let node = cluster.node(cluster.leader().await);
    register_brokers(cluster, [1, 2]).await;
    node.propose(create_topic("t", vec![vec![1, 2]]))
        .await
        .unwrap();
    let epochs = (
        current(node).brokers[&1].epoch,
        current(node).brokers[&2].epoch,
    );
    let fence = Command::FenceBroker {
        id: 1,
        epoch: Some(epochs.0),
    };
    node.propose(fence).await.unwrap();
    let unfence = Command::UnfenceBroker {
        id: 1,
        epoch: epochs.0,
    };
    node.propose(unfence).await.unwrap();
    let p = current(node).topics["t"].partitions[0].clone();
    assert_eq!((p.leader, p.isr.as_slice()), (2, &[2][..]));
    let rejoin = Command::AlterPartition {
        topic: "t".into(),
        partition: 0,
        leader: 2,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: vec![2, 1],
    };
    node.propose(rejoin).await.unwrap();
    epochs
}

fn leader_of_t(node: &MetadataNode) -> i32 {
    current(node).topics["t"].partitions[0].leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preferred_election_goes_only_to_a_broker_the_controller_heard_from() {
    let cluster = Cluster::start(fast()).await;
    for node in cluster.nodes.values() {
        node.expire_broker_sessions(SESSION);
    }
    let (epoch, _) = preferred_replica_led_elsewhere(&cluster).await;
    let leader = cluster.leader().await;
    let follower = cluster
        .nodes
        .keys()
        .copied()
        .find(|&id| id != leader)
        .unwrap();
    let elect = Command::ElectPreferredLeader {
        topic: "t".into(),
        partition: 0,
    };

    // Unfenced and in sync in the metadata, but silent to the controller: no election, and
    // nothing logged (as ElectLeaders through a follower asks it).
    let before = cluster.node(leader).raft_metrics().borrow().last_log_index;
    let refused = cluster.node(follower).propose(elect.clone()).await;
    assert!(
        matches!(
            refused,
            Err(Error::Command(CommandError::PreferredLeaderNotAvailable(1)))
        ),
        "{refused:?}"
    );
    assert_eq!(
        cluster.node(leader).raft_metrics().borrow().last_log_index,
        before
    );
    assert_eq!(leader_of_t(cluster.node(leader)), 2);

    // Once it heartbeats, it leads again.
    let node = cluster.node(follower);
    assert_eq!(
        node.heartbeat(1, epoch).await.unwrap(),
        HeartbeatReply::Active
    );
    assert_eq!(
        node.propose(elect).await.unwrap(),
        CommandResult::LeaderElected { leader: 1 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_without_a_quorum_elects_nothing() {
    let options = QuorumOptions {
        propose_timeout: Duration::from_secs(2),
        ..fast()
    };
    let mut cluster = Cluster::start(options).await;
    for node in cluster.nodes.values() {
        node.expire_broker_sessions(SESSION);
    }
    let (epoch, _) = preferred_replica_led_elsewhere(&cluster).await;
    let leader = cluster.leader().await;
    cluster.stop_all_but(leader).await;

    // openraft keeps a leader cut off from the others in its role, and this one has just
    // heard from broker 1, which is unfenced and in sync: only the quorum is missing.
    let node = cluster.node(leader);
    assert_eq!(node.leader(), Some(leader));
    assert_eq!(
        node.heartbeat(1, epoch).await.unwrap(),
        HeartbeatReply::Active
    );
    let before = node.raft_metrics().borrow().last_log_index;
    let round = node.rebalance_leaders(0).await;
    assert!(matches!(round, Err(Error::Unavailable(_))), "{round:?}");
    let elect = Command::ElectPreferredLeader {
        topic: "t".into(),
        partition: 0,
    };
    let refused = node.propose(elect).await;
    assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
    assert_eq!(
        node.raft_metrics().borrow().last_log_index,
        before,
        "nothing waits in the log to commit whenever the quorum returns"
    );
    assert_eq!(leader_of_t(node), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rebalance_gives_leadership_back_only_to_a_broker_the_controller_heard_from() {
    let mut cluster = Cluster::start(fast()).await;
    for node in cluster.nodes.values() {
        node.expire_broker_sessions(SESSION);
    }
    let (epoch, epoch_2) = preferred_replica_led_elsewhere(&cluster).await;
    let leader = cluster.leader().await;
    let node = cluster.node(leader);
    assert_eq!(
        node.heartbeat(2, epoch_2).await.unwrap(),
        HeartbeatReply::Active
    );

    // Registered, unfenced, in sync and preferred, but never heard from: not chosen.
    assert_eq!(node.rebalance_leaders(0).await.unwrap(), vec![]);
    assert_eq!(leader_of_t(node), 2);

    // Heard by this controller, which then fails over. Its successor starts every session
    // afresh, which keeps it from fencing anyone but is no sign that broker 1 is alive.
    assert_eq!(
        node.heartbeat(1, epoch).await.unwrap(),
        HeartbeatReply::Active
    );
    cluster.stop(leader).await;
    let leader = cluster.leader().await;
    let node = cluster.node(leader);
    assert_eq!(node.rebalance_leaders(0).await.unwrap(), vec![]);
    assert_eq!(leader_of_t(node), 2);

    // A follower makes no round; the controller does once broker 1 heartbeats to it.
    let follower = cluster
        .nodes
        .keys()
        .copied()
        .find(|&id| id != leader)
        .unwrap();
    let follower = cluster.node(follower);
    assert_eq!(
        follower.heartbeat(1, epoch).await.unwrap(),
        HeartbeatReply::Active
    );
    assert_eq!(follower.rebalance_leaders(0).await.unwrap(), vec![]);
    assert_eq!(
        node.rebalance_leaders(0).await.unwrap(),
        vec![("t".to_string(), 0)]
    );
    assert_eq!(leader_of_t(node), 1);
    cluster.converged(&current(node)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_brokers_are_fenced_together_while_the_quorum_is_missing() {
    let options = QuorumOptions {
        propose_timeout: Duration::from_secs(2),
        ..fast()
    };
    let mut cluster = Cluster::start(options).await;
    let leader = cluster.leader().await;
    register_brokers(&cluster, [7, 8]).await;
    let others = cluster.stop_all_but(leader).await;
    let node = cluster.node(leader);
    let before = node.raft_metrics().borrow().last_log_index.unwrap();
    node.expire_broker_sessions(Duration::from_millis(200));

    // Neither fence can commit, yet both are logged: one waiting for the quorum must not
    // keep the other out of the log, where an election proposed meanwhile would precede it.
    wait(
        node.raft_metrics()
            .wait_for(|m| m.last_log_index >= Some(before + 2)),
    )
    .await;
    assert!(current(node).brokers.values().all(|b| !b.fenced));

    cluster.restart(others[0]).await;
    let node = cluster.node(leader);
    wait(
        node.metadata()
            .wait_for(|m| m.brokers.values().all(|b| b.fenced)),
    )
    .await;
}
