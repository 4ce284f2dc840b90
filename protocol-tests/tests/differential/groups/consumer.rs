//! KIP-848 consumer groups: ConsumerGroupHeartbeat and ConsumerGroupDescribe (on by default
//! in both, at group.version 1), the member-epoch checks of OffsetCommit and OffsetFetch, and how the classic
//! APIs see a consumer group. Members choose their own ids (v1, KIP-1082), the same on both
//! brokers; one member per group, so each answer is settled at once.

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;

use super::*;

/// Kafka's default `group.consumer.heartbeat.interval.ms`, which the answers carry.
const REBALANCE_MS: i32 = 30_000;

fn beat(group: &str, member: &str, epoch: i32) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_member_id(str_bytes(member))
        .with_member_epoch(epoch)
}

/// The first heartbeat of a member subscribing to `topics`.
fn join(group: &str, member: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    beat(group, member, 0)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| topic_name(t)).collect()))
        .with_topic_partitions(Some(Vec::new()))
}

/// What the member owns of `topic`, by `side`'s own topic id.
fn owning(side: &Side, topic: &str, partitions: &[i32]) -> Option<Vec<TopicPartitions>> {
    Some(vec![TopicPartitions::default()
        .with_topic_id(side.id(topic))
        .with_partitions(partitions.to_vec())])
}

fn describe_consumer(groups: &[&str]) -> ConsumerGroupDescribeRequest {
    ConsumerGroupDescribeRequest::default()
        .with_group_ids(groups.iter().map(|g| group_id(g)).collect())
        .with_include_authorized_operations(true)
}

#[test]
fn consumer_group_heartbeat_validation() {
    let mut d = Differential::start("consumer_group_heartbeat_validation");
    let (group, never) = (d.topic("g"), d.topic("never"));
    d.await_group_coordinator(&group).unwrap();
    d.await_group_coordinator(&never).unwrap();
    for v in [0, 1] {
        let g = group.as_str();
        d.compare("empty-group-id", v, |_| join("", "m", &["t"]));
        d.compare("no-rebalance-timeout", v, |_| {
            join(g, "m", &["t"]).with_rebalance_timeout_ms(-1)
        });
        d.compare("owned-when-joining", v, |_| {
            join(g, "m", &["t"]).with_topic_partitions(Some(vec![TopicPartitions::default()
                .with_topic_id(UNKNOWN.id)
                .with_partitions(vec![0])]))
        });
        d.compare("null-owned-when-joining", v, |_| {
            join(g, "m", &["t"]).with_topic_partitions(None)
        });
        d.compare("no-subscription", v, |_| {
            join(g, "m", &["t"]).with_subscribed_topic_names(None)
        });
        d.compare("empty-instance-id", v, |_| {
            join(g, "m", &["t"]).with_instance_id(Some(str_bytes("")))
        });
        d.compare("empty-rack-id", v, |_| {
            join(g, "m", &["t"]).with_rack_id(Some(str_bytes("")))
        });
        d.compare("static-leave-without-instance", v, |_| beat(g, "m", -2));
        d.compare("epoch-below-minus-two", v, |_| beat(g, "m", -3));
        d.compare("unknown-assignor", v, |_| {
            join(g, "m", &["t"]).with_server_assignor(Some(str_bytes("sticky")))
        });
        d.compare("bad-regex", v, |_| {
            join(g, "m", &[])
                .with_subscribed_topic_names(None)
                .with_subscribed_topic_regex(Some(str_bytes("(")))
        });
        d.compare("no-member-id", v, |_| join(g, "", &["t"]));
        // "no-member-id" at v0 made the group: a member it does not know.
        d.compare("unknown-member", v, |_| beat(g, "m", 3));
        d.compare("unknown-group", v, |_| beat(&never, "m", 3));
        d.compare("unknown-group-leave", v, |_| beat(&never, "m", -1));
    }
    d.finish();
}

