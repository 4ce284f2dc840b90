//! Committed offsets, OffsetDelete, the operator APIs (DescribeGroups, ListGroups,
//! DeleteGroups), and the internal offsets topic, by the same lockstep as membership.

use uuid::Uuid;

use super::*;

/// A topic's id as `side` knows it; from v10 offsets name topics by id.
fn id_of(side: &Side, topic: &str) -> Uuid {
    if topic == UNKNOWN.name {
        UNKNOWN.id
    } else {
        side.id(topic)
    }
}

fn commit_request(
    side: &Side,
    group: &str,
    member: &str,
    generation: i32,
    topic: &str,
    offsets: &[(i32, i64, Option<&str>)],
    version: i16,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(str_bytes(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_topic_id(id_of(side, topic))
            .with_partitions(
                offsets
                    .iter()
                    .map(|(p, o, m)| {
                        let partition = OffsetCommitRequestPartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(*o)
                            .with_committed_metadata(m.map(str_bytes));
                        if version >= 6 {
                            partition.with_committed_leader_epoch(0)
                        } else {
                            partition
                        }
                    })
                    .collect(),
            )])
}

/// OffsetFetch of `topics` (None: every committed partition) of each group.
fn fetch_request(
    side: &Side,
    groups: &[&str],
    topics: Option<&[(&str, &[i32])]>,
    version: i16,
) -> OffsetFetchRequest {
    if version >= 8 {
        OffsetFetchRequest::default().with_groups(
            groups
                .iter()
                .map(|g| {
                    OffsetFetchRequestGroup::default()
                        .with_group_id(group_id(g))
                        .with_topics(topics.map(|ts| {
                            ts.iter()
                                .map(|(t, ps)| {
                                    OffsetFetchRequestTopics::default()
                                        .with_name(topic_name(t))
                                        .with_topic_id(id_of(side, t))
                                        .with_partition_indexes(ps.to_vec())
                                })
                                .collect()
                        }))
                })
                .collect(),
        )
    } else {
        OffsetFetchRequest::default()
            .with_group_id(group_id(groups[0]))
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partition_indexes(ps.to_vec())
                    })
                    .collect()
            }))
    }
}

#[test]
fn offsets() {
    let mut d = Differential::start("offsets");
    let topic = d.topic("t");
    d.create_topic(&topic, 2, &[]);
    let long = "m".repeat(4097);
    for v in ends(ApiKey::OffsetCommit).into_iter().chain([9]) {
        let simple = d.topic(&format!("simple-v{v}"));
        let member_group = d.topic(&format!("member-v{v}"));
        d.await_group_coordinator(&simple).unwrap();
        d.compare("simple-commit", v, |s| {
            commit_request(
                s,
                &simple,
                "",
                -1,
                &topic,
                &[(0, 5, Some("meta")), (1, 7, None)],
                v,
            )
        });
        d.compare("unknown-topic", v, |s| {
            commit_request(s, &simple, "", -1, &UNKNOWN.name, &[(0, 1, None)], v)
        });
        d.compare("unknown-partition", v, |s| {
            commit_request(s, &simple, "", -1, &topic, &[(9, 1, None)], v)
        });
        d.compare("metadata-too-large", v, |s| {
            commit_request(s, &simple, "", -1, &topic, &[(0, 6, Some(&long))], v)
        });
        d.compare("simple-commit-unknown-member", v, |s| {
            commit_request(s, &simple, "no-such-member", 1, &topic, &[(0, 6, None)], v)
        });
        let join_version = if v >= 9 { 9 } else { 0 };
        let member = stable_member(
            &mut d,
            "member",
            join_version,
            &member_group,
            None,
            &[&topic],
        );
        d.compare("member-commit", v, |s| {
            commit_request(
                s,
                &member_group,
                member.id.of(s),
                *member.generation.of(s),
                &topic,
                &[(0, 3, None)],
                v,
            )
        });
        d.compare("member-commit-stale-generation", v, |s| {
            commit_request(
                s,
                &member_group,
                member.id.of(s),
                member.generation.of(s) - 1,
                &topic,
                &[(0, 4, None)],
                v,
            )
        });
        d.compare("member-commit-unknown-member", v, |s| {
            commit_request(
                s,
                &member_group,
                "no-such-member",
                *member.generation.of(s),
                &topic,
                &[(0, 4, None)],
                v,
            )
        });
        d.compare("simple-commit-to-member-group", v, |s| {
            commit_request(s, &member_group, "", -1, &topic, &[(0, 4, None)], v)
        });

        for f in ends(ApiKey::OffsetFetch).into_iter().chain([2, 7]) {
            let case = |c: &str| format!("{c}-after-commit-v{v}");
            let parts: &[(&str, &[i32])] = &[(&topic, &[0, 1, 5]), (&UNKNOWN.name, &[0])];
            d.compare(&case("fetch"), f, |s| {
                fetch_request(s, &[&simple], Some(parts), f)
            });
            d.compare(&case("fetch-member-group"), f, |s| {
                fetch_request(s, &[&member_group], Some(parts), f)
            });
            let unknown = d.topic("unknown-group");
            d.compare(&case("fetch-unknown-group"), f, |s| {
                fetch_request(s, &[&unknown], Some(parts), f)
            });
            if f >= 2 {
                d.compare(&case("fetch-all"), f, |s| {
                    fetch_request(s, &[&simple], None, f)
                });
            }
            if f >= 7 {
                d.compare(&case("require-stable"), f, |s| {
                    fetch_request(s, &[&member_group], Some(parts), f).with_require_stable(true)
                });
            }
            if f >= 8 {
                // Answered in the order asked, whatever each topic's fate.
                let reversed: &[(&str, &[i32])] = &[(&UNKNOWN.name, &[0]), (&topic, &[1, 0])];
                d.compare(&case("unknown-topic-first"), f, |s| {
                    fetch_request(s, &[&simple], Some(reversed), f)
                });
                d.compare(&case("several-groups"), f, |s| {
                    fetch_request(s, &[&simple, &member_group, &unknown], Some(parts), f)
                });
                d.compare(&case("several-groups-all"), f, |s| {
                    fetch_request(s, &[&simple, &member_group, &unknown], None, f)
                });
            }
        }
    }
    d.finish();
}

