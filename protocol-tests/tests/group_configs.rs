//! Group configs (ConfigResource GROUP) beyond one answer: an override set through one node
//! of a cluster is what the group's coordinator on another node gives its members, and a
//! group's overrides outlive a restart (they are in the replicated metadata).

use std::time::{Duration, Instant};

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use samsa_protocol_tests::client::{share_groups_on, str_bytes, topic_name, wait_groups_loaded};
use samsa_protocol_tests::cluster::{TestCluster, CONVERGE};
use samsa_protocol_tests::{BrokerProcess, Connection};

const GROUP: i8 = 32;

fn set(conn: &mut Connection, group: &str, key: &str, value: &str) {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(GROUP)
            .with_resource_name(str_bytes(group))
            .with_configs(vec![AlterableConfig::default()
                .with_config_operation(0)
                .with_name(str_bytes(key))
                .with_value(Some(str_bytes(value)))]),
    ]);
    let answer = conn.send(&request, 1).unwrap();
    assert_eq!(answer.responses[0].error_code, 0, "{answer:?}");
}

/// The group's value of `key` and its config source.
fn described(conn: &mut Connection, group: &str, key: &str) -> (String, i8) {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(GROUP)
            .with_resource_name(str_bytes(group))
            .with_configuration_keys(Some(vec![str_bytes(key)]))]);
    let answer = conn.send(&request, 4).unwrap();
    let result = &answer.results[0];
    assert_eq!(result.error_code, 0, "{answer:?}");
    let entry = &result.configs[0];
    let value = entry.value.as_deref().unwrap_or_default().to_owned();
    (value, entry.config_source)
}

/// The node coordinating `group`, once one answers for it.
fn coordinator(cluster: &TestCluster, group: &str) -> i32 {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let mut conn = cluster.connect(1).unwrap();
        let request = FindCoordinatorRequest::default().with_key(str_bytes(group));
        let answer = conn.send(&request, 3).unwrap();
        if answer.error_code == 0 {
            return answer.node_id.0;
        }
        assert!(Instant::now() < deadline, "no coordinator: {answer:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_override_set_through_one_node_is_applied_by_the_coordinator_on_another() {
    let cluster = TestCluster::start(3, "").unwrap();
    share_groups_on(&mut cluster.connect(1).unwrap()).unwrap();
    let group = "configured";
    let coordinator = coordinator(&cluster, group);
    let other = if coordinator == 1 { 2 } else { 1 };
    set(
        &mut cluster.connect(other).unwrap(),
        group,
        "share.heartbeat.interval.ms",
        "6000",
    );
    // The coordinator gives the group's own interval from a member's next heartbeat.
    let mut conn = cluster.connect(coordinator).unwrap();
    let deadline = Instant::now() + CONVERGE;
    let mut epoch = 0;
    loop {
        let request = ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_member_id(str_bytes("m1"))
            .with_member_epoch(epoch)
            .with_subscribed_topic_names(Some(vec![topic_name("queue")]));
        let answer = conn.send(&request, 1).unwrap();
        if answer.error_code == 0 {
            epoch = answer.member_epoch;
            if answer.heartbeat_interval_ms == 6000 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "not applied: {answer:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for id in [1, 2, 3] {
        let mut conn = cluster.connect(id).unwrap();
        let (value, source) = described(&mut conn, group, "share.heartbeat.interval.ms");
        assert_eq!((value.as_str(), source), ("6000", 8), "node {id}");
    }
}

#[test]
fn group_configs_outlive_a_restart() {
    let mut broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    set(&mut conn, "g", "share.auto.offset.reset", "earliest");
    assert_eq!(
        described(&mut conn, "g", "share.auto.offset.reset"),
        ("earliest".to_owned(), 8)
    );
    broker.restart().unwrap();
    let mut conn = broker.connect().unwrap();
    wait_groups_loaded(&mut conn).unwrap();
    assert_eq!(
        described(&mut conn, "g", "share.auto.offset.reset"),
        ("earliest".to_owned(), 8)
    );
}

/// A consumer group (KIP-848) member is given its group's own heartbeat interval.
#[test]
fn a_consumer_group_takes_its_own_heartbeat_interval() {
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    wait_groups_loaded(&mut conn).unwrap();
    let join = |group: &str| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_member_id(str_bytes("m"))
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(Vec::new()))
            .with_topic_partitions(Some(Vec::new()))
    };
    set(&mut conn, "own", "consumer.heartbeat.interval.ms", "7000");
    // The coordinator follows the metadata a moment after the change is applied, as Kafka's.
    let deadline = Instant::now() + CONVERGE;
    let mut epoch = 0;
    loop {
        let own = conn.send(&join("own").with_member_epoch(epoch), 1).unwrap();
        assert_eq!(own.error_code, 0, "{own:?}");
        epoch = own.member_epoch;
        if own.heartbeat_interval_ms == 7000 {
            break;
        }
        assert!(Instant::now() < deadline, "not applied: {own:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let other = conn.send(&join("other"), 1).unwrap();
    assert_eq!(
        (other.error_code, other.heartbeat_interval_ms),
        (0, 5000),
        "{other:?}"
    );
}
