//! The share coordinator's inter-broker APIs (KIP-932) and FindCoordinator key type 2, as
//! another broker's share-partition leader or group coordinator sends them: a share-partition
//! found, initialized, written, read and summarised, then deleted; never initialized; with
//! older state and leader epochs; in a topic or partition that does not exist; empty
//! requests; and a principal without CLUSTER_ACTION. The reference Kafka runs share.version
//! 2 (Kafka 4.4's default); samsa serves these APIs at every level, as Kafka does.

use std::time::{Duration, Instant};

use base64::Engine;
use kafka_protocol::messages::*;
use samsa_protocol_tests::client::str_bytes;
use samsa_protocol_tests::differential::{Differential, Side};
use uuid::Uuid;

use crate::{ends, topic_ref, UNKNOWN};

const SHARE_KEY: i8 = 2;
const GROUP: &str = "share-state-group";

fn share_key(group: &str, topic: Uuid, partition: i32) -> String {
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(topic.as_bytes());
    format!("{group}:{id}:{partition}")
}

fn topic_id(side: &Side, topic: &str) -> Uuid {
    if topic == UNKNOWN.name {
        UNKNOWN.id
    } else {
        topic_ref(side, topic).id
    }
}

fn initialize(
    side: &Side,
    group: &str,
    topic: &str,
    partition: i32,
    state_epoch: i32,
) -> InitializeShareGroupStateRequest {
    use initialize_share_group_state_request::*;
    InitializeShareGroupStateRequest::default()
        .with_group_id(str_bytes(group))
        .with_topics(vec![InitializeStateData::default()
            .with_topic_id(topic_id(side, topic))
            .with_partitions(vec![PartitionData::default()
                .with_partition(partition)
                .with_state_epoch(state_epoch)
                .with_start_offset(5)])])
}

fn write(
    side: &Side,
    group: &str,
    topic: &str,
    state_epoch: i32,
    leader_epoch: i32,
    start: i64,
) -> WriteShareGroupStateRequest {
    use write_share_group_state_request::*;
    let batch = |first, last, state, count| {
        StateBatch::default()
            .with_first_offset(first)
            .with_last_offset(last)
            .with_delivery_state(state)
            .with_delivery_count(count)
    };
    WriteShareGroupStateRequest::default()
        .with_group_id(str_bytes(group))
        .with_topics(vec![WriteStateData::default()
            .with_topic_id(topic_id(side, topic))
            .with_partitions(vec![PartitionData::default()
                .with_partition(0)
                .with_state_epoch(state_epoch)
                .with_leader_epoch(leader_epoch)
                .with_start_offset(start)
                .with_delivery_complete_count(3)
                .with_state_batches(vec![
                    batch(5, 9, 2, 1),
                    batch(8, 12, 0, 2),
                    batch(20, 20, 4, 5),
                ])])])
}

fn read(side: &Side, group: &str, topic: &str, leader_epoch: i32) -> ReadShareGroupStateRequest {
    use read_share_group_state_request::*;
    ReadShareGroupStateRequest::default()
        .with_group_id(str_bytes(group))
        .with_topics(vec![ReadStateData::default()
            .with_topic_id(topic_id(side, topic))
            .with_partitions(vec![PartitionData::default()
                .with_partition(0)
                .with_leader_epoch(leader_epoch)])])
}

fn summary(side: &Side, group: &str, topic: &str) -> ReadShareGroupStateSummaryRequest {
    use read_share_group_state_summary_request::*;
    ReadShareGroupStateSummaryRequest::default()
        .with_group_id(str_bytes(group))
        .with_topics(vec![ReadStateSummaryData::default()
            .with_topic_id(topic_id(side, topic))
            .with_partitions(vec![PartitionData::default()
                .with_partition(0)
                .with_leader_epoch(1)])])
}

fn delete(side: &Side, group: &str, topic: &str) -> DeleteShareGroupStateRequest {
    use delete_share_group_state_request::*;
    DeleteShareGroupStateRequest::default()
        .with_group_id(str_bytes(group))
        .with_topics(vec![DeleteStateData::default()
            .with_topic_id(topic_id(side, topic))
            .with_partitions(vec![PartitionData::default().with_partition(0)])])
}

fn find(side: &Side, keys: &[String]) -> FindCoordinatorRequest {
    let _ = side;
    FindCoordinatorRequest::default()
        .with_key_type(SHARE_KEY)
        .with_coordinator_keys(keys.iter().map(|k| str_bytes(k)).collect())
}

