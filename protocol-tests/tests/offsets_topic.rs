//! `__consumer_offsets` belongs to the group coordinator: clients cannot produce into it
//! (as in Kafka), delete it or add partitions to it (Kafka 4.4 allows both and loses or
//! moves every group; samsa refuses, see src/handlers/admin.rs). Metadata lists it as
//! internal (tests/groups.rs).

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use samsa_protocol_tests::batches::{base_timestamp, batch, messages};
use samsa_protocol_tests::client::{
    create_topic, produce_request, str_bytes, topic_name, TopicRef,
};
use samsa_protocol_tests::{BrokerProcess, Connection};

const OFFSETS_TOPIC: &str = "__consumer_offsets";

fn commit(conn: &mut Connection, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes("g")))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name("t"))
            .with_partitions(vec![
                OffsetCommitRequestPartition::default().with_committed_offset(offset)
            ])]);
    conn.send(&request, 9).unwrap().topics[0].partitions[0].error_code
}

fn committed(conn: &mut Connection) -> i64 {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(str_bytes("g")))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name("t"))
            .with_partition_indexes(vec![0])]));
    conn.send(&request, 7).unwrap().topics[0].partitions[0].committed_offset
}

/// A broker whose offsets topic exists (a group committed), and that topic as clients see it.
fn started() -> (BrokerProcess, Connection, TopicRef) {
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    create_topic(&mut conn, "t", 1, &[]).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // COORDINATOR_LOAD_IN_PROGRESS until the coordinator has replayed the (empty) topic.
    while commit(&mut conn, 1) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the coordinator never loaded"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let metadata = conn
        .send(
            &MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(OFFSETS_TOPIC)))
            ])),
            12,
        )
        .unwrap();
    let topic = &metadata.topics[0];
    assert_eq!(topic.error_code, 0);
    assert!(topic.is_internal);
    let topic = TopicRef {
        name: OFFSETS_TOPIC.into(),
        id: topic.topic_id,
    };
    (broker, conn, topic)
}

#[test]
fn clients_cannot_produce_into_the_offsets_topic() {
    let (_broker, mut conn, topic) = started();
    for version in [3, 13] {
        let records = batch(&messages("x", 1, base_timestamp()));
        let r = conn
            .send(&produce_request(&topic, 0, records, -1, version), version)
            .unwrap();
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, E::InvalidTopicException.code(), "v{version}");
        assert_eq!(p.base_offset, -1);
    }
    // The coordinator itself still writes there.
    assert_eq!(commit(&mut conn, 2), 0);
    assert_eq!(committed(&mut conn), 2);
}

#[test]
fn the_offsets_topic_can_be_neither_deleted_nor_grown() {
    let (_broker, mut conn, topic) = started();
    let by_name = DeleteTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topic_names(vec![topic_name(OFFSETS_TOPIC)]);
    let r = conn.send(&by_name, 1).unwrap();
    assert_eq!(r.responses[0].error_code, E::InvalidTopicException.code());
    let by_id = DeleteTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteTopicState::default().with_topic_id(topic.id)]);
    let r = conn.send(&by_id, 6).unwrap();
    assert_eq!(r.responses[0].error_code, E::InvalidTopicException.code());
    assert!(r.responses[0].error_message.is_some());
    for validate_only in [true, false] {
        let grow = CreatePartitionsRequest::default()
            .with_timeout_ms(5000)
            .with_validate_only(validate_only)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(OFFSETS_TOPIC))
                .with_count(5)
                .with_assignments(None)]);
        let r = conn.send(&grow, 3).unwrap();
        assert_eq!(
            r.results[0].error_code,
            E::InvalidTopicException.code(),
            "validate_only {validate_only}"
        );
    }
    // Offsets are still committed and read back through the same topic.
    assert_eq!(commit(&mut conn, 3), 0);
    assert_eq!(committed(&mut conn), 3);
}
