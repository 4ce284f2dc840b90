//! Eligible leader replicas (KIP-966) across real broker processes: three brokers holding a
//! partition with `min.insync.replicas=2`, and four controllers besides them so that the
//! quorum outlives every broker. Brokers stop one by one, cleanly (SIGTERM) or not (SIGKILL),
//! and DescribeTopicPartitions shows the ISR, the ELR and the last known ELR at each step, as
//! Kafka 4.4's controller would decide them; then the brokers come back, the crashed one is
//! no longer eligible, the eligible one leads, and every acknowledged record is there.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
use kafka_protocol::messages::describe_topic_partitions_response::DescribeTopicPartitionsResponsePartition;
use kafka_protocol::messages::DescribeTopicPartitionsRequest;
use samsa_protocol_tests::batches::{batch, messages, Message};
use samsa_protocol_tests::client::{
    fetch_records, only_partition, produce, produce_request, topic_name, LATEST_PRODUCE,
};
use samsa_protocol_tests::cluster::{partition, sorted, TestCluster, CONVERGE};

const NOT_ENOUGH_REPLICAS: i16 = 19;
const BROKERS: [i32; 3] = [1, 2, 3];
const TOPIC: &str = "elr";
/// A controller without a broker: with every broker down, the node still answering.
const CONTROLLER: i32 = 4;

/// Leader, ISR, ELR and last known ELR of one partition, as DescribeTopicPartitions tells them
/// (the lists sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Elr {
    leader: i32,
    isr: Vec<i32>,
    elr: Vec<i32>,
    last_known_elr: Vec<i32>,
}

fn describe(cluster: &TestCluster, via: i32, topic: &str) -> Result<Elr> {
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(vec![TopicRequest::default().with_name(topic_name(topic))])
        .with_response_partition_limit(10);
    let response = cluster.connect(via)?.send(&request, 0)?;
    let t = response.topics.first().context("no topic answered")?;
    ensure!(
        t.error_code == 0,
        "describe {topic}: error {}",
        t.error_code
    );
    let p: &DescribeTopicPartitionsResponsePartition =
        t.partitions.first().context("no partition answered")?;
    let list = |ids: &Option<Vec<kafka_protocol::messages::BrokerId>>| {
        sorted(ids.as_deref().unwrap_or_default())
    };
    Ok(Elr {
        leader: p.leader_id.0,
        isr: sorted(&p.isr_nodes),
        elr: list(&p.eligible_leader_replicas),
        last_known_elr: list(&p.last_known_elr),
    })
}

/// Waits until every node of `on` describes the partition as `want`.
fn await_elr(cluster: &TestCluster, on: &[i32], want: &Elr) -> Result<()> {
    await_described(cluster, on, &format!("{want:?}"), |seen| seen == want)
}

