//! KIP-853's dynamic quorum on real controllers over loopback TCP: a controller joins through
//! a bootstrap server as an observer, is added as a voter, and voters (the leader among them)
//! are removed, with Kafka's refusals on the way.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use samsa_metadata::features::{FeatureCommand, KRAFT_VERSION};
use samsa_metadata::voters::{VoterChange, VoterChangeReason};
use samsa_metadata::{Command, Error, MetadataNode, QuorumOptions, QuorumSeed};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

fn options() -> QuorumOptions {
    QuorumOptions {
        heartbeat_interval: Duration::from_millis(50),
        election_timeout: (Duration::from_millis(300), Duration::from_millis(600)),
        propose_timeout: Duration::from_secs(10),
        ..QuorumOptions::default()
    }
}

fn directory(id: u64) -> Uuid {
    Uuid::from_u128(0x5a5a_0000 + u128::from(id))
}

async fn start(
    id: u64,
    seed: QuorumSeed,
    dir: &tempfile::TempDir,
    addr: SocketAddr,
) -> MetadataNode {
    let path = dir.path().join(format!("node-{id}"));
    MetadataNode::start_with(id, directory(id), seed, path, Some(addr), options())
        .await
        .unwrap()
}

/// Waits until `done` holds for `node`'s view of the quorum as its leader describes it.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn refusal(result: Result<(), Error>) -> (VoterChangeReason, String) {
    match result {
        Err(Error::VoterChange(refused)) => (refused.reason, refused.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The refusal of `change` once the leader is not busy with another change (Kafka answers
/// REQUEST_TIMED_OUT meanwhile, for the client to retry).
async fn settled_refusal(node: &MetadataNode, change: VoterChange) -> (VoterChangeReason, String) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (reason, message) = refusal(node.change_voters(change.clone()).await);
        if reason != VoterChangeReason::RequestTimedOut || tokio::time::Instant::now() > deadline {
            return (reason, message);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_joins_as_observer_becomes_a_voter_and_voters_leave() {
    let dir = tempfile::tempdir().unwrap();
    let addrs: BTreeMap<u64, SocketAddr> = (1..=4)
        .map(|id| {
            let port = samsa_test_ports::free_port();
            (id, SocketAddr::from(([127, 0, 0, 1], port)))
        })
        .collect();
    let static_voters: BTreeMap<u64, SocketAddr> = addrs
        .iter()
        .filter(|(&id, _)| id <= 3)
        .map(|(&i, &a)| (i, a))
        .collect();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        let seed = QuorumSeed::Voters(static_voters.clone());
        nodes.insert(id, start(id, seed, &dir, addrs[&id]).await);
    }
    // Every voter records its own directory id once the quorum has formed.
    until("directory ids recorded", async || {
        nodes[&1]
            .voters()
            .values()
            .all(|n| n.directory_id.is_some())
            && nodes[&1].voters().len() == 3
    })
    .await;

    // kraft.version 0: a static quorum, as Kafka refuses it.
    let remove_3 = VoterChange::Remove {
        id: 3,
        directory_id: directory(3),
    };
    let (reason, message) = settled_refusal(&nodes[&2], remove_3).await;
    assert_eq!(reason, VoterChangeReason::UnsupportedVersion, "{message}");
    assert_eq!(
        message,
        "Cluster doesn't support removing voter because the kraft.version feature is 0"
    );
    let levels = BTreeMap::from([(KRAFT_VERSION.to_string(), 1)]);
    let bootstrap = Command::Features(FeatureCommand::Bootstrap { levels });
    nodes[&1].propose(bootstrap).await.unwrap();

    // Controller 4 starts knowing only a bootstrap server and follows as an observer.
    let seed = QuorumSeed::Bootstrap(vec![addrs[&2]]);
    nodes.insert(4, start(4, seed, &dir, addrs[&4]).await);
    until("4 observes", async || {
        let described = nodes[&1].describe_quorum().await;
        described.is_ok_and(|d| {
            d.observers
                .iter()
                .any(|o| o.id == 4 && o.directory_id == Some(directory(4)))
        })
    })
    .await;
    assert_eq!(nodes[&1].voters().len(), 3);

    let add = |directory_id| VoterChange::Add {
        id: 4,
        directory_id,
        addr: addrs[&4].to_string(),
    };
    let (reason, message) = refusal(nodes[&3].change_voters(add(directory(9))).await);
    assert_eq!(reason, VoterChangeReason::RequestTimedOut);
    assert!(message.ends_with("since it is lagging behind"), "{message}");
    until("4 added", async || {
        nodes[&3].change_voters(add(directory(4))).await.is_ok()
    })
    .await;
    until("4 is a voter everywhere", async || {
        nodes.values().all(|n| n.voters().contains_key(&4))
    })
    .await;
    let (reason, _) = settled_refusal(&nodes[&1], add(directory(4))).await;
    assert_eq!(reason, VoterChangeReason::DuplicateVoter);

    // Restarted, the joined voter starts from its own log and membership, not its seed.
    nodes.remove(&4).unwrap().shutdown().await.unwrap();
    let seed = QuorumSeed::Bootstrap(vec![addrs[&2]]);
    nodes.insert(4, start(4, seed, &dir, addrs[&4]).await);
    assert!(nodes[&4].voters().contains_key(&4));
    until("4 follows a leader again", async || {
        nodes[&4].leader().is_some()
    })
    .await;
    let applied = nodes[&4]
        .propose(Command::UnregisterBroker { id: 78 })
        .await;
    assert!(matches!(applied, Err(Error::Command(_))), "{applied:?}");

    // A removal names the voter's directory id too.
    let wrong = VoterChange::Remove {
        id: 3,
        directory_id: directory(4),
    };
    let (reason, message) = settled_refusal(&nodes[&1], wrong).await;
    assert_eq!(reason, VoterChangeReason::VoterNotFound);
    assert!(
        message.starts_with("Cannot remove voter ReplicaKey(id=3"),
        "{message}"
    );

    // The leader removes itself, and resigns: the remaining voters elect one of them.
    let leader = nodes[&1].leader().unwrap();
    let remove_leader = VoterChange::Remove {
        id: leader,
        directory_id: directory(leader),
    };
    nodes[&4].change_voters(remove_leader).await.unwrap();
    until("a new leader among the voters", async || {
        nodes.values().all(|n| {
            n.leader()
                .is_some_and(|l| l != leader && n.voters().contains_key(&l))
        })
    })
    .await;
    assert!(nodes.values().all(|n| !n.voters().contains_key(&leader)));
    // The smaller quorum commits, through the old leader too, which follows as an observer.
    let applied = nodes[&leader]
        .propose(Command::UnregisterBroker { id: 77 })
        .await;
    assert!(matches!(applied, Err(Error::Command(_))), "{applied:?}");
    let described = nodes[&4].describe_quorum().await.unwrap();
    assert_eq!(described.voters.len(), 3);
    assert!(described.observers.iter().any(|o| o.id == leader));

    // Once stopped, UnregisterController drops it (a running one would join again, as a
    // running Kafka controller registers again).
    nodes.remove(&leader).unwrap().shutdown().await.unwrap();
    nodes[&4].unregister_controller(leader).await.unwrap();
    until("the old leader unregistered", async || {
        let described = nodes[&4].describe_quorum().await;
        described.is_ok_and(|d| d.observers.is_empty())
    })
    .await;
    let unknown = nodes[&4].unregister_controller(99).await;
    let (reason, message) = refusal(unknown);
    assert_eq!(reason, VoterChangeReason::NotRegistered);
    assert_eq!(message, "Controller ID 99 is not currently registered.");
}
