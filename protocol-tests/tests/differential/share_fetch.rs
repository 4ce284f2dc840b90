//! ShareFetch and ShareAcknowledge (KIP-932) where both brokers answer alike without a share
//! group behind the member: the request checks in Kafka's order, and a share session's life
//! and errors, over no partitions (Kafka 4.4 answers UNKNOWN_SERVER_ERROR to a session naming
//! an unknown topic id, and a partition no group initialized depends on its coordinator).
//! The reference Kafka runs with share.version 2; samsa is brought to it first.

use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::*;
use samsa_protocol_tests::batches::{self, batch, messages};
use samsa_protocol_tests::client::{produce_request, str_bytes};
use samsa_protocol_tests::differential::{Differential, Side};
use uuid::Uuid;

use crate::groups::share::{await_assignment, join};
use crate::{ends, share_groups_on, topic_ref, T0};

const UNKNOWN_TOPIC: Uuid = Uuid::from_u128(0x5eed);

fn fetch(group: Option<&str>, member: &str, epoch: i32) -> ShareFetchRequest {
    ShareFetchRequest::default()
        .with_group_id(group.map(|g| GroupId(str_bytes(g))))
        .with_member_id(Some(str_bytes(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_max_records(500)
        .with_batch_size(500)
}

fn acknowledge(member: &str, epoch: i32) -> ShareAcknowledgeRequest {
    ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(str_bytes("share-fetch-g"))))
        .with_member_id(Some(str_bytes(member)))
        .with_share_session_epoch(epoch)
}

#[test]
fn share_fetch() {
    let mut d = Differential::start("share_fetch");
    share_groups_on(&mut d);
    let g = Some("share-fetch-g");
    for v in ends(ApiKey::ShareFetch) {
        // A member id is 1 to 36 characters; the group id must be there.
        d.compare("empty-member-id", v, |_| fetch(g, "", 0));
        d.compare("member-id-too-long", v, |_| fetch(g, &"m".repeat(37), 0));
        d.compare("no-group-id", v, |_| fetch(None, "m", 0));
        // Session errors: none open, acknowledgements in an opening fetch.
        d.compare("no-session", v, |_| fetch(g, &format!("none-{v}"), 3));
        d.compare("acknowledging-in-the-first-fetch", v, |_| {
            fetch(g, &format!("first-{v}"), 0).with_topics(vec![FetchTopic::default()
                .with_topic_id(UNKNOWN_TOPIC)
                .with_partitions(vec![FetchPartition::default()
                    .with_partition_index(0)
                    .with_acknowledgement_batches(vec![AcknowledgementBatch::default()
                        .with_first_offset(0)
                        .with_last_offset(0)
                        .with_acknowledge_types(vec![1])])])])
        });
        // A session: opened, continued by fetches and acknowledgements, out of turn, closed.
        let member = format!("member-{v}");
        d.compare("open", v, |_| fetch(g, &member, 0));
        d.compare("continue", v, |_| fetch(g, &member, 1));
        d.compare("out-of-turn", v, |_| fetch(g, &member, 5));
        d.compare("acknowledge-epoch-0", v, |_| acknowledge(&member, 0));
        d.compare("acknowledge", v, |_| acknowledge(&member, 2));
        d.compare("acknowledge-out-of-turn", v, |_| acknowledge(&member, 2));
        d.compare("fetch-after-acknowledge", v, |_| fetch(g, &member, 3));
        d.compare("reopen", v, |_| fetch(g, &member, 0));
        d.compare("close", v, |_| fetch(g, &member, -1));
        d.compare("closed", v, |_| fetch(g, &member, 2));
        d.compare("acknowledge-no-session", v, |_| acknowledge(&member, 1));
        d.compare("close-by-acknowledge-without-session", v, |_| {
            acknowledge(&format!("other-{v}"), -1)
        });
    }
    d.finish();
}

/// Replaces each partition's records by their description, so batches compare by what
/// they hold, and compares the partitions by what they answer, not by index: Kafka orders
/// a session's partitions, and so which one a fetch serves first, by its hash map of
/// topic-partitions, which this test does not pin (both partitions hold the same offsets
/// and records at each step).
fn described(response: &mut ShareFetchResponse) {
    for topic in &mut response.responses {
        for partition in &mut topic.partitions {
            if let Some(records) = &partition.records {
                let text = batches::describe(records).unwrap_or_else(|e| format!("<{e:#}>"));
                partition.records = Some(bytes::Bytes::from(text));
            }
            partition.partition_index = 0;
        }
        topic
            .partitions
            .sort_by_key(|p| format!("{:?}", p.acquired_records));
    }
}

/// How a fetch's limits shape what a member of a share group acquires, as Kafka 4.4's
/// `DelayedShareFetch` does: MaxBytes shared evenly among the partitions (whole batches,
/// the rest left for the next fetch), MaxRecords counted across partitions from the
/// session epoch's first partition, and MinBytes beyond what there is answered at
/// MaxWaitMs with what can be acquired then.
#[test]
fn share_fetch_limits() {
    let mut d = Differential::start("share_fetch_limits");
    share_groups_on(&mut d);
    let t = d.topic("q");
    d.create_topic(&t, 2, &[]);
    let group = d.topic("g");
    d.await_group_coordinator(&group).unwrap();
    let g = group.as_str();
    d.compare("join", 1, |_| join(g, "m1", &t));
    await_assignment(&mut d, g, "m1", 2);
    let request = |side: &Side, epoch: i32| {
        fetch(Some(g), "m1", epoch).with_topics(vec![FetchTopic::default()
            .with_topic_id(side.id(&t))
            .with_partitions(
                (0..2)
                    .map(|p| FetchPartition::default().with_partition_index(p))
                    .collect(),
            )])
    };
    let v = 1;
    // The session opens, not compared: which partitions the opening fetch lists depends on
    // whether Kafka's share-partitions finished loading their state by then (it lists the
    // partitions its fetch took part in), which this test does not pin.
    for side in [&mut d.samsa, &mut d.kafka] {
        let opened = side.conn.send(&request(side, 0), v).unwrap();
        assert_eq!(opened.error_code, 0, "{}: {opened:?}", side.name);
    }
    let three = |prefix: &str| batch(&messages(prefix, 3, *T0));
    let size = three("b0").len() as i32;
    for side in [&mut d.samsa, &mut d.kafka] {
        for p in 0..2 {
            for prefix in ["b0", "b1", "b2"] {
                let produce = produce_request(&topic_ref(side, &t), p, three(prefix), -1, 9);
                let answer = side.conn.send(&produce, 9).unwrap();
                let code = answer.responses[0].partition_responses[0].error_code;
                assert_eq!(code, 0, "{}: {answer:?}", side.name);
            }
        }
    }
    d.compare_part(
        "max-bytes-shared",
        v,
        |s| {
            request(s, 1)
                .with_max_wait_ms(5_000)
                .with_max_bytes(2 * size + size / 2)
        },
        described,
    );
    d.compare_part(
        "max-records-across-partitions",
        v,
        |s| request(s, 2).with_max_wait_ms(5_000).with_max_records(3),
        described,
    );
    d.compare_part(
        "min-bytes-answered-at-max-wait",
        v,
        |s| {
            request(s, 3)
                .with_max_wait_ms(300)
                .with_min_bytes(1 << 20)
                .with_max_bytes(1 << 20)
        },
        described,
    );
    d.compare_part(
        "nothing-left-waits-out-max-wait",
        v,
        |s| request(s, 4).with_max_wait_ms(200).with_min_bytes(0),
        described,
    );
    d.finish();
}