/// Setup, not compared: both brokers coordinate `group`'s share-partition 0 of `topic`
/// (Kafka creates `__share_group_state` on the first lookup, then loads it), and a summary
/// of it is served.
fn await_share_coordinator(d: &mut Differential, group: &str, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for side in [&mut d.samsa, &mut d.kafka] {
        let key = share_key(group, topic_id(side, topic), 0);
        loop {
            let found = side
                .conn
                .send(&find(side, std::slice::from_ref(&key)), 6)
                .unwrap();
            let served = found.coordinators[0].error_code == 0 && {
                let answer = side.conn.send(&summary(side, group, topic), 1).unwrap();
                answer.results[0].partitions[0].error_code == 0
            };
            if served {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} has no share coordinator: {found:?}",
                side.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn share_group_state() {
    let mut d = Differential::start("share_group_state");
    let topic = d.topic("t");
    d.create_topic(&topic, 1, &[]);
    await_share_coordinator(&mut d, GROUP, &topic);

    // FindCoordinator does not look the topic up: the same made-up id on both brokers keeps
    // the keys, which the answers repeat, equal.
    let key = share_key(GROUP, UNKNOWN.id, 0);
    d.compare("find-share-key", 6, |s| find(s, std::slice::from_ref(&key)));
    d.compare("find-malformed-keys", 6, |s| {
        let keys = [
            "no-colons".to_owned(),
            share_key(" ", UNKNOWN.id, 0),
            "g:not-an-id:0".to_owned(),
            key.replace(":0", ":x"),
        ];
        find(s, &keys)
    });
    d.compare("find-share-key-before-v6", 5, |s| {
        find(s, std::slice::from_ref(&key))
    });

    for v in ends(ApiKey::ReadShareGroupStateSummary) {
        d.compare("summary-uninitialized", v, |s| {
            summary(s, "never-initialized", &topic)
        });
        d.compare("summary-unknown-topic", v, |s| {
            summary(s, GROUP, &UNKNOWN.name)
        });
    }
    d.compare("read-uninitialized", 0, |s| {
        read(s, "never-initialized", &topic, 0)
    });
    for v in ends(ApiKey::WriteShareGroupState) {
        d.compare("write-uninitialized", v, |s| {
            write(s, "never-initialized", &topic, 0, 0, 5)
        });
    }

    let (initialized, _) = d.compare("initialize", 0, |s| initialize(s, GROUP, &topic, 0, 2));
    assert_eq!(
        initialized.response().unwrap().results[0].partitions[0].error_code,
        0
    );
    let (fenced, _) = d.compare("initialize-older-state-epoch", 0, |s| {
        initialize(s, GROUP, &topic, 0, 1)
    });
    assert_eq!(
        fenced.response().unwrap().results[0].partitions[0].error_code,
        124
    );
    d.compare("initialize-unknown-topic", 0, |s| {
        initialize(s, GROUP, &UNKNOWN.name, 0, 0)
    });
    d.compare("initialize-unknown-partition", 0, |s| {
        initialize(s, GROUP, &topic, 3, 0)
    });
    d.compare("initialize-no-topics", 0, |_| {
        InitializeShareGroupStateRequest::default().with_group_id(str_bytes(GROUP))
    });
    d.compare("read-new-leader-epoch", 0, |s| read(s, GROUP, &topic, 1));
    d.compare("read-older-leader-epoch", 0, |s| read(s, GROUP, &topic, 0));
    for v in ends(ApiKey::WriteShareGroupState) {
        d.compare("write", v, |s| write(s, GROUP, &topic, 2, 1, 6));
        d.compare("write-older-state-epoch", v, |s| {
            write(s, GROUP, &topic, 1, 1, 6)
        });
        d.compare("write-older-leader-epoch", v, |s| {
            write(s, GROUP, &topic, 2, 0, 6)
        });
        d.compare("write-negative-leader-epoch", v, |s| {
            write(s, GROUP, &topic, 2, -1, 6)
        });
        d.compare("write-start-offset-back", v, |s| {
            write(s, GROUP, &topic, 2, 1, 4)
        });
        d.compare("write-empty-group", v, |s| write(s, "", &topic, 2, 1, 6));
    }
    let (state, _) = d.compare("read-after-writes", 0, |s| read(s, GROUP, &topic, 1));
    let state = &state.response().unwrap().results[0].partitions[0];
    assert_eq!((state.error_code, state.start_offset), (0, 6));
    assert_eq!(state.state_batches.len(), 3, "{state:?}");
    for v in ends(ApiKey::ReadShareGroupStateSummary) {
        d.compare("summary", v, |s| summary(s, GROUP, &topic));
    }
    d.compare("delete", 0, |s| delete(s, GROUP, &topic));
    d.compare("delete-again", 0, |s| delete(s, GROUP, &topic));
    d.compare("read-deleted", 0, |s| read(s, GROUP, &topic, 1));
    d.finish();
}

/// alice has no CLUSTER_ACTION: every partition is refused on both.
#[test]
fn share_group_state_unauthorized() {
    let mut d = Differential::start_sasl("share_group_state_unauthorized");
    let topic = d.topic("t");
    d.create_topic(&topic, 1, &[]);
    d.use_sasl_listeners();
    d.login("alice");
    let key = share_key(GROUP, UNKNOWN.id, 0);
    d.compare("find-denied", 6, |s| find(s, std::slice::from_ref(&key)));
    d.compare("initialize-denied", 0, |s| {
        initialize(s, GROUP, &topic, 0, 0)
    });
    d.compare("read-denied", 0, |s| read(s, GROUP, &topic, 0));
    d.compare("write-denied", 1, |s| write(s, GROUP, &topic, 0, 0, 0));
    d.compare("summary-denied", 1, |s| summary(s, GROUP, &topic));
    d.compare("delete-denied", 0, |s| delete(s, GROUP, &topic));
    d.finish();
}
