//! AlterShareGroupOffsets and DeleteShareGroupOffsets (KIP-932), what `kafka-share-groups
//! --reset-offsets` and `--delete-offsets` send: refused while the group has members;
//! altering existing, unknown and out-of-range partitions, then DescribeShareGroupOffsets of
//! the new start offsets; deleting initialized, never-consumed and unknown topics, and again;
//! a group altering makes; a group of another kind; an empty group id. samsa turns
//! `share.version` on first, as in `share`.

use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;

use super::share::{await_assignment, beat, describe_offsets, describe_share, join};
use super::*;
use crate::share_groups_on;
use samsa_protocol_tests::client::versions;

fn alter(group: &str, topics: &[(&str, &[(i32, i64)])]) -> AlterShareGroupOffsetsRequest {
    AlterShareGroupOffsetsRequest::default()
        .with_group_id(group_id(group))
        .with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(topic_name(name))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|(p, offset)| {
                                    AlterShareGroupOffsetsRequestPartition::default()
                                        .with_partition_index(*p)
                                        .with_start_offset(*offset)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

fn delete_offsets(group: &str, topics: &[&str]) -> DeleteShareGroupOffsetsRequest {
    DeleteShareGroupOffsetsRequest::default()
        .with_group_id(group_id(group))
        .with_topics(
            topics
                .iter()
                .map(|name| {
                    DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(topic_name(name))
                })
                .collect(),
        )
}

/// Kafka lists a group's topics in its hash map's order: compared by name.
fn topics_by_name(r: &mut DescribeShareGroupOffsetsResponse) {
    for group in &mut r.groups {
        group.topics.sort_by(|a, b| a.topic_name.cmp(&b.topic_name));
    }
}

#[test]
fn share_group_offsets_alter_and_delete() {
    let mut d = Differential::start("share_group_offsets_alter_and_delete");
    share_groups_on(&mut d);
    let (t, u) = (d.topic("t"), d.topic("u"));
    d.create_topic(&t, 2, &[]);
    d.create_topic(&u, 1, &[]);
    let records = batch(&messages("x", 5, *T0));
    let produce_version = *versions(ApiKey::Produce).end();
    for p in [0, 1] {
        d.compare("produce", produce_version, |s| {
            let topic = TopicRef {
                name: t.clone(),
                id: s.id(&t),
            };
            produce_request(&topic, p, records.clone(), -1, produce_version)
        });
    }
    let (group, fresh, never, classic) = (
        d.topic("g"),
        d.topic("fresh"),
        d.topic("never"),
        d.topic("classic"),
    );
    for g in [&group, &fresh, &never, &classic] {
        d.await_group_coordinator(g).unwrap();
    }
    let (g, v) = (group.as_str(), 0);
    d.compare("join", 1, |_| join(g, "m1", &t));
    await_assignment(&mut d, g, "m1", 2);
    d.compare("alter-non-empty", v, |_| alter(g, &[(&t, &[(0, 1)])]));
    d.compare("delete-non-empty", v, |_| delete_offsets(g, &[&t]));
    d.compare("leave", 1, |_| beat(g, "m1", -1));
    d.compare("alter", v, |_| {
        alter(
            g,
            &[
                (&t, &[(0, 3), (1, 0), (7, 1)]),
                ("no-such-topic", &[(0, 0)]),
            ],
        )
    });
    d.compare_part(
        "offsets-altered",
        1,
        |_| describe_offsets(g, None),
        topics_by_name,
    );
    d.compare("delete", v, |_| {
        delete_offsets(g, &[&t, &u, "no-such-topic"])
    });
    d.compare_part(
        "offsets-deleted",
        1,
        |_| describe_offsets(g, None),
        topics_by_name,
    );
    d.compare("delete-again", v, |_| delete_offsets(g, &[&t]));
    d.compare("alter-after-delete", v, |_| alter(g, &[(&t, &[(1, 4)])]));
    d.compare("offsets-after-delete-and-alter", 1, |_| {
        describe_offsets(g, None)
    });
    // A group nobody joined: deleting finds none; altering makes it.
    d.compare("delete-unknown-group", v, |_| delete_offsets(&fresh, &[&t]));
    d.compare("alter-new-group", v, |_| alter(&fresh, &[(&t, &[(1, 2)])]));
    d.compare("offsets-of-new-group", 1, |_| {
        describe_offsets(&fresh, None)
    });
    d.compare("describe-new-group", 1, |_| describe_share(&[&fresh]));
    d.compare("join-new-group", 1, |_| join(&fresh, "m1", &t));
    d.compare("leave-new-group", 1, |_| beat(&fresh, "m1", -1));
    d.compare("delete-nothing-of-new-group", v, |_| {
        delete_offsets(&fresh, &[&u])
    });
    // Altering nothing that exists makes no group.
    d.compare("alter-unknown-topic-only", v, |_| {
        alter(&never, &[("no-such-topic", &[(0, 0)])])
    });
    d.compare("delete-group-never-made", v, |_| {
        delete_offsets(&never, &[&t])
    });
    // A classic group's id.
    d.compare("commit-classic", 9, |_| {
        OffsetCommitRequest::default()
            .with_group_id(group_id(&classic))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(str_bytes(""))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(&t))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(1)])])
    });
    d.compare("alter-classic", v, |_| alter(&classic, &[(&t, &[(0, 1)])]));
    d.compare("delete-classic", v, |_| delete_offsets(&classic, &[&t]));
    d.compare("alter-empty-group-id", v, |_| alter("", &[(&t, &[(0, 1)])]));
    d.compare("delete-empty-group-id", v, |_| delete_offsets("", &[&t]));
    d.finish();
}

/// A deleted topic leaves the share groups that read it: DescribeShareGroupOffsets no
/// longer lists it (Kafka cleans up asynchronously, so the read is repeated until it
/// settles), and deleting or altering its offsets finds no topic.
#[test]
fn share_group_offsets_after_topic_deletion() {
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    let mut d = Differential::start("share_group_offsets_after_topic_deletion");
    share_groups_on(&mut d);
    let (t, keep) = (d.topic("t"), d.topic("keep"));
    d.create_topic(&t, 2, &[]);
    d.create_topic(&keep, 1, &[]);
    let group = d.topic("g");
    d.await_group_coordinator(&group).unwrap();
    let (g, v) = (group.as_str(), 0);
    d.compare("join", 1, |_| join(g, "m1", &t));
    await_assignment(&mut d, g, "m1", 2);
    d.compare("leave", 1, |_| beat(g, "m1", -1));
    d.compare("alter-kept-topic", v, |_| alter(g, &[(&keep, &[(0, 0)])]));
    d.compare_part(
        "offsets-before",
        1,
        |_| describe_offsets(g, None),
        topics_by_name,
    );
    d.compare("delete-topic", 6, |_| {
        DeleteTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name(&t)))
            ])
    });
    d.compare_settled(
        "offsets-after",
        1,
        |_| describe_offsets(g, None),
        topics_by_name,
    );
    d.compare("offsets-of-deleted-topic", 1, |_| {
        describe_offsets(g, Some(vec![(t.as_str(), vec![0, 1])]))
    });
    d.compare("delete-offsets-of-deleted-topic", v, |_| {
        delete_offsets(g, &[&t])
    });
    d.compare("alter-deleted-topic", v, |_| alter(g, &[(&t, &[(0, 0)])]));
    d.finish();
}
