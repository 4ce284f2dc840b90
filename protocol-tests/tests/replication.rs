//! Replicated partitions across three samsa processes: topics made through any node, acks=all
//! writes that survive the loss of their leader, the ISR shrinking and growing back, the
//! minimum ISR refusing writes, and a partition moved to other brokers while it is written.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use samsa_protocol_tests::batches::{batch, messages, Message};
use samsa_protocol_tests::client::{
    delete_topic, fetch_records, only_partition, produce, produce_request, str_bytes,
    topic_configs, topic_name, TopicRef, LATEST_PRODUCE,
};
use samsa_protocol_tests::cluster::{
    brokers, partition, sorted, topic_partitions, TestCluster, CONVERGE,
};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const NOT_ENOUGH_REPLICAS: i16 = 19;
const ELECTION_NOT_NEEDED: i16 = 84;

fn leader_of(cluster: &TestCluster, on: i32, topic: &str, index: i32) -> Result<i32> {
    let m = cluster.metadata(on, &[topic])?;
    Ok(partition(&m, topic, index)
        .context("partition listed")?
        .leader_id
        .0)
}

/// The data directory of `topic`-`index` on node `id`.
fn replica_dir(cluster: &TestCluster, id: i32, topic: &str, index: i32) -> PathBuf {
    cluster
        .node(id)
        .process
        .data_dir
        .path()
        .join("data")
        .join(format!("{topic}-{index}"))
}

/// Every segment file of a replica, concatenated, in name order.
fn replica_bytes(dir: &std::path::Path) -> Result<Vec<u8>> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let mut bytes = Vec::new();
    for log in logs {
        bytes.extend(std::fs::read(log)?);
    }
    Ok(bytes)
}

fn values(fetched: &[samsa_protocol_tests::batches::Fetched]) -> Vec<Message> {
    fetched.iter().map(|f| f.message.clone()).collect()
}

