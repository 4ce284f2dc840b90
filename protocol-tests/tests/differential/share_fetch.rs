//! ShareFetch and ShareAcknowledge (KIP-932) where both brokers answer alike without a share
//! group behind the member: the request checks in Kafka's order, and a share session's life
//! and errors, over no partitions (Kafka 4.4 answers UNKNOWN_SERVER_ERROR to a session naming
//! an unknown topic id, and a partition no group initialized depends on its coordinator).
//! The reference Kafka runs with share.version 2; samsa is brought to it first.

use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::*;
use samsa_protocol_tests::client::str_bytes;
use samsa_protocol_tests::differential::Differential;
use uuid::Uuid;

use crate::{ends, share_groups_on};

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