fn offset_delete(group: &str, topics: &[(&str, &[i32])]) -> OffsetDeleteRequest {
    OffsetDeleteRequest::default()
        .with_group_id(group_id(group))
        .with_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    OffsetDeleteRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    OffsetDeleteRequestPartition::default().with_partition_index(*p)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

#[test]
fn offset_delete_() {
    let mut d = Differential::start("offset_delete");
    let (subscribed, other) = (d.topic("subscribed"), d.topic("other"));
    d.create_topic(&subscribed, 2, &[]);
    d.create_topic(&other, 1, &[]);
    let (empty, active) = (d.topic("empty"), d.topic("active"));
    d.await_group_coordinator(&empty).unwrap();
    let v = 0;
    d.compare("commit", 9, |s| {
        commit_request(
            s,
            &empty,
            "",
            -1,
            &subscribed,
            &[(0, 1, None), (1, 1, None)],
            9,
        )
    });
    d.compare("empty-group", v, |_| {
        offset_delete(&empty, &[(&subscribed, &[0])])
    });
    d.compare("empty-group-nothing-committed", v, |_| {
        offset_delete(&empty, &[(&other, &[0])])
    });
    d.compare("unknown-topic", v, |_| {
        offset_delete(&empty, &[(&UNKNOWN.name, &[0])])
    });
    d.compare("fetch-after", 9, |s| fetch_request(s, &[&empty], None, 9));
    let unknown = d.topic("unknown");
    d.compare("unknown-group", v, |_| {
        offset_delete(&unknown, &[(&subscribed, &[0])])
    });

    let member = stable_member(&mut d, "member", 9, &active, None, &[&subscribed]);
    d.compare("member-commit", 9, |s| {
        commit_request(
            s,
            &active,
            member.id.of(s),
            *member.generation.of(s),
            &subscribed,
            &[(0, 2, None)],
            9,
        )
    });
    d.compare("simple-commit-other", 9, |s| {
        commit_request(
            s,
            &active,
            member.id.of(s),
            *member.generation.of(s),
            &other,
            &[(0, 2, None)],
            9,
        )
    });
    d.compare("subscribed-group", v, |_| {
        offset_delete(&active, &[(&subscribed, &[0]), (&other, &[0])])
    });
    d.compare("fetch-after-subscribed", 9, |s| {
        fetch_request(s, &[&active], None, 9)
    });
    d.finish();
}

/// Kafka answers several groups batched by the offsets-topic partition holding each, not in
/// the order asked; clients match answers by group id, so both are compared sorted by it.
fn by_group_id(r: &mut DescribeGroupsResponse) {
    r.groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
}

/// Keeps the groups of this test in a listing of the Kafka the whole suite shares.
fn own_groups(prefix: &str) -> impl Fn(&mut ListGroupsResponse) + '_ {
    move |r: &mut ListGroupsResponse| {
        r.groups.retain(|g| g.group_id.starts_with(prefix));
        r.groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    }
}