/// Waits for `done`, polling; the condition is what the test waits for, not a duration.
fn await_condition(what: &str, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + CONVERGE;
    loop {
        if done().unwrap_or(false) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not {what} within {CONVERGE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn acknowledged_writes_survive_their_leader_and_a_returning_replica_catches_up() -> Result<()> {
    let mut cluster = TestCluster::start(3, "replica_lag_time_max_ms = 3000\n")?;
    let topic = cluster.create_topic(
        2,
        "replicated",
        1,
        3,
        &[("min.insync.replicas", "2")],
        &[1, 2, 3],
    )?;
    let leader = leader_of(&cluster, 1, &topic.name, 0)?;
    let mut written = Vec::new();
    let mut conn = cluster.connect(leader)?;
    for i in 0..5 {
        let batch_messages = messages(&format!("before-{i}"), 10, 1_000 + i * 10);
        produce(&mut conn, &topic, 0, batch(&batch_messages))?;
        written.extend(batch_messages);
    }
    assert_eq!(values(&fetch_records(&mut conn, &topic, 0, 0)?), written);

    // A follower refuses the write and names the leader and where to reach it (KIP-951).
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let refused = cluster.connect(follower)?.send(
        &produce_request(
            &topic,
            0,
            batch(&messages("misdirected", 1, 0)),
            -1,
            LATEST_PRODUCE,
        ),
        LATEST_PRODUCE,
    )?;
    let answer = only_partition(&refused)?;
    assert_eq!(answer.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(answer.current_leader.leader_id.0, leader);
    let endpoint = refused
        .node_endpoints
        .iter()
        .find(|e| e.node_id.0 == leader)
        .context("the leader's endpoint")?;
    assert_eq!(
        format!("{}:{}", endpoint.host, endpoint.port),
        cluster.node(leader).process.addr
    );

    // The leader crashes: another member of the ISR leads at a new epoch, with everything
    // acknowledged, and takes new writes while the ISR (2 of 3) still meets the minimum.
    let epoch = partition(&cluster.metadata(1, &[&topic.name])?, &topic.name, 0)
        .unwrap()
        .leader_epoch;
    cluster.node_mut(leader).process.kill()?;
    let survivors: Vec<i32> = (1..=3).filter(|id| *id != leader).collect();
    cluster.await_metadata(&survivors, "a new leader without the crashed one", |m| {
        partition(m, &topic.name, 0).is_some_and(|p| {
            p.leader_id.0 >= 0
                && p.leader_id.0 != leader
                && p.leader_epoch > epoch
                && !sorted(&p.isr_nodes).contains(&leader)
        })
    })?;
    let new_leader = leader_of(&cluster, survivors[0], &topic.name, 0)?;
    let mut conn = cluster.connect(new_leader)?;
    // The new leader has every acknowledged record; its high watermark, which it took over
    // from the old leader's last answer, reaches them once the other in-sync replica fetches.
    await_condition(
        "every acknowledged record readable from the new leader",
        || Ok(values(&fetch_records(&mut conn, &topic, 0, 0)?) == written),
    )?;
    let after = messages("after", 10, 2_000);
    produce(&mut conn, &topic, 0, batch(&after))?;
    written.extend(after);

    // Back on its data directory, the old leader truncates to the new leader's log,
    // catches up and rejoins the ISR; all three replicas then hold the same bytes.
    cluster.node_mut(leader).process.relaunch()?;
    cluster.await_metadata(&[1, 2, 3], "the old leader back in the ISR", |m| {
        partition(m, &topic.name, 0).is_some_and(|p| sorted(&p.isr_nodes) == [1, 2, 3])
    })?;
    await_condition("the same bytes on every replica", || {
        let reference = replica_bytes(&replica_dir(&cluster, new_leader, &topic.name, 0))?;
        Ok((1..=3).all(|id| {
            replica_bytes(&replica_dir(&cluster, id, &topic.name, 0)).is_ok_and(|b| b == reference)
        }))
    })?;
    assert_eq!(
        values(&fetch_records(
            &mut cluster.connect(new_leader)?,
            &topic,
            0,
            0
        )?),
        written
    );
    Ok(())
}

#[test]
fn acks_all_needs_the_minimum_isr() -> Result<()> {
    let mut cluster = TestCluster::start(3, "")?;
    let assignment = CreatableReplicaAssignment::default()
        .with_partition_index(0)
        .with_broker_ids(vec![BrokerId(1), BrokerId(2)]);
    let topic = create_assigned(
        &cluster,
        "guarded",
        vec![assignment],
        &[("min.insync.replicas", "2")],
    )?;
    let mut conn = cluster.connect(1)?;
    produce(&mut conn, &topic, 0, batch(&messages("both", 3, 0)))?;

    // Broker 2 dies; once it is fenced the ISR is the leader alone, below the minimum.
    cluster.node_mut(2).process.kill()?;
    cluster.await_metadata(&[1, 3], "the ISR shrunk to the leader", |m| {
        partition(m, &topic.name, 0).is_some_and(|p| sorted(&p.isr_nodes) == [1])
    })?;
    // The leader's metrics say so.
    let isr_series = format!(
        "samsa_partition_in_sync_replicas{{partition=\"0\",topic=\"{}\"}}",
        topic.name
    );
    await_condition("the leader's metrics showing the shrunk ISR", || {
        Ok(cluster.metric(1, &isr_series)? == Some(1.0))
    })?;
    assert_eq!(
        cluster.metric(1, "samsa_under_replicated_partitions")?,
        Some(1.0)
    );
    let refused = conn.send(
        &produce_request(
            &topic,
            0,
            batch(&messages("alone", 1, 0)),
            -1,
            LATEST_PRODUCE,
        ),
        LATEST_PRODUCE,
    )?;
    assert_eq!(only_partition(&refused)?.error_code, NOT_ENOUGH_REPLICAS);
    let acks_one = conn.send(
        &produce_request(&topic, 0, batch(&messages("one", 1, 0)), 1, LATEST_PRODUCE),
        LATEST_PRODUCE,
    )?;
    assert_eq!(only_partition(&acks_one)?.error_code, 0);

    cluster.node_mut(2).process.relaunch()?;
    cluster.await_metadata(&[1, 2, 3], "the ISR whole again", |m| {
        partition(m, &topic.name, 0).is_some_and(|p| sorted(&p.isr_nodes) == [1, 2])
    })?;
    produce(&mut conn, &topic, 0, batch(&messages("again", 1, 0)))?;
    await_condition("no partition under-replicated", || {
        Ok(cluster.metric(1, "samsa_under_replicated_partitions")? == Some(0.0))
    })?;
    Ok(())
}

fn create_assigned(
    cluster: &TestCluster,
    name: &str,
    assignments: Vec<CreatableReplicaAssignment>,
    configs: &[(&str, &str)],
) -> Result<TopicRef> {
    let count = assignments.len();
    let topic = CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(assignments)
        .with_configs(topic_configs(configs));
    let response = cluster.connect(3)?.send(
        &CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![topic]),
        7,
    )?;
    let result = &response.topics[0];
    ensure!(result.error_code == 0, "creating {name}: {result:?}");
    cluster.await_metadata(&[1, 2, 3], "the assigned topic led", |m| {
        topic_partitions(m, name)
            .is_some_and(|ps| ps.len() == count && ps.iter().all(|p| p.leader_id.0 >= 0))
    })?;
    Ok(TopicRef {
        name: name.to_owned(),
        id: result.topic_id,
    })
}

/// Produces batches to whichever broker leads partition 0, following NOT_LEADER_OR_FOLLOWER
/// to the leader it names, until `stop`; counts acknowledged batches in `acked_batches`.
/// Returns every acknowledged message in order, and the messages of batches whose fate it
/// never learnt (an error or a lost connection after they were sent: they may be in the log).
fn keep_producing(
    cluster_addrs: Vec<(i32, String)>,
    topic: TopicRef,
    stop: Arc<AtomicBool>,
    acked_batches: Arc<AtomicUsize>,
) -> Result<(Vec<Message>, Vec<Message>)> {
    let mut acked = Vec::new();
    let mut unconfirmed = Vec::new();
    let mut leader = cluster_addrs[0].0;
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        let addr = &cluster_addrs
            .iter()
            .find(|(id, _)| *id == leader)
            .context("known broker")?
            .1;
        let sent = messages(&format!("moving-{round}"), 5, round * 5);
        let outcome = samsa_protocol_tests::Connection::open(addr).and_then(|mut conn| {
            conn.send(
                &produce_request(&topic, 0, batch(&sent), -1, LATEST_PRODUCE),
                LATEST_PRODUCE,
            )
        });
        round += 1;
        let Ok(response) = outcome else {
            unconfirmed.extend(sent);
            continue;
        };
        let answer = only_partition(&response)?;
        match answer.error_code {
            0 => {
                acked.extend(sent);
                acked_batches.fetch_add(1, Ordering::Relaxed);
            }
            code => {
                unconfirmed.extend(sent);
                if code == NOT_LEADER_OR_FOLLOWER && answer.current_leader.leader_id.0 >= 0 {
                    leader = answer.current_leader.leader_id.0;
                } else {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    Ok((acked, unconfirmed))
}

/// Every record of partition 0 from the start, over as many fetches as it takes.
fn read_everything(
    conn: &mut samsa_protocol_tests::Connection,
    topic: &TopicRef,
) -> Result<Vec<Message>> {
    let mut all = Vec::new();
    let mut next = 0;
    loop {
        let fetched = fetch_records(conn, topic, 0, next)?;
        let Some(last) = fetched.last() else {
            return Ok(all);
        };
        next = last.offset + 1;
        all.extend(values(&fetched));
    }
}

#[test]
fn a_reassignment_moves_a_partition_while_it_is_written() -> Result<()> {
    let cluster = TestCluster::start(3, "")?;
    let assignment = CreatableReplicaAssignment::default()
        .with_partition_index(0)
        .with_broker_ids(vec![BrokerId(1)]);
    let topic = create_assigned(&cluster, "moving", vec![assignment], &[])?;
    let mut conn = cluster.connect(1)?;
    let mut written = messages("first", 20, 0);
    produce(&mut conn, &topic, 0, batch(&written))?;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let addrs: Vec<(i32, String)> = cluster
        .nodes
        .iter()
        .map(|n| (n.id, n.process.addr.clone()))
        .collect();
    let producer = {
        let (topic, stop, acked) = (topic.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || keep_producing(addrs, topic, stop, acked))
    };
    await_condition("the producer under way", || {
        Ok(acked.load(Ordering::Relaxed) >= 3)
    })?;
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic_name(&topic.name))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(vec![BrokerId(2), BrokerId(3)]))])]);
    let response = cluster.connect(2)?.send(&request, 0)?;
    assert_eq!(response.error_code, 0);
    assert_eq!(
        response.responses[0].partitions[0].error_code, 0,
        "{response:?}"
    );
    cluster.await_metadata(&[1, 2, 3], "the partition on brokers 2 and 3 only", |m| {
        partition(m, &topic.name, 0)
            .is_some_and(|p| sorted(&p.replica_nodes) == [2, 3] && sorted(&p.isr_nodes) == [2, 3])
    })?;
    let listed = cluster.connect(1)?.send(
        &ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000),
        0,
    )?;
    assert!(
        listed.topics.is_empty(),
        "the reassignment is over: {listed:?}"
    );
    // A few writes land on the new leader before the producer stops.
    let new_leader = leader_of(&cluster, 1, &topic.name, 0)?;
    assert!([2, 3].contains(&new_leader));
    let moved_at = acked.load(Ordering::Relaxed);
    await_condition("writes acknowledged after the move", || {
        Ok(acked.load(Ordering::Relaxed) >= moved_at + 3)
    })?;
    stop.store(true, Ordering::Relaxed);
    let (acked, unconfirmed) = producer.join().unwrap()?;
    written.extend(acked);

    // Every acknowledged record is on the new replicas, in order, and nothing else is there
    // but batches whose writes the producer never heard back about.
    let log = read_everything(&mut cluster.connect(new_leader)?, &topic)?;
    // Keys are unique to each message.
    let keys = |ms: &[Message]| {
        ms.iter()
            .map(|m| m.key.clone())
            .collect::<std::collections::HashSet<_>>()
    };
    let (sent, unsure) = (keys(&written), keys(&unconfirmed));
    let unknown: Vec<&Message> = log
        .iter()
        .filter(|m| !sent.contains(&m.key) && !unsure.contains(&m.key))
        .collect();
    assert!(unknown.is_empty(), "records nobody wrote: {unknown:?}");
    let acknowledged: Vec<Message> = log
        .into_iter()
        .filter(|m| !unsure.contains(&m.key))
        .collect();
    assert_eq!(acknowledged, written);
    // Broker 1's copy is gone.
    await_condition("broker 1's replica deleted", || {
        Ok(!replica_dir(&cluster, 1, &topic.name, 0).exists())
    })?;
    Ok(())
}

