//! DescribeQuorum on one node and on a three-node cluster: every node names the same leader
//! and the followers' progress as the leader sees it, and a stopped follower's last fetch
//! falls behind while the others' keep up.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::ReplicaState;
use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse};
use samsa_protocol_tests::client::topic_name;
use samsa_protocol_tests::cluster::{TestCluster, CONVERGE};
use samsa_protocol_tests::{BrokerProcess, Connection};

fn describe(addr: &str) -> Result<DescribeQuorumResponse> {
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(topic_name("__cluster_metadata"))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    Connection::open(addr)?.send(&request, 2)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Asks `addr` until `done` holds for its answer's voters (and the answer has no error).
fn await_quorum(
    addr: &str,
    what: &str,
    done: impl Fn(i32, &[ReplicaState]) -> bool,
) -> Result<DescribeQuorumResponse> {
    let deadline = Instant::now() + CONVERGE;
    loop {
        if let Ok(r) = describe(addr) {
            let p = &r.topics[0].partitions[0];
            if p.error_code == 0 && done(p.leader_id.0, &p.current_voters) {
                return Ok(r);
            }
            if Instant::now() > deadline {
                bail!("{what}: last answer {r:?}");
            }
        } else if Instant::now() > deadline {
            bail!("{what}: no answer from {addr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_single_node_is_its_own_quorum() -> Result<()> {
    let broker = BrokerProcess::start("node_id = 4\n")?;
    let r = describe(&broker.addr)?;
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.error_code, p.leader_id.0), (0, 4), "{r:?}");
    assert!(p.leader_epoch >= 1 && p.high_watermark > 0, "{r:?}");
    let [me] = p.current_voters.as_slice() else {
        panic!("one voter: {r:?}");
    };
    assert_eq!(me.replica_id.0, 4);
    assert!(me.log_end_offset >= p.high_watermark, "{r:?}");
    assert!(
        me.last_fetch_timestamp > 0 && me.last_caught_up_timestamp > 0,
        "{r:?}"
    );
    // No controller listener: nothing to list.
    assert!(r.nodes.is_empty(), "{r:?}");
    Ok(())
}

#[test]
fn every_node_reports_the_leaders_view_of_the_followers() -> Result<()> {
    let mut cluster = TestCluster::start(3, "")?;
    let all_caught_up = |_: i32, voters: &[ReplicaState]| {
        voters.len() == 3
            && voters.iter().all(|v| {
                v.log_end_offset == voters[0].log_end_offset && v.last_caught_up_timestamp > 0
            })
    };
    let mut leaders = Vec::new();
    for node in &cluster.nodes {
        let r = await_quorum(
            &node.process.addr,
            "all three voters caught up",
            all_caught_up,
        )?;
        leaders.push(r.topics[0].partitions[0].leader_id.0);
        let mut listed: Vec<i32> = r.nodes.iter().map(|n| n.node_id.0).collect();
        listed.sort();
        assert_eq!(listed, [1, 2, 3], "{r:?}");
        assert!(r
            .nodes
            .iter()
            .all(|n| n.listeners[0].name.as_str() == "CONTROLLER"));
    }
    assert!(leaders.windows(2).all(|w| w[0] == w[1]), "{leaders:?}");
    let leader = leaders[0];
    // Stop a follower: its last fetch stays where it was while the other follower's moves on.
    let stopped = cluster.nodes.iter_mut().find(|n| n.id != leader).unwrap();
    let stopped_id = stopped.id;
    stopped.process.kill()?;
    let leader_addr = cluster
        .nodes
        .iter()
        .find(|n| n.id == leader)
        .unwrap()
        .process
        .addr
        .clone();
    await_quorum(
        &leader_addr,
        "the stopped follower's last fetch left behind",
        |_, voters| {
            let now = now_ms();
            let fetched = |id: i32| {
                voters
                    .iter()
                    .find(|v| v.replica_id.0 == id)
                    .map(|v| v.last_fetch_timestamp)
            };
            let live = voters
                .iter()
                .find(|v| v.replica_id.0 != stopped_id && v.replica_id.0 != leader);
            fetched(stopped_id).is_some_and(|t| now - t > 2_000)
                && live.is_some_and(|v| now - v.last_fetch_timestamp < 1_000)
        },
    )?;
    Ok(())
}
