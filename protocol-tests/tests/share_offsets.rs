//! AlterShareGroupOffsets, DeleteShareGroupOffsets and a topic's deletion as the records keep
//! them: the share-partitions' start offsets a group is left with stay what they were across
//! a restart (the group's `ShareGroupStatePartitionMetadata` and the share coordinator's
//! state are both replayed). The answers themselves are compared with Kafka's in the
//! differential suite (`groups::share_offsets`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::*;
use samsa_protocol_tests::client::{
    create_topic, share_groups_on, str_bytes, topic_name, wait_groups_loaded,
};
use samsa_protocol_tests::{BrokerProcess, Connection};

fn alter(conn: &mut Connection, topic: &str, partition: i32, start_offset: i64) {
    let request = AlterShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(str_bytes("g")))
        .with_topics(vec![AlterShareGroupOffsetsRequestTopic::default()
            .with_topic_name(topic_name(topic))
            .with_partitions(vec![
                AlterShareGroupOffsetsRequestPartition::default()
                    .with_partition_index(partition)
                    .with_start_offset(start_offset),
            ])]);
    let answer = conn.send(&request, 0).unwrap();
    assert_eq!(answer.error_code, 0, "{answer:?}");
    let codes: Vec<i16> = answer
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect();
    assert_eq!(codes, vec![0], "{answer:?}");
}

/// Every share-partition of group g: (topic, partition) → start offset.
fn offsets(conn: &mut Connection) -> BTreeMap<(String, i32), i64> {
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_topics(None),
    ]);
    let answer = conn.send(&request, 1).unwrap();
    let group = &answer.groups[0];
    assert_eq!(group.error_code, 0, "{answer:?}");
    group
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    (t.topic_name.to_string(), p.partition_index),
                    p.start_offset,
                )
            })
        })
        .collect()
}

fn expect(pairs: &[(&str, i32, i64)]) -> BTreeMap<(String, i32), i64> {
    pairs
        .iter()
        .map(|(t, p, o)| ((t.to_string(), *p), *o))
        .collect()
}

#[test]
fn altered_deleted_and_topic_deleted_share_offsets_survive_a_restart() {
    let mut broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    wait_groups_loaded(&mut conn).unwrap();
    share_groups_on(&mut conn).unwrap();
    create_topic(&mut conn, "queue", 1, &[]).unwrap();
    create_topic(&mut conn, "gone", 1, &[]).unwrap();
    // No member ever joins: altering makes the share group.
    alter(&mut conn, "queue", 0, 3);
    alter(&mut conn, "gone", 0, 1);
    assert_eq!(
        offsets(&mut conn),
        expect(&[("gone", 0, 1), ("queue", 0, 3)])
    );

    let request = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(str_bytes("g")))
        .with_topics(vec![
            DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(topic_name("queue"))
        ]);
    let answer = conn.send(&request, 0).unwrap();
    assert_eq!(answer.error_code, 0, "{answer:?}");
    assert_eq!(answer.responses[0].error_code, 0, "{answer:?}");
    assert_eq!(offsets(&mut conn), expect(&[("gone", 0, 1)]));

    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name("gone")))
        ]);
    let answer = conn.send(&request, 6).unwrap();
    assert_eq!(answer.responses[0].error_code, 0, "{answer:?}");
    // The share groups forget a deleted topic once the metadata has it gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !offsets(&mut conn).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", offsets(&mut conn));
        std::thread::sleep(Duration::from_millis(50));
    }
    alter(&mut conn, "queue", 0, 5);
    let before = offsets(&mut conn);
    assert_eq!(before, expect(&[("queue", 0, 5)]));

    broker.restart().unwrap();
    let mut conn = broker.connect().unwrap();
    wait_groups_loaded(&mut conn).unwrap();
    assert_eq!(offsets(&mut conn), before);
}