#[test]
fn consumer_group_heartbeat() {
    let mut d = Differential::start("consumer_group_heartbeat");
    let topic = d.topic("t");
    d.create_topic(&topic, 3, &[]);
    let group = d.topic("g");
    d.await_group_coordinator(&group).unwrap();
    let (g, t) = (group.as_str(), topic.as_str());
    let v = 1;
    d.compare("join", v, |_| join(g, "member-1", &[t]));
    // Partial heartbeats: no assignment unless it changed.
    d.compare("heartbeat", v, |_| beat(g, "member-1", 1));
    d.compare("heartbeat-owning", v, |s| {
        beat(g, "member-1", 1).with_topic_partitions(owning(s, t, &[0, 1, 2]))
    });
    d.compare("full-heartbeat", v, |s| {
        beat(g, "member-1", 1)
            .with_rebalance_timeout_ms(REBALANCE_MS)
            .with_subscribed_topic_names(Some(vec![topic_name(t)]))
            .with_topic_partitions(owning(s, t, &[0, 1, 2]))
    });
    d.compare("epoch-ahead", v, |_| beat(g, "member-1", 2));
    d.compare("unknown-member", v, |_| beat(g, "member-x", 1));
    // One group per request: Kafka answers several in the order of their offsets partitions.
    d.compare("describe", 0, |_| describe_consumer(&[g]));
    d.compare("describe", 1, |_| describe_consumer(&[g]));
    d.compare("describe-unknown", 1, |_| {
        describe_consumer(&["no-such-group"])
    });
    // The classic APIs on a consumer group.
    d.compare("describe-groups", 5, |_| describe(&[g], 5));
    d.compare("describe-groups", 6, |_| describe(&[g], 6));
    d.compare_part(
        "list-groups",
        5,
        |_| ListGroupsRequest::default().with_types_filter(vec![str_bytes("consumer")]),
        |r| r.groups.retain(|l| l.group_id.as_str() == g),
    );
    d.compare("join-group-other-protocol", 9, |_| {
        join_request(g, "", None, "connect", SESSION_MS, &[t], 9)
    });
    d.compare("heartbeat-classic", 4, |_| {
        HeartbeatRequest::default()
            .with_group_id(group_id(g))
            .with_member_id(str_bytes("member-1"))
            .with_generation_id(1)
    });
    // Offsets: the member at its epoch commits and fetches; a stale epoch or an unknown
    // member is refused.
    let commit = |epoch: i32, member: &'static str| {
        move |_: &Side| {
            OffsetCommitRequest::default()
                .with_group_id(group_id(g))
                .with_generation_id_or_member_epoch(epoch)
                .with_member_id(str_bytes(member))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(0)])])
        }
    };
    d.compare("commit", 9, commit(1, "member-1"));
    d.compare("commit-stale-epoch", 9, commit(7, "member-1"));
    d.compare("commit-unknown-member", 9, commit(1, "member-x"));
    d.compare("commit-simple", 9, commit(-1, ""));
    // Before v9 OffsetCommit carries no member epoch: a consumer-protocol member may not use it.
    d.compare("commit-v8", 8, commit(2, "member-1"));
    let fetch = |epoch: i32, member: Option<&'static str>| {
        move |_: &Side| {
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(group_id(g))
                .with_member_id(member.map(str_bytes))
                .with_member_epoch(epoch)
                .with_topics(None)])
        }
    };
    d.compare("fetch", 9, fetch(1, Some("member-1")));
    d.compare("fetch-stale-epoch", 9, fetch(3, Some("member-1")));
    d.compare("fetch-unknown-member", 9, fetch(1, Some("member-x")));
    d.compare("fetch-admin", 9, fetch(-1, None));
    d.compare("leave", v, |_| beat(g, "member-1", -1));
    d.compare("leave-again", v, |_| beat(g, "member-1", -1));
    d.compare("describe-empty", 1, |_| describe_consumer(&[g]));
    // An empty consumer group becomes a classic group when a classic member comes (Kafka's
    // DescribeGroups shows it once the conversion is committed, so the read is settled).
    super::join(&mut d, "classic-join-empty", 9, g, None, &[t]);
    d.compare_settled(
        "describe-groups-classic-again",
        6,
        |_| describe(&[g], 6),
        |_| {},
    );
    d.compare("delete-empty", 2, |_| {
        DeleteGroupsRequest::default().with_groups_names(vec![group_id(g)])
    });
    d.finish();
}

