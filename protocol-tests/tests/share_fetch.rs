//! ShareFetch and ShareAcknowledge on a broker process: answered UNSUPPORTED_VERSION while
//! share.version is 0 (a default cluster), as Kafka 4.4 answers them; served once an
//! operator upgrades it, with the share session's rules. What a share-partition does with
//! records is tested in the broker's own tests, where its state can be initialized.

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::share_acknowledge_request as ack_request;
use kafka_protocol::messages::share_fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::*;
use samsa_protocol_tests::client::{create_topic, str_bytes};
use samsa_protocol_tests::{BrokerProcess, Connection};
use uuid::Uuid;

fn fetch(topic: Uuid, member: &str, epoch: i32) -> ShareFetchRequest {
    ShareFetchRequest::default()
        .with_group_id(Some(GroupId(str_bytes("g"))))
        .with_member_id(Some(str_bytes(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_max_records(100)
        .with_batch_size(100)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![
                FetchPartition::default().with_partition_index(0)
            ])])
}

fn acknowledge(topic: Uuid, member: &str, epoch: i32) -> ShareAcknowledgeRequest {
    ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(str_bytes("g"))))
        .with_member_id(Some(str_bytes(member)))
        .with_share_session_epoch(epoch)
        .with_topics(vec![ack_request::AcknowledgeTopic::default()
            .with_topic_id(topic)
            .with_partitions(vec![
                ack_request::AcknowledgePartition::default().with_partition_index(0)
            ])])
}

fn set_share_version(conn: &mut Connection, level: i16) {
    let request = UpdateFeaturesRequest::default()
        .with_timeout_ms(30_000)
        .with_feature_updates(vec![FeatureUpdateKey::default()
            .with_feature(str_bytes("share.version"))
            .with_max_version_level(level)
            .with_upgrade_type(if level == 0 { 2 } else { 1 })]);
    let answer = conn.send(&request, 1).unwrap();
    assert_eq!(answer.error_code, 0, "{answer:?}");
}

#[test]
fn share_fetch_follows_share_version_and_its_sessions() {
    let broker = BrokerProcess::start("").unwrap();
    let mut conn = broker.connect().unwrap();
    let topic = create_topic(&mut conn, "queue", 1, &[]).unwrap().id;
    for v in 1..=2 {
        let refused = conn.send(&fetch(topic, "m", 0), v).unwrap();
        assert_eq!(refused.error_code, E::UnsupportedVersion.code(), "v{v}");
        let refused = conn.send(&acknowledge(topic, "m", 1), v).unwrap();
        assert_eq!(refused.error_code, E::UnsupportedVersion.code(), "v{v}");
    }
    set_share_version(&mut conn, 2);
    for v in 1..=2 {
        let member = format!("member-{v}");
        let opened = conn.send(&fetch(topic, &member, 0), v).unwrap();
        assert_eq!(opened.error_code, 0, "v{v}: {opened:?}");
        assert_eq!(opened.acquisition_lock_timeout_ms, 30_000);
        // A full session answers its partition, here not yet initialized by a group.
        assert_eq!(opened.responses[0].partitions.len(), 1);
        let unknown = conn
            .send(&fetch(Uuid::from_u128(1), &member, 1), v)
            .unwrap();
        assert_eq!(unknown.error_code, 0);
        let codes: Vec<i16> = unknown
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.error_code)
            .collect();
        assert!(
            codes.contains(&E::UnknownTopicId.code()),
            "v{v}: {unknown:?}"
        );
        let late = conn.send(&fetch(topic, &member, 1), v).unwrap();
        assert_eq!(late.error_code, E::InvalidShareSessionEpoch.code());
        let acked = conn.send(&acknowledge(topic, &member, 2), v).unwrap();
        assert_eq!(acked.error_code, 0, "v{v}: {acked:?}");
        assert_eq!(acked.responses[0].partitions[0].error_code, 0);
        let closed = conn.send(&acknowledge(topic, &member, -1), v).unwrap();
        assert_eq!(closed.error_code, 0);
        let gone = conn.send(&fetch(topic, &member, 3), v).unwrap();
        assert_eq!(gone.error_code, E::ShareSessionNotFound.code());
    }
    // Turned off again: refused again.
    set_share_version(&mut conn, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = conn.send(&fetch(topic, "m", 0), 1).unwrap();
        if answer.error_code == E::UnsupportedVersion.code() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{answer:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