#[test]
fn topics_change_through_any_node() -> Result<()> {
    let cluster = TestCluster::start(3, "")?;
    let topic = cluster.create_topic(1, "changing", 2, 2, &[], &[1, 2, 3])?;
    let m = cluster.metadata(3, &[&topic.name])?;
    assert_eq!(brokers(&m), [1, 2, 3]);
    for p in topic_partitions(&m, &topic.name).unwrap() {
        assert_eq!(p.replica_nodes.len(), 2);
    }

    // More partitions, asked of another node, spread like the first.
    let grow = CreatePartitionsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(&topic.name))
            .with_count(6)
            .with_assignments(None)]);
    let grown = cluster.connect(3)?.send(&grow, 3)?;
    assert_eq!(grown.results[0].error_code, 0, "{grown:?}");
    cluster.await_metadata(&[1, 2, 3], "six partitions", |m| {
        topic_partitions(m, &topic.name)
            .is_some_and(|ps| ps.len() == 6 && ps.iter().all(|p| p.leader_id.0 >= 0))
    })?;
    let m = cluster.metadata(1, &[&topic.name])?;
    let leaders: std::collections::BTreeSet<i32> = topic_partitions(&m, &topic.name)
        .unwrap()
        .iter()
        .map(|p| p.leader_id.0)
        .collect();
    assert_eq!(
        leaders.len(),
        3,
        "leaders spread over the brokers: {leaders:?}"
    );

    // A config change through node 2 is what node 1 describes.
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(str_bytes(&topic.name))
            .with_configs(vec![AlterableConfig::default()
                .with_name(str_bytes("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(str_bytes("123456")))]),
    ]);
    let altered = cluster.connect(2)?.send(&alter, 1)?;
    assert_eq!(altered.responses[0].error_code, 0, "{altered:?}");
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(str_bytes(&topic.name))
            .with_configuration_keys(Some(vec![str_bytes("retention.ms")])),
    ]);
    await_condition("node 1 describing the new value", || {
        let described = cluster.connect(1)?.send(&describe, 4)?;
        Ok(described.results[0].configs[0]
            .value
            .as_ref()
            .map(|v| v.to_string())
            .as_deref()
            == Some("123456"))
    })?;

    // Deleted through node 2: gone from every node's metadata and disk.
    delete_topic(&mut cluster.connect(2)?, &topic.name)?;
    cluster.await_metadata(&[1, 2, 3], "the topic gone", |m| {
        topic_partitions(m, &topic.name).is_none()
    })?;
    await_condition("every replica deleted", || {
        Ok((1..=3).all(|id| (0..6).all(|p| !replica_dir(&cluster, id, &topic.name, p).exists())))
    })?;
    Ok(())
}