/// The group's state survives a restart of samsa's coordinator (Kafka, which keeps running,
/// answers from the same state): a member carries on at its epoch, a static member that left
/// for now is still there to be replaced, and a deleted group stays deleted. One member per
/// group, as above: Kafka 4.4 computes a second member's assignment a little later.
#[test]
fn consumer_group_after_restart() {
    let mut d = Differential::start("consumer_group_after_restart");
    let topic = d.topic("t");
    d.create_topic(&topic, 2, &[]);
    let (group, statics) = (d.topic("g"), d.topic("static"));
    d.await_group_coordinator(&group).unwrap();
    d.await_group_coordinator(&statics).unwrap();
    let (g, st, t) = (group.as_str(), statics.as_str(), topic.as_str());
    let v = 1;
    let instance = || Some(str_bytes("instance-1"));
    d.compare("join", v, |_| join(g, "member-1", &[t]));
    d.compare("owning", v, |s| {
        beat(g, "member-1", 2).with_topic_partitions(owning(s, t, &[0, 1]))
    });
    d.compare("static-join", v, |_| {
        join(st, "first", &[t]).with_instance_id(instance())
    });
    d.compare("static-leave-for-now", v, |_| {
        beat(st, "first", -2).with_instance_id(instance())
    });
    d.restart_samsa();
    d.await_group_coordinator(&group).unwrap();
    d.await_group_coordinator(&statics).unwrap();
    d.compare("describe-restarted", 1, |_| describe_consumer(&[g]));
    d.compare("heartbeat-restarted", v, |s| {
        beat(g, "member-1", 2).with_topic_partitions(owning(s, t, &[0, 1]))
    });
    d.compare("unknown-member", v, |_| beat(g, "member-x", 2));
    d.compare("epoch-ahead", v, |_| beat(g, "member-1", 3));
    d.compare("describe-static-restarted", 1, |_| describe_consumer(&[st]));
    d.compare("static-replaced", v, |_| {
        join(st, "second", &[t]).with_instance_id(instance())
    });
    d.compare("leave", v, |_| beat(g, "member-1", -1));
    d.compare("delete", 2, |_| {
        DeleteGroupsRequest::default().with_groups_names(vec![group_id(g)])
    });
    d.restart_samsa();
    d.await_group_coordinator(&group).unwrap();
    d.compare("heartbeat-deleted", v, |_| beat(g, "member-1", 2));
    d.compare("leave-deleted", v, |_| beat(g, "member-1", -1));
    d.compare("describe-deleted", 1, |_| describe_consumer(&[g]));
    d.finish();
}

/// A subscription by regular expression, resolved against the topics (whole names only).
#[test]
fn consumer_group_regex() {
    let mut d = Differential::start("consumer_group_regex");
    // One matching topic (the order of several in an assignment is Kafka's hash order) and
    // one that does not match.
    let (a, b) = (d.topic("orders-a"), d.topic("other"));
    d.create_topic(&a, 2, &[]);
    d.create_topic(&b, 1, &[]);
    let group = d.topic("g");
    d.await_group_coordinator(&group).unwrap();
    let g = group.as_str();
    let regex = a.replace("orders-a", "orders-.*");
    let by_regex = |member: &str, epoch: i32| {
        beat(g, member, epoch)
            .with_rebalance_timeout_ms(REBALANCE_MS)
            .with_subscribed_topic_regex(Some(str_bytes(&regex)))
            .with_topic_partitions(Some(Vec::new()))
    };
    // Kafka resolves the expression after the join, then moves the group to a new epoch:
    // the member gets the matching topics with its next heartbeat.
    d.compare("join", 1, |_| by_regex("m", 0));
    // Kafka lists members in no particular order.
    let keep_members = |r: &mut ConsumerGroupDescribeResponse| {
        for group in &mut r.groups {
            group.members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        }
    };
    d.compare_settled("resolved", 1, |_| describe_consumer(&[g]), keep_members);
    d.compare("next-heartbeat", 1, |_| beat(g, "m", 1));
    // A second member with the same expression: already resolved.
    // (A second member with the same expression is resolved again, after its join, in
    // Kafka too; when Kafka gets to it varies, so only the unit tests pin that down.)
    d.finish();
}