#[test]
fn group_admin() {
    let mut d = Differential::start("group_admin");
    let topic = d.topic("t");
    d.create_topic(&topic, 1, &[]);
    let prefix = d.topic("");
    let (active, empty, unknown) = (d.topic("active"), d.topic("empty"), d.topic("unknown"));
    d.await_group_coordinator(&active).unwrap();
    stable_member(&mut d, "member", 9, &active, None, &[&topic]);
    d.compare("commit", 9, |s| {
        commit_request(s, &empty, "", -1, &topic, &[(0, 1, None)], 9)
    });
    // v5 is the last to describe a missing group as Dead rather than an error.
    for v in ends(ApiKey::DescribeGroups).into_iter().chain([5]) {
        d.compare_part(
            "describe",
            v,
            |_| describe(&[&active, &empty, &unknown], v),
            by_group_id,
        );
        d.compare("describe-empty-id", v, |_| describe(&[""], v));
    }
    for v in ends(ApiKey::ListGroups).into_iter().chain([4]) {
        d.compare_part(
            "list",
            v,
            |_| ListGroupsRequest::default(),
            own_groups(&prefix),
        );
        if v >= 4 {
            for state in ["Stable", "Empty", "Dead"] {
                d.compare_part(
                    &format!("list-{state}"),
                    v,
                    |_| ListGroupsRequest::default().with_states_filter(vec![str_bytes(state)]),
                    own_groups(&prefix),
                );
            }
        }
        if v >= 5 {
            for kind in ["classic", "consumer"] {
                d.compare_part(
                    &format!("list-type-{kind}"),
                    v,
                    |_| ListGroupsRequest::default().with_types_filter(vec![str_bytes(kind)]),
                    own_groups(&prefix),
                );
            }
        }
    }
    for v in ends(ApiKey::DeleteGroups) {
        let doomed = d.topic(&format!("doomed-v{v}"));
        d.compare("commit-doomed", 9, |s| {
            commit_request(s, &doomed, "", -1, &topic, &[(0, 1, None)], 9)
        });
        let delete = |groups: &[&str]| {
            DeleteGroupsRequest::default()
                .with_groups_names(groups.iter().map(|g| group_id(g)).collect())
        };
        d.compare_part(
            "delete",
            v,
            |_| delete(&[&active, &unknown, &doomed]),
            |r: &mut DeleteGroupsResponse| r.results.sort_by(|a, b| a.group_id.cmp(&b.group_id)),
        );
        d.compare("deleted-twice", v, |_| delete(&[&doomed]));
        d.compare("fetch-deleted", 9, |s| {
            fetch_request(s, &[&doomed], None, 9)
        });
    }
    d.compare("describe-after-delete", 5, |_| describe(&[&empty], 5));
    d.finish();
}

/// What clients may do to `__consumer_offsets`. Kafka 4.4 refuses a Produce into it, but
/// deletes it when asked (then recreates it empty), which cannot be tried on the Kafka the
/// suite shares: samsa's refusal is checked in protocol-tests/tests/offsets_topic.rs.
#[test]
fn offsets_topic() {
    let mut d = Differential::start("offsets_topic");
    let topic = d.topic("t");
    d.create_topic(&topic, 1, &[]);
    let group = d.topic("g");
    d.await_group_coordinator(&group).unwrap();
    // samsa creates the topic when a group first writes.
    d.compare("commit", 9, |s| {
        commit_request(s, &group, "", -1, &topic, &[(0, 1, None)], 9)
    });
    d.learn_topic_id(OFFSETS_TOPIC).unwrap();
    for v in ends(ApiKey::Metadata) {
        d.compare("metadata", v, |_| {
            MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic_name(OFFSETS_TOPIC)))
                ]))
                .with_allow_auto_topic_creation(false)
        });
    }
    let records = batch(&messages("x", 1, *T0));
    for v in ends(ApiKey::Produce) {
        d.compare("produce", v, |s| {
            let t = TopicRef {
                name: OFFSETS_TOPIC.to_owned(),
                id: s.id(OFFSETS_TOPIC),
            };
            produce_request(&t, 0, records.clone(), -1, v)
        });
    }
    for v in ends(ApiKey::CreatePartitions) {
        // Validate only: Kafka accepts, and growing the shared broker's topic would move groups.
        d.compare("create-partitions", v, |_| {
            CreatePartitionsRequest::default()
                .with_timeout_ms(30_000)
                .with_validate_only(true)
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(topic_name(OFFSETS_TOPIC))
                    .with_count(60)
                    .with_assignments(None)])
        });
    }
    d.finish();
}
