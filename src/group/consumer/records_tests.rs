//! The codec against the records Kafka 4.4 wrote for a KIP-848 consumer group
//! (`protocol-tests/fixtures/internal-records/make.py --consumer-groups`).

use super::*;
use crate::group::records::{decode_key as decode_any_key, RecordKey};
use crate::topics::schema::kafka_consumer_group_records;

fn consumer_key(bytes: &Bytes) -> Option<ConsumerKey> {
    match decode_any_key(bytes).unwrap() {
        RecordKey::Consumer(key) => Some(key),
        _ => None,
    }
}

#[test]
fn kafkas_own_records_decode_and_encode_to_the_same_bytes() {
    let mut kinds = std::collections::BTreeSet::new();
    for (key_bytes, value) in kafka_consumer_group_records() {
        let RecordKey::Consumer(key) = decode_any_key(&key_bytes).unwrap() else {
            continue;
        };
        assert_eq!(key.encode(), key_bytes, "{key:?}");
        let Some(value) = value else { continue };
        let decoded = decode_value(&key, &value).unwrap();
        assert_eq!(encode_value(&decoded), value, "{decoded:?}");
        kinds.insert(key_bytes[1]);
    }
    // Group epoch, member, target metadata and member, current assignment, expression.
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        vec![3, 5, 6, 7, 8, 16]
    );
}

#[test]
fn kafkas_records_mean_what_the_members_did() {
    let records = kafka_consumer_group_records();
    let members: Vec<MemberValue> = records
        .iter()
        .filter_map(|(k, v)| match (consumer_key(k)?, v) {
            (key @ ConsumerKey::Member(..), Some(v)) => match decode_value(&key, v).unwrap() {
                ConsumerValue::Member(m) => Some(m),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(members[0].client_id, "by-name");
    assert_eq!(members[0].subscribed_topic_names, vec!["orders".to_owned()]);
    assert_eq!(members[0].subscribed_topic_regex, None, "written as \"\"");
    assert_eq!(
        members[1].subscribed_topic_regex.as_deref(),
        Some("(^ord.*)")
    );
    assert!(members.iter().all(|m| m.classic.is_none()));
    // The first member's first assignment: both partitions, at the group's epoch 2.
    let (key, value) = records
        .iter()
        .find(|(k, v)| k[1] == 8 && v.is_some())
        .unwrap();
    let ConsumerValue::CurrentAssignment(current) =
        decode_value(&consumer_key(key).unwrap(), value.as_ref().unwrap()).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (current.member_epoch, current.state),
        (2, MemberState::Stable)
    );
    let partitions: Vec<i32> = current.assigned.values().flatten().copied().collect();
    assert_eq!(partitions, vec![0, 1]);
    // Deleting the group ends with the group's own tombstones.
    let last: Vec<i16> = records[records.len() - 3..]
        .iter()
        .map(|(k, v)| {
            assert!(v.is_none());
            i16::from_be_bytes([k[0], k[1]])
        })
        .collect();
    assert_eq!(last, vec![TARGET_METADATA, PARTITION_METADATA, METADATA]);
}

#[test]
fn a_classic_member_round_trips() {
    let value = ConsumerValue::Member(MemberValue {
        instance_id: Some("i".into()),
        client_id: "c".into(),
        client_host: "/h".into(),
        rebalance_timeout_ms: 5,
        classic: Some(ClassicMember {
            session_timeout_ms: 45000,
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        }),
        ..MemberValue::default()
    });
    let key = ConsumerKey::Member("g".into(), "m".into());
    assert_eq!(decode_value(&key, &encode_value(&value)).unwrap(), value);
}
