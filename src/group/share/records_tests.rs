//! The share-group records against bytes Kafka 4.4's own generated classes wrote
//! (`MessageUtil.toVersionPrefixedByteBuffer` in jshell over the group-coordinator jar).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use uuid::Uuid;

use super::*;
use crate::group::records::{decode_key as decode_any_key, RecordKey};

fn hex(s: &str) -> Bytes {
    Bytes::from(
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>(),
    )
}

/// Kafka's `Uuid.fromString("AAAAAAAAAAAAAAAAAAAAAQ")`.
fn topic() -> Uuid {
    Uuid::from_u128(1)
}

fn round_trip(key: ShareKey, value: ShareValue, kafka: &str) {
    let bytes = hex(kafka);
    assert_eq!(encode_value(&value), bytes, "{key:?}");
    assert_eq!(decode_value(&key, &bytes).unwrap(), value, "{key:?}");
}

#[test]
fn keys_are_kafkas() {
    let key = ShareKey::Member("g".into(), "m".into());
    assert_eq!(key.encode(), hex("000a00016700016d"));
    assert_eq!(
        decode_any_key(&hex("000a00016700016d")).unwrap(),
        RecordKey::Share(key)
    );
}

#[test]
fn values_are_kafkas() {
    let g = || "g".to_owned();
    let m = || "m".to_owned();
    round_trip(
        ShareKey::Member(g(), m()),
        ShareValue::Member(MemberValue {
            rack_id: None,
            client_id: "cli".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["a".into(), "b".into()],
        }),
        "00000004636c690b2f3132372e302e302e31030261026200",
    );
    round_trip(
        ShareKey::Metadata(g()),
        ShareValue::Metadata {
            epoch: 3,
            metadata_hash: -5,
        },
        "000000000003fffffffffffffffb00",
    );
    round_trip(
        ShareKey::TargetMetadata(g()),
        ShareValue::TargetMetadata {
            assignment_epoch: 3,
            timestamp: 1234,
        },
        "00000000000301000800000000000004d2",
    );
    let assignment = |ps: &[i32]| BTreeMap::from([(topic(), ps.iter().copied().collect())]);
    round_trip(
        ShareKey::TargetMember(g(), m()),
        ShareValue::TargetMember(assignment(&[0, 2])),
        "000002000000000000000000000000000000010300000000000000020000",
    );
    round_trip(
        ShareKey::CurrentAssignment(g(), m()),
        ShareValue::CurrentAssignment(CurrentValue {
            member_epoch: 3,
            previous_member_epoch: 2,
            state: 0,
            assigned: assignment(&[1]),
        }),
        "0000000000030000000200020000000000000000000000000000000102000000010000",
    );
    round_trip(
        ShareKey::StatePartitionMetadata(g()),
        ShareValue::StatePartitionMetadata(StatePartitions {
            initializing: BTreeMap::from([(
                topic(),
                TopicPartitions {
                    name: "a".into(),
                    partitions: BTreeSet::from([0, 1]),
                },
            )]),
            initialized: BTreeMap::new(),
            deleting: BTreeMap::from([(topic(), "a".to_owned())]),
        }),
        "0000020000000000000000000000000000000102610300000000000000010001020000000000000000000000000000000102610000",
    );
}
