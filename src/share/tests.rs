//! The persister on a real broker: its calls served by this broker's coordinator (creating
//! `__share_group_state` on first use and waiting for its load), and the same calls sent
//! over the wire as another broker sends them, which read the same state back and carry
//! Kafka's refusals.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::remote::{Remote, StateRequest};
use super::state::{Answer, SharePartitionKey, ShareState, StateBatch};
use super::WriteData;
use crate::config::Config;
use crate::error::BrokerError;
use crate::testing::start_broker;

fn batch(first: i64, last: i64, state: i8, count: i16) -> StateBatch {
    StateBatch {
        first_offset: first,
        last_offset: last,
        delivery_state: state,
        delivery_count: count,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_and_wire_calls_keep_and_read_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let b = start_broker(dir.path(), Config::default()).await;
    let topic = b
        .broker
        .cluster
        .internal_topic("share-persisted", 1, 1, Default::default())
        .await
        .unwrap();
    let key = SharePartitionKey {
        group_id: "g".into(),
        topic_id: Uuid::from_bytes(topic.id),
        partition: 0,
    };
    let persister = &b.broker.share_state;
    persister.initialize(&key, 1, 0).await.unwrap();
    let update = ShareState {
        state_epoch: 1,
        leader_epoch: 0,
        start_offset: 2,
        delivery_complete_count: 1,
        batches: vec![batch(0, 4, 2, 1), batch(5, 6, 0, 3)],
    };
    persister.write(&key, update).await.unwrap();
    let local = persister.read(&key, 1).await.unwrap();
    assert_eq!(local.start_offset, 2);
    assert_eq!(local.batches, vec![batch(2, 4, 2, 1), batch(5, 6, 0, 3)]);

    let remote = Remote::new(99, Duration::from_secs(10));
    let read = StateRequest::Read { leader_epoch: 1 };
    let Answer::State(over_wire) = remote.send(&b.addr, &key, &read).await.unwrap() else {
        panic!("a read answers a state");
    };
    assert_eq!(
        (
            over_wire.state_epoch,
            over_wire.start_offset,
            over_wire.batches
        ),
        (1, 2, local.batches)
    );
    let stale = StateRequest::Write(WriteData {
        state_epoch: 0,
        leader_epoch: 1,
        start_offset: -1,
        delivery_complete_count: -1,
        batches: Vec::new(),
    });
    match remote.send(&b.addr, &key, &stale).await {
        Err(BrokerError::ShareState { error, message }) => {
            assert_eq!(error, ResponseError::FencedStateEpoch);
            assert!(message.contains("state epoch"), "{message}");
        }
        _ => panic!("an older state epoch is fenced"),
    }
    let summary = StateRequest::Summary { leader_epoch: 1 };
    let Answer::Summary(s) = remote.send(&b.addr, &key, &summary).await.unwrap() else {
        panic!("a summary answers a summary");
    };
    assert_eq!(
        (s.start_offset, s.leader_epoch, s.delivery_complete_count),
        (2, 1, 1)
    );
    remote
        .send(&b.addr, &key, &StateRequest::Delete)
        .await
        .unwrap();
    let gone = persister.read(&key, 1).await.unwrap_err();
    assert_eq!(gone.response_error(), ResponseError::InvalidRequest);
}
