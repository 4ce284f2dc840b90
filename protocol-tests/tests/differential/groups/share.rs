//! Share groups (KIP-932): ShareGroupHeartbeat's validation, a member's join and its
//! assignment once the share-partitions are initialized, a second member sharing the
//! partitions, ShareGroupDescribe, how ListGroups, DescribeGroups, OffsetFetch,
//! ConsumerGroupHeartbeat and DeleteGroups see a share group, and leaving. Both brokers start
//! with share groups on (`share.version` 2); the test makes sure of it on samsa, whose level
//! another test may have changed. Members choose their own ids, the same on both sides.

use super::*;
use crate::share_groups_on;

/// Kafka's default `group.share.assignment.interval.ms`, and samsa's, with a margin.
const ASSIGNMENT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1_200);

/// A member's partitions reduced to how many: `[2, 0]` becomes `[0, 1]`.
fn by_count(partitions: &mut Vec<i32>) {
    *partitions = (0..partitions.len() as i32).collect();
}
pub(super) fn beat(group: &str, member: &str, epoch: i32) -> ShareGroupHeartbeatRequest {
    ShareGroupHeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_member_id(str_bytes(member))
        .with_member_epoch(epoch)
}

pub(crate) fn join(group: &str, member: &str, topic: &str) -> ShareGroupHeartbeatRequest {
    beat(group, member, 0).with_subscribed_topic_names(Some(vec![topic_name(topic)]))
}

pub(super) fn describe_share(groups: &[&str]) -> ShareGroupDescribeRequest {
    ShareGroupDescribeRequest::default()
        .with_group_ids(groups.iter().map(|g| group_id(g)).collect())
        .with_include_authorized_operations(true)
}

pub(super) fn describe_offsets(
    group: &str,
    topics: Option<Vec<(&str, Vec<i32>)>>,
) -> DescribeShareGroupOffsetsRequest {
    use kafka_protocol::messages::describe_share_group_offsets_request::{
        DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
    };
    let topics = topics.map(|list| {
        list.into_iter()
            .map(|(name, partitions)| {
                DescribeShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(topic_name(name))
                    .with_partitions(partitions)
            })
            .collect()
    });
    DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(group_id(group))
            .with_topics(topics),
    ])
}