/// Partition p of a three-partition topic whose preferred (first) replica is broker p + 1.
fn one_preferred_partition_each(cluster: &TestCluster, name: &str) -> Result<TopicRef> {
    let assignments = (0..3)
        .map(|p| {
            let replicas = (0..3).map(|i| BrokerId((p + i) % 3 + 1)).collect();
            CreatableReplicaAssignment::default()
                .with_partition_index(p)
                .with_broker_ids(replicas)
        })
        .collect();
    create_assigned(cluster, name, assignments, &[])
}

/// Broker 1 crashes and comes back into every ISR; its partition is led by another broker.
fn leadership_moved_off_broker_1(cluster: &mut TestCluster, topic: &str) -> Result<()> {
    cluster.node_mut(1).process.kill()?;
    cluster.await_metadata(&[2, 3], "partition 0 led elsewhere", |m| {
        partition(m, topic, 0).is_some_and(|p| p.leader_id.0 >= 2)
    })?;
    cluster.node_mut(1).process.relaunch()?;
    cluster.await_metadata(&[1, 2, 3], "broker 1 back in every ISR", |m| {
        topic_partitions(m, topic).is_some_and(|ps| ps.iter().all(|p| p.isr_nodes.len() == 3))
    })
}

#[test]
fn an_operator_gives_partitions_back_to_their_preferred_leader() -> Result<()> {
    let mut cluster = TestCluster::start(3, "auto_leader_rebalance_enable = false\n")?;
    let topic = one_preferred_partition_each(&cluster, "preferred")?;
    leadership_moved_off_broker_1(&mut cluster, &topic.name)?;
    assert_ne!(
        leader_of(&cluster, 1, &topic.name, 0)?,
        1,
        "no rebalance by itself"
    );

    let elect = |partitions: Vec<i32>| {
        ElectLeadersRequest::default()
            .with_election_type(0)
            .with_timeout_ms(30_000)
            .with_topic_partitions(Some(vec![
                kafka_protocol::messages::elect_leaders_request::TopicPartitions::default()
                    .with_topic(topic_name(&topic.name))
                    .with_partitions(partitions),
            ]))
    };
    let answer = cluster.connect(3)?.send(&elect(vec![0, 1]), 2)?;
    let results = &answer.replica_election_results[0].partition_result;
    assert_eq!(
        (results[0].partition_id, results[0].error_code),
        (0, 0),
        "{answer:?}"
    );
    assert_eq!(
        results[1].error_code, ELECTION_NOT_NEEDED,
        "partition 1 is led by broker 2 already"
    );
    cluster.await_metadata(&[1, 2, 3], "broker 1 leading partition 0 again", |m| {
        partition(m, &topic.name, 0).is_some_and(|p| p.leader_id.0 == 1)
    })?;
    // And it takes writes there.
    produce(
        &mut cluster.connect(1)?,
        &topic,
        0,
        batch(&messages("back", 3, 0)),
    )?;
    Ok(())
}

