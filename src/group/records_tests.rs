//! The codec against records Kafka 4.4 itself wrote
//! (protocol-tests/fixtures/internal-records/make.py says how), and round trips of what
//! samsa writes.

use super::*;
use crate::group::share::records::ShareKey;
use crate::topics::schema::kafka_records;

#[test]
fn kafkas_own_records_decode_and_encode_to_the_same_bytes() {
    let records = kafka_records("__consumer_offsets");
    let (mut offsets, mut groups, mut tombstones) = (0, 0, 0);
    for (key_bytes, value) in &records {
        let key = decode_key(key_bytes).unwrap();
        assert_eq!(&encode_key(&key), key_bytes, "{key:?}");
        let Some(value) = value else {
            tombstones += 1;
            continue;
        };
        match &key {
            RecordKey::Offset { .. } => {
                let (offset, topic_id) = decode_offset_value(value).unwrap();
                assert!(!topic_id.is_nil(), "Kafka 4.4 names the topic by id too");
                assert_eq!(&encode_offset_value(&offset, topic_id), value, "{offset:?}");
                offsets += 1;
            }
            RecordKey::Group(_) => {
                let group = decode_group_value(value).unwrap();
                assert_eq!(&encode_group_value(&group), value, "{group:?}");
                groups += 1;
            }
            RecordKey::Consumer(_)
            | RecordKey::Streams(_)
            | RecordKey::Share(_)
            | RecordKey::Other(_) => {
                panic!("unexpected record {key:?}")
            }
        }
    }
    assert_eq!((offsets, groups, tombstones), (4, 3, 3));
}

#[test]
fn kafkas_records_mean_what_the_client_did() {
    let records = kafka_records("__consumer_offsets");
    let commit = records
        .iter()
        .find_map(|(k, v)| match decode_key(k).unwrap() {
            RecordKey::Offset {
                group, partition, ..
            } if group == "g1" && partition == 0 => v.clone(),
            _ => None,
        })
        .unwrap();
    let (offset, _) = decode_offset_value(&commit).unwrap();
    assert_eq!((offset.offset, offset.leader_epoch), (3, -1));
    assert_eq!(
        offset.metadata.as_deref(),
        Some("meta-0\0"),
        "librdkafka's C string"
    );
    assert_eq!(offset.expire_timestamp, None);

    let stable = records
        .iter()
        .filter_map(|(k, v)| match decode_key(k).unwrap() {
            RecordKey::Group(_) => v.as_ref().map(|v| decode_group_value(v).unwrap()),
            _ => None,
        })
        .find(|g| !g.members.is_empty())
        .unwrap();
    assert_eq!(stable.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(stable.protocol.as_deref(), Some("range"));
    assert_eq!(stable.generation, 1);
    let member = &stable.members[0];
    assert_eq!(stable.leader.as_deref(), Some(member.member_id.as_str()));
    assert_eq!(
        (
            member.client_id.as_str(),
            member.client_host.as_str(),
            member.rebalance_timeout_ms,
            member.session_timeout_ms
        ),
        ("fixture-client", "/127.0.0.1", 300_000, 45_000)
    );
    assert_eq!(member.instance_id, None);
}

#[test]
fn what_samsa_writes_round_trips() {
    let mut offset = CommittedOffset {
        offset: 42,
        leader_epoch: 7,
        metadata: Some("m".into()),
        commit_timestamp: 1_700_000_000_000,
        expire_timestamp: None,
        record_offset: 0,
    };
    let id = Uuid::from_u128(0x1234);
    for topic_id in [id, Uuid::nil()] {
        let bytes = encode_offset_value(&offset, topic_id);
        assert_eq!(&bytes[..2], &[0, 4]);
        assert_eq!(
            decode_offset_value(&bytes).unwrap(),
            (offset.clone(), topic_id)
        );
    }
    // An expiry is only expressible in version 1, which has no leader epoch.
    offset.expire_timestamp = Some(1_800_000_000_000);
    let bytes = encode_offset_value(&offset, id);
    assert_eq!(&bytes[..2], &[0, 1]);
    let (back, back_id) = decode_offset_value(&bytes).unwrap();
    assert_eq!(
        (back.expire_timestamp, back.leader_epoch),
        (offset.expire_timestamp, -1)
    );
    assert!(back_id.is_nil());

    let group = GroupRecord {
        protocol_type: Some("consumer".into()),
        generation: 3,
        protocol: Some("range".into()),
        leader: Some("m-1".into()),
        state_timestamp: 99,
        members: vec![MemberRecord {
            member_id: "m-1".into(),
            instance_id: Some("static".into()),
            client_id: "c".into(),
            client_host: "/10.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 60_000,
            subscription: vec![1, 2, 3],
            assignment: vec![],
        }],
    };
    let bytes = encode_group_value(&group);
    assert_eq!(&bytes[..2], &[0, 3]);
    assert_eq!(decode_group_value(&bytes).unwrap(), group);
    let empty = GroupRecord {
        protocol_type: None,
        generation: 0,
        protocol: None,
        leader: None,
        state_timestamp: -1,
        members: vec![],
    };
    assert_eq!(
        decode_group_value(&encode_group_value(&empty)).unwrap(),
        empty
    );
}

#[test]
fn other_record_types_and_bad_bytes_are_told_apart() {
    // A KIP-848 ConsumerGroupMetadataKey (type 3) and a ShareGroupMetadataKey (type 11) are
    // read; a type no coordinator writes is named.
    let key = Bytes::from_static(&[0, 3, 0, 1, b'g']);
    assert_eq!(
        decode_key(&key).unwrap(),
        RecordKey::Consumer(ConsumerKey::Metadata("g".into()))
    );
    let key = Bytes::from_static(&[0, 11, 0, 1, b'g']);
    assert_eq!(
        decode_key(&key).unwrap(),
        RecordKey::Share(ShareKey::Metadata("g".into()))
    );
    let key = Bytes::from_static(&[0, 99, 0, 1, b'g']);
    assert_eq!(decode_key(&key).unwrap(), RecordKey::Other(99));
    // samsa's earlier JSON key shares type 1, but is not this schema.
    let json = Bytes::from_static(b"\x00\x01{\"g\":\"g\",\"t\":\"t\",\"p\":0}");
    assert!(decode_key(&json).is_err());
    assert!(decode_key(&Bytes::from_static(&[0])).is_err());
    assert!(decode_offset_value(&Bytes::from_static(&[0, 4, 0, 0])).is_err());
    assert!(decode_offset_value(&Bytes::from_static(&[0, 9])).is_err());
    assert!(decode_group_value(&Bytes::from_static(&[0, 3, 0xff, 0xff])).is_err());
}