#[test]
fn consumer_group_static_member() {
    let mut d = Differential::start("consumer_group_static_member");
    let topic = d.topic("t");
    d.create_topic(&topic, 2, &[]);
    let group = d.topic("g");
    d.await_group_coordinator(&group).unwrap();
    let (g, t) = (group.as_str(), topic.as_str());
    let v = 1;
    let instance = || Some(str_bytes("instance-1"));
    d.compare("join", v, |_| {
        join(g, "first", &[t]).with_instance_id(instance())
    });
    d.compare("taken", v, |_| {
        join(g, "second", &[t]).with_instance_id(instance())
    });
    d.compare("unknown-instance", v, |_| {
        beat(g, "first", 1).with_instance_id(Some(str_bytes("other")))
    });
    d.compare("leave-for-now", v, |_| {
        beat(g, "first", -2).with_instance_id(instance())
    });
    d.compare("describe-left", 1, |_| describe_consumer(&[g]));
    d.compare("replaced", v, |_| {
        join(g, "second", &[t]).with_instance_id(instance())
    });
    d.compare("fenced-old", v, |_| {
        beat(g, "first", 1).with_instance_id(instance())
    });
    d.compare("leave-fenced", v, |_| {
        beat(g, "first", -1).with_instance_id(instance())
    });
    d.finish();
}

#[test]
fn consumer_group_and_classic_group() {
    let mut d = Differential::start("consumer_group_and_classic_group");
    let topic = d.topic("t");
    d.create_topic(&topic, 1, &[]);
    let (classic, offsets_only) = (d.topic("classic"), d.topic("offsets-only"));
    d.await_group_coordinator(&classic).unwrap();
    d.await_group_coordinator(&offsets_only).unwrap();
    let t = topic.as_str();
    // A classic group with a member of another protocol type: not a consumer group.
    let c = classic.as_str();
    d.compare("classic-join", 9, |_| {
        join_request(c, "", Some("i"), "connect", SESSION_MS, &[t], 9)
    });
    d.compare("heartbeat-on-classic", 1, |_| join(c, "m", &[t]));
    d.compare("describe-classic", 1, |_| describe_consumer(&[c]));
    // A group that only holds offsets becomes a consumer group when a member joins.
    let o = offsets_only.as_str();
    d.compare("simple-commit", 9, |_| {
        OffsetCommitRequest::default()
            .with_group_id(group_id(o))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(t))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(0)])])
    });
    d.compare("join-offsets-only", 1, |_| join(o, "m", &[t]));
    d.compare("describe-converted", 1, |_| describe_consumer(&[o]));
    d.finish();
}

/// alice may read one group and describe no topic: Kafka's ACL checks of both APIs.
#[test]
fn consumer_acls() {
    use kafka_protocol::messages::create_acls_request::AclCreation;
    let mut d = Differential::start_sasl("consumer_acls");
    let topic = d.topic("t");
    d.create_topic(&topic, 1, &[]);
    let (readable, other) = (d.topic("readable"), d.topic("other"));
    d.await_group_coordinator(&readable).unwrap();
    d.await_group_coordinator(&other).unwrap();
    let (r, o, t) = (readable.as_str(), other.as_str(), topic.as_str());
    // As the super user: a member with the topic, and alice's ACL on the group.
    d.compare("setup-join", 1, |_| join(r, "owner", &[t]));
    d.compare("setup-acl", 3, |_| {
        CreateAclsRequest::default().with_creations(vec![AclCreation::default()
            .with_resource_type(3)
            .with_resource_name(str_bytes(r))
            .with_resource_pattern_type(3)
            .with_principal(str_bytes("User:alice"))
            .with_host(str_bytes("*"))
            .with_operation(3)
            .with_permission_type(3)])
    });
    d.use_sasl_listeners();
    d.login("alice");
    let keep_all = |_: &mut ConsumerGroupDescribeResponse| {};
    // The group's assignment names a topic alice may not describe.
    d.compare_settled(
        "describe-hidden-topic",
        1,
        |_| describe_consumer(&[r]),
        keep_all,
    );
    d.compare("describe-denied", 1, |_| describe_consumer(&[o]));
    d.compare("join-denied-topic", 1, |_| join(r, "alice-1", &[t]));
    d.compare("join-denied-group", 1, |_| join(o, "alice-1", &[t]));
    d.finish();
}