#[test]
fn the_controller_gives_partitions_back_to_their_preferred_leader() -> Result<()> {
    let mut cluster = TestCluster::start(3, "leader_imbalance_check_interval_seconds = 1\n")?;
    let topic = one_preferred_partition_each(&cluster, "rebalanced")?;
    leadership_moved_off_broker_1(&mut cluster, &topic.name)?;
    cluster.await_metadata(&[1, 2, 3], "each preferred replica leading", |m| {
        topic_partitions(m, &topic.name)
            .is_some_and(|ps| ps.iter().all(|p| p.leader_id.0 == p.replica_nodes[0].0))
    })
}

#[test]
fn a_topic_deleted_while_a_broker_is_down_leaves_nothing_on_it() -> Result<()> {
    let mut cluster = TestCluster::start(3, "")?;
    let topic = cluster.create_topic(1, "doomed", 2, 3, &[], &[1, 2, 3])?;
    let leader = leader_of(&cluster, 1, &topic.name, 0)?;
    produce(
        &mut cluster.connect(leader)?,
        &topic,
        0,
        batch(&messages("gone", 3, 0)),
    )?;
    let down = (1..=3).find(|id| *id != leader).unwrap();
    cluster.node_mut(down).process.kill()?;
    let up: Vec<i32> = (1..=3).filter(|id| *id != down).collect();
    cluster.await_metadata(&up, "the broker fenced", |m| !brokers(m).contains(&down))?;
    delete_topic(&mut cluster.connect(up[0])?, &topic.name)?;
    assert!(
        replica_dir(&cluster, down, &topic.name, 0).exists(),
        "nobody removed it while it was down"
    );
    cluster.node_mut(down).process.relaunch()?;
    await_condition("the down broker's replicas removed", || {
        Ok((0..2).all(|p| !replica_dir(&cluster, down, &topic.name, p).exists()))
    })?;
    Ok(())
}