/// Waits until what every node of `on` describes satisfies `done`.
fn await_described(
    cluster: &TestCluster,
    on: &[i32],
    what: &str,
    done: impl Fn(&Elr) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let seen: Vec<Result<Elr>> = on.iter().map(|&id| describe(cluster, id, TOPIC)).collect();
        if seen.iter().all(|s| s.as_ref().is_ok_and(&done)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not {what} within {CONVERGE:?}; seen {seen:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The clean-shutdown marker a stopped broker left in its data directory.
fn clean_marker(cluster: &TestCluster, id: i32) -> Option<String> {
    let dir = cluster.node(id).process.data_dir.path().join("data");
    std::fs::read_to_string(dir.join(".broker-clean-shutdown")).ok()
}

fn elr(leader: i32, isr: &[i32], elr: &[i32], last_known_elr: &[i32]) -> Elr {
    Elr {
        leader,
        isr: isr.to_vec(),
        elr: elr.to_vec(),
        last_known_elr: last_known_elr.to_vec(),
    }
}

#[test]
fn eligible_replicas_follow_the_isr_below_its_minimum_and_lead_when_it_is_empty() -> Result<()> {
    let mut cluster = TestCluster::start_with_controllers(3, 4, "")?;
    let topic = cluster.create_topic(1, TOPIC, 1, 3, &[("min.insync.replicas", "2")], &BROKERS)?;
    let m = cluster.metadata(1, &[TOPIC])?;
    let p = partition(&m, TOPIC, 0).context("partition listed")?;
    // Named by role: the leader, the follower stopped first and the one stopped second.
    let leader = p.leader_id.0;
    let followers: Vec<i32> = p
        .replica_nodes
        .iter()
        .map(|b| b.0)
        .filter(|&r| r != leader)
        .collect();
    let (first, second) = (followers[0], followers[1]);
    await_elr(&cluster, &BROKERS, &elr(leader, &[1, 2, 3], &[], &[]))?;

    let mut acknowledged: Vec<Message> = Vec::new();
    let mut produce_some = |cluster: &TestCluster, prefix: &str| -> Result<()> {
        let batch_messages = messages(prefix, 5, 1_000);
        produce(
            &mut cluster.connect(leader)?,
            &topic,
            0,
            batch(&batch_messages),
        )?;
        acknowledged.extend(batch_messages);
        Ok(())
    };
    produce_some(&cluster, "all-three")?;

    // A clean stop while the ISR stays at the minimum: no ELR.
    cluster.node_mut(first).process.terminate()?;
    let mut isr = vec![leader, second];
    isr.sort();
    await_elr(&cluster, &[leader, second], &elr(leader, &isr, &[], &[]))?;
    produce_some(&cluster, "two")?;

    // A clean stop that takes the ISR below the minimum: the stopped follower is eligible,
    // since nothing was committed without it; acks=all is refused as before.
    cluster.node_mut(second).process.terminate()?;
    await_elr(&cluster, &[leader], &elr(leader, &[leader], &[second], &[]))?;
    let refused = cluster.connect(leader)?.send(
        &produce_request(
            &topic,
            0,
            batch(&messages("refused", 1, 2_000)),
            -1,
            LATEST_PRODUCE,
        ),
        LATEST_PRODUCE,
    )?;
    ensure!(
        only_partition(&refused)?.error_code == NOT_ENOUGH_REPLICAS,
        "{refused:?}"
    );

    // The leader crashes: the ISR empties, the leader joins the ELR (it had everything
    // committed when its session expired) and is the last known leader. The controllers
    // still have their quorum.
    cluster.node_mut(leader).process.kill()?;
    ensure!(
        clean_marker(&cluster, second).is_some(),
        "a clean stop is recorded"
    );
    ensure!(clean_marker(&cluster, leader).is_none(), "a crash is not");
    let mut eligible = vec![leader, second];
    eligible.sort();
    await_elr(&cluster, &[CONTROLLER], &elr(-1, &[], &eligible, &[leader]))?;

    // The crashed leader comes back: it may have lost acknowledged records, so it leaves the
    // ELR, and while an eligible replica remains it is not elected.
    cluster.node_mut(leader).process.relaunch()?;
    await_elr(
        &cluster,
        &[leader, CONTROLLER],
        &elr(-1, &[], &[second], &[leader]),
    )?;

    // The cleanly stopped follower comes back: eligible, it leads with an ISR of itself
    // (which the old leader soon rejoins), and the first follower rejoins too.
    cluster.node_mut(second).process.relaunch()?;
    await_described(&cluster, &[leader, second], "led from the ELR", |seen| {
        seen.leader == second
            && seen.isr.contains(&second)
            && !seen.isr.contains(&first)
            && seen.elr.is_empty()
            && seen.last_known_elr.is_empty()
    })?;
    cluster.node_mut(first).process.relaunch()?;
    await_elr(&cluster, &BROKERS, &elr(second, &[1, 2, 3], &[], &[]))?;

    // Nothing acknowledged was lost.
    let fetched = fetch_records(&mut cluster.connect(second)?, &topic, 0, 0)?;
    let values: Vec<Message> = fetched.into_iter().map(|f| f.message).collect();
    ensure!(
        values == acknowledged,
        "fetched {values:?}, acknowledged {acknowledged:?}"
    );
    Ok(())
}