/// Heartbeats `member` on both brokers until both have assigned it partitions (Kafka
/// initializes the share-partitions' state asynchronously); the member's epoch then.
pub(crate) fn await_assignment(d: &mut Differential, group: &str, member: &str, epoch: i32) -> i32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut epochs = Both {
        samsa: epoch,
        kafka: epoch,
    };
    let mut done = Both::<bool>::default();
    loop {
        for side in [&mut d.samsa, &mut d.kafka] {
            let is_samsa = side.name == "samsa";
            let (epoch, done) = if is_samsa {
                (&mut epochs.samsa, &mut done.samsa)
            } else {
                (&mut epochs.kafka, &mut done.kafka)
            };
            if *done {
                continue;
            }
            let answer = side.conn.send(&beat(group, member, *epoch), 1).unwrap();
            assert_eq!(answer.error_code, 0, "{}: {answer:?}", side.name);
            *epoch = answer.member_epoch;
            *done = answer
                .assignment
                .is_some_and(|a| a.topic_partitions.iter().any(|t| !t.partitions.is_empty()));
        }
        if done.samsa && done.kafka {
            assert_eq!(epochs.samsa, epochs.kafka, "the epochs of the assignment");
            return epochs.samsa;
        }
        assert!(std::time::Instant::now() < deadline, "no assignment");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn share_group_heartbeat_validation() {
    let mut d = Differential::start("share_group_heartbeat_validation");
    share_groups_on(&mut d);
    let (group, never, t) = (d.topic("g"), d.topic("never"), d.topic("t"));
    d.await_group_coordinator(&group).unwrap();
    d.await_group_coordinator(&never).unwrap();
    let g = group.as_str();
    let v = 1;
    d.compare("empty-member-id", v, |_| join(g, "", &t));
    d.compare("long-member-id", v, |_| join(g, &"m".repeat(37), &t));
    d.compare("empty-group-id", v, |_| join("", "m", &t));
    d.compare("no-topics", v, |_| {
        join(g, "m", &t).with_subscribed_topic_names(None)
    });
    d.compare("empty-topics", v, |_| {
        join(g, "m", &t).with_subscribed_topic_names(Some(vec![]))
    });
    d.compare("empty-rack", v, |_| {
        join(g, "m", &t).with_rack_id(Some(str_bytes(" ")))
    });
    d.compare("epoch-minus-two", v, |_| beat(g, "m", -2));
    d.compare("unknown-group", v, |_| beat(&never, "m", 3));
    d.compare("unknown-group-leave", v, |_| beat(&never, "m", -1));
    d.compare("unknown-group-described", v, |_| describe_share(&[&never]));
    d.finish();
}

#[test]
fn share_group_heartbeat() {
    let mut d = Differential::start("share_group_heartbeat");
    share_groups_on(&mut d);
    let t = d.topic("t");
    d.create_topic(&t, 3, &[]);
    let group = d.topic("g");
    d.await_group_coordinator(&group).unwrap();
    let g = group.as_str();
    let v = 1;
    // Nothing assigned before the share-partitions' state is initialized.
    d.compare("join", v, |_| join(g, "m1", &t));
    let epoch = await_assignment(&mut d, g, "m1", 2);
    d.compare("heartbeat", v, |_| beat(g, "m1", epoch));
    d.compare("epoch-ahead", v, |_| beat(g, "m1", epoch + 5));
    d.compare("unknown-member", v, |_| beat(g, "m9", epoch));
    d.compare("rejoin-with-epoch-zero", v, |_| join(g, "m1", &t));
    // A second member shares the three partitions. Whether its join brings a new target
    // assignment depends on whether the group's assignment interval
    // (`group.share.assignment.interval.ms`, 1 s) has passed since the last one, which
    // each broker started at its own moment above: past it on both, both assign at once.
    // Which of the balanced answers each member gets follows Kafka's hash map order, so
    // from here the assignments are compared by how many partitions each member holds.
    std::thread::sleep(ASSIGNMENT_INTERVAL);
    let counted = |r: &mut ShareGroupHeartbeatResponse| {
        for topic in r
            .assignment
            .iter_mut()
            .flat_map(|a| &mut a.topic_partitions)
        {
            by_count(&mut topic.partitions);
        }
    };
    d.compare_part("second-member-joins", v, |_| join(g, "m2", &t), counted);
    d.compare_part(
        "first-member-moves-on",
        v,
        |_| beat(g, "m1", epoch),
        counted,
    );
    // Kafka lists members in its hash map's order: compared by id.
    d.compare_part(
        "describe",
        v,
        |_| describe_share(&[g]),
        |r| {
            for group in &mut r.groups {
                group.members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
                for member in &mut group.members {
                    for topic in &mut member.assignment.topic_partitions {
                        by_count(&mut topic.partitions);
                    }
                }
            }
        },
    );
    // The other group APIs on a share group.
    d.compare("describe-groups", 6, |_| describe(&[g], 6));
    d.compare_part(
        "list-groups",
        5,
        |_| ListGroupsRequest::default().with_types_filter(vec![str_bytes("share")]),
        |r| r.groups.retain(|l| l.group_id.as_str() == g),
    );
    d.compare("offset-fetch", 9, |_| {
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(group_id(g))
            .with_topics(None)])
    });
    d.compare("consumer-heartbeat", 1, |_| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group_id(g))
            .with_member_id(str_bytes("c1"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(SESSION_MS)
            .with_subscribed_topic_names(Some(vec![topic_name(&t)]))
            .with_topic_partitions(Some(vec![]))
    });
    // The share-partitions' offsets: every initialized one, or those asked for.
    for v in [0, 1] {
        d.compare("describe-offsets-all", v, |_| describe_offsets(g, None));
        d.compare("describe-offsets-some", v, |_| {
            describe_offsets(
                g,
                Some(vec![(t.as_str(), vec![0, 2]), ("no-such-topic", vec![0])]),
            )
        });
        d.compare("describe-offsets-unknown-group", v, |_| {
            describe_offsets("no-such-share-group", None)
        });
    }
    let delete = |_: &Side| DeleteGroupsRequest::default().with_groups_names(vec![group_id(g)]);
    d.compare("delete-non-empty", 2, delete);
    d.compare("leave", v, |_| beat(g, "m2", -1));
    d.compare("leave-again", v, |_| beat(g, "m2", -1));
    d.compare("last-leaves", v, |_| beat(g, "m1", -1));
    d.compare("describe-empty", v, |_| describe_share(&[g]));
    d.compare("delete-empty", 2, delete);
    d.compare("describe-deleted", v, |_| describe_share(&[g]));
    d.finish();
}