/// A restarted broker serves clients only once it has caught up with the metadata, so the
/// first Metadata it answers lists every topic with its leaders. (The nemesis saw restarted
/// brokers answer without a topic for half a second, and consumers drop their partitions.)
#[test]
fn a_restarted_broker_answers_metadata_only_once_caught_up() -> Result<()> {
    let mut cluster = TestCluster::start(3, "")?;
    let topic = cluster.create_topic(1, "listed", 3, 3, &[], &[1, 2, 3])?;
    let complete = |m: &MetadataResponse| {
        topic_partitions(m, &topic.name).is_some_and(|ps| {
            ps.len() == 3 && ps.iter().all(|p| p.error_code == 0 && p.leader_id.0 >= 0)
        })
    };
    for (round, crash) in [false, true, false, true].into_iter().enumerate() {
        let process = &mut cluster.node_mut(3).process;
        if crash {
            process.crash_and_restart()?;
        } else {
            process.restart()?;
        }
        // At once, as a client does that was waiting for the broker to come back.
        let all = cluster.metadata(3, &[])?;
        ensure!(
            complete(&all),
            "round {round}: Metadata for all topics: {all:?}"
        );
        let named = cluster.metadata(3, &[&topic.name])?;
        ensure!(
            complete(&named),
            "round {round}: Metadata for the topic: {named:?}"
        );
    }
    Ok(())
}
