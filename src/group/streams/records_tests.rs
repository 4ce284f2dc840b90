//! The codec against the records Kafka 4.4 wrote for a streams group
//! (`protocol-tests/fixtures/internal-records/make.py --streams-groups`: the word count of
//! `compat/streams/WordCount.java` as two instances of the application `sg`).

use super::*;
use crate::group::records::{decode_key as decode_any_key, RecordKey};
use crate::topics::schema::kafka_streams_group_records;

/// The fixture's streams-group records, decoded.
fn streams_records() -> Vec<(StreamsKey, Option<StreamsValue>)> {
    kafka_streams_group_records()
        .into_iter()
        .filter_map(|(k, v)| match decode_any_key(&k).unwrap() {
            RecordKey::Streams(key) => {
                let value = v.map(|v| decode_value(&key, &v).unwrap());
                Some((key, value))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn kafkas_own_records_decode_and_encode_to_the_same_bytes() {
    let mut kinds = std::collections::BTreeSet::new();
    for (key_bytes, value) in kafka_streams_group_records() {
        let RecordKey::Streams(key) = decode_any_key(&key_bytes).unwrap() else {
            continue;
        };
        assert_eq!(key.encode(), key_bytes, "{key:?}");
        kinds.insert(i16::from_be_bytes([key_bytes[0], key_bytes[1]]));
        let Some(value) = value else { continue };
        let decoded = decode_value(&key, &value).unwrap();
        assert_eq!(encode_value(&decoded), value, "{decoded:?}");
    }
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), TYPES.to_vec());
}

#[test]
fn kafkas_records_mean_what_the_application_did() {
    let records = streams_records();
    // The first member joins with the word count's topology: two subtopologies, the
    // second reading the repartition topic the first writes, counting into a changelog.
    let topology = records
        .iter()
        .find_map(|(_, v)| match v {
            Some(StreamsValue::Topology {
                epoch,
                subtopologies,
            }) => Some((*epoch, subtopologies.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(topology.0, 0);
    let [first, second] = &topology.1[..] else {
        panic!("{topology:?}")
    };
    assert_eq!(first.source_topics, vec!["lines".to_owned()]);
    assert_eq!(
        first.repartition_sink_topics,
        vec!["sg-counts-repartition".to_owned()]
    );
    assert_eq!(
        second.repartition_source_topics[0].name,
        "sg-counts-repartition"
    );
    assert_eq!(second.state_changelog_topics[0].name, "sg-counts-changelog");
    // A repartition topic is read as such, not among the plain source topics.
    assert!(second.source_topics.is_empty());
    let configs = &second.state_changelog_topics[0].configs;
    assert!(configs.contains(&("cleanup.policy".into(), "compact".into())));

    let members: Vec<&MemberValue> = records
        .iter()
        .filter_map(|(_, v)| match v {
            Some(StreamsValue::Member(m)) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(members.len(), 2);
    assert!(members
        .iter()
        .all(|m| m.user_endpoint.is_none() && m.instance_id.is_none() && !m.process_id.is_empty()));
    assert_ne!(members[0].process_id, members[1].process_id);

    // Once both have their tasks, the two targets hold the four tasks between them.
    let mut targets: Vec<(String, i32)> = records
        .iter()
        .filter(|(k, _)| matches!(k, StreamsKey::TargetMember(..)))
        .take(2)
        .flat_map(|(_, v)| match v {
            Some(StreamsValue::TargetMember(t)) => t
                .active
                .iter()
                .flat_map(|ids| ids.partitions.iter().map(|p| (ids.subtopology.clone(), *p)))
                .collect::<Vec<_>>(),
            _ => panic!("{v:?}"),
        })
        .collect();
    targets.sort();
    let want: Vec<(String, i32)> = ["0", "1"]
        .iter()
        .flat_map(|s| (0..2).map(move |p| (s.to_string(), p)))
        .collect();
    assert_eq!(targets, want);

    // Deleting the group ends with the group's own tombstones.
    let tail: Vec<&StreamsKey> = records[records.len() - 3..]
        .iter()
        .map(|(k, v)| {
            assert!(v.is_none(), "{k:?}");
            k
        })
        .collect();
    assert_eq!(
        tail,
        vec![
            &StreamsKey::TargetMetadata("sg".into()),
            &StreamsKey::Metadata("sg".into()),
            &StreamsKey::Topology("sg".into()),
        ]
    );
}

#[test]
fn every_optional_field_round_trips() {
    let key = StreamsKey::Member("g".into(), "m".into());
    let member = StreamsValue::Member(MemberValue {
        instance_id: Some("i".into()),
        rack_id: Some("r".into()),
        client_id: "c".into(),
        client_host: "/h".into(),
        rebalance_timeout_ms: 5,
        topology_epoch: 2,
        process_id: "p".into(),
        user_endpoint: Some(("host".into(), 65000)),
        client_tags: vec![("zone".into(), "a".into())],
    });
    assert_eq!(decode_value(&key, &encode_value(&member)).unwrap(), member);

    let key = StreamsKey::Metadata("g".into());
    let metadata = StreamsValue::Metadata(MetadataValue {
        epoch: 3,
        metadata_hash: -7,
        validated_topology_epoch: 1,
        last_assignment_configs: Some(vec![("num.standby.replicas".into(), "1".into())]),
        stored_description_topology_epoch: -2,
        failed_description_topology_epoch: 4,
    });
    assert_eq!(
        decode_value(&key, &encode_value(&metadata)).unwrap(),
        metadata
    );

    let key = StreamsKey::CurrentAssignment("g".into(), "m".into());
    let ids = |s: &str, epochs| TaskIds {
        subtopology: s.into(),
        partitions: vec![2, 0],
        assignment_epochs: epochs,
    };
    let current = StreamsValue::CurrentAssignment(CurrentValue {
        member_epoch: 4,
        previous_member_epoch: 3,
        state: 1,
        assigned: TaskLists {
            active: vec![ids("1", Some(vec![4, 3])), ids("0", None)],
            standby: vec![ids("0", None)],
            warmup: vec![],
        },
        pending_revocation: TaskLists {
            warmup: vec![ids("1", None)],
            ..TaskLists::default()
        },
    });
    assert_eq!(
        decode_value(&key, &encode_value(&current)).unwrap(),
        current
    );
}

#[test]
fn a_truncated_value_is_an_error_not_a_panic() {
    for (key_bytes, value) in kafka_streams_group_records() {
        let (RecordKey::Streams(key), Some(value)) = (decode_any_key(&key_bytes).unwrap(), value)
        else {
            continue;
        };
        for len in 2..value.len() {
            assert!(
                decode_value(&key, &value.slice(..len)).is_err(),
                "{key:?} at {len}"
            );
        }
    }
}