/// `partitions` of `topic` as a classic leader assigns them (ConsumerProtocolAssignment v0).
fn classic_assignment(topic: &str, partitions: &[i32]) -> Bytes {
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    ConsumerProtocolAssignment::default()
        .with_assigned_partitions(vec![TopicPartition::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions.to_vec())])
        .encode(&mut buf, 0)
        .unwrap();
    buf.freeze()
}

/// Online migration of a group of one classic member owning a topic's only partition: a
/// consumer-protocol member joining upgrades it in place (the classic member is told to
/// rejoin, keeps its partition, and syncs it from the consumer group); when the
/// consumer-protocol member leaves, the group turns classic again and rebalances. The
/// consumer-protocol member subscribes to another topic, so that which member keeps which
/// partition does not hang on the order Kafka's assignor meets members in (a hash map's).
#[test]
fn consumer_group_online_migration() {
    let mut d = Differential::start("consumer_group_online_migration");
    let (topic, other) = (d.topic("t"), d.topic("u"));
    d.create_topic(&topic, 1, &[]);
    d.create_topic(&other, 1, &[]);
    let group = d.topic("g");
    d.await_group_coordinator(&group).unwrap();
    let (g, t, u) = (group.as_str(), topic.as_str(), other.as_str());
    let classic = super::join(&mut d, "classic-join", 9, g, None, &[t]);
    let owned = classic_assignment(t, &[0]);
    let sync = |s: &Side, generation: i32| {
        sync_request(g, classic.id.of(s), generation, None, Some(&owned), 5)
    };
    d.compare("classic-sync", 5, |s| sync(s, *classic.generation.of(s)));
    let heartbeat = |s: &Side, generation: i32| {
        HeartbeatRequest::default()
            .with_group_id(group_id(g))
            .with_member_id(str_bytes(classic.id.of(s)))
            .with_generation_id(generation)
    };
    // The consumer-protocol member joins: the group is upgraded; the partition stays with
    // its classic owner.
    d.compare("upgrade", 1, |_| join(g, "member-c", &[u]));
    d.compare("classic-heartbeat-rebalancing", 4, |s| heartbeat(s, 1));
    d.compare("classic-heartbeat-stale", 4, |s| heartbeat(s, 0));
    let rejoin =
        |s: &Side| join_request(g, classic.id.of(s), None, "consumer", SESSION_MS, &[t], 9);
    d.compare("classic-rejoin", 9, rejoin);
    d.compare("classic-sync-stale", 5, |s| sync(s, 1));
    d.compare("classic-sync-upgraded", 5, |s| sync(s, 2));
    d.compare("classic-heartbeat-upgraded", 4, |s| heartbeat(s, 2));
    d.compare("consumer-heartbeat", 1, |_| beat(g, "member-c", 2));
    d.compare("describe-groups-upgraded", 5, |_| describe(&[g], 5));
    // The last consumer-protocol member leaves: a classic group again, rebalancing.
    d.compare("consumer-leave", 1, |_| beat(g, "member-c", -1));
    d.compare("classic-heartbeat-downgraded", 4, |s| heartbeat(s, 2));
    d.compare("describe-groups-downgraded", 5, |_| describe(&[g], 5));
    d.compare("describe-consumer-downgraded", 1, |_| {
        describe_consumer(&[g])
    });
    d.compare("classic-rejoin-downgraded", 9, rejoin);
    d.finish();
}
