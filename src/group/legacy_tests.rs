//! An offsets partition written by earlier samsa (JSON records, written here as it wrote
//! them) loads with its offsets and groups intact, is rewritten in Kafka's format, and after
//! compaction holds no JSON record; loading it again finds the same and rewrites nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::*;
use crate::config::Config;
use crate::group::records;
use crate::group::store::{Entry, MemberRecord, OffsetsStore, OFFSETS_TOPIC};
use crate::group::GroupCoordinator;
use crate::topics::internal;
use crate::topics::{Isolation, Partition, TopicRegistry};

fn offset(value: i64) -> CommittedOffset {
    CommittedOffset {
        offset: value,
        leader_epoch: 4,
        metadata: Some(format!("m{value}")),
        commit_timestamp: 1_700_000_000_000,
        expire_timestamp: None,
        record_offset: 0,
    }
}

fn key(group: &str, topic: &str, partition: i32) -> OffsetKey {
    OffsetKey {
        g: group.into(),
        t: topic.into(),
        p: partition,
    }
}

fn append_json(partition: &Partition, records: &[LegacyRecord]) {
    let records: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (key, value) = encode(r);
            internal::record(key, value, i as i64, 1_700_000_000_000)
        })
        .collect();
    let batch = internal::encode_batch(&records, "test").unwrap();
    partition.append_blocking(batch, 1_700_000_000_000).unwrap();
}

/// Every (key, value) in the partition, in log order.
fn raw_records(partition: &Partition) -> Vec<(Bytes, Option<Bytes>)> {
    let mut out = Vec::new();
    let mut offset = partition.offsets().unwrap().log_start;
    loop {
        let mut read = partition
            .read(offset, 1 << 20, Isolation::LogEnd)
            .unwrap()
            .records;
        if read.is_empty() {
            return out;
        }
        for set in RecordBatchDecoder::decode_all(&mut read).unwrap() {
            for r in set.records {
                offset = offset.max(r.offset + 1);
                if !r.control {
                    out.push((r.key.unwrap(), r.value));
                }
            }
        }
    }
}

fn is_json(key: &Bytes) -> bool {
    records::decode_key(key).is_err()
}

/// (offsets, generation, member count) of `group` as loaded.
fn loaded(groups: &GroupCoordinator, group: &str) -> (BTreeMap<(String, i32), i64>, i32, usize) {
    let shared = groups.groups.read().get(group).expect("group loaded");
    let group = shared.lock();
    let offsets = group
        .offsets
        .iter()
        .map(|(k, v)| (k.clone(), v.offset))
        .collect();
    (offsets, group.generation, group.members.len())
}

#[test]
fn json_records_load_and_end_in_kafkas_format() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(Config {
        data_dir: dir.path().to_owned(),
        offsets_topic_num_partitions: 1,
        ..Config::default()
    });
    let topics = Arc::new(TopicRegistry::open(config.clone()).unwrap());
    // Small segments and no tombstone retention, so compaction can clean everything sealed.
    let configs = BTreeMap::from([
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("segment.bytes".to_owned(), "1024".to_owned()),
        ("delete.retention.ms".to_owned(), "0".to_owned()),
        ("min.cleanable.dirty.ratio".to_owned(), "0".to_owned()),
    ]);
    let topic = topics.create_led_here(OFFSETS_TOPIC, 1, configs).unwrap();
    let partition = topic.partitions[0].clone();
    let member = MemberRecord {
        member_id: "m-1".into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 45_000,
        rebalance_timeout_ms: 300_000,
        subscription: vec![0, 1],
        assignment: vec![0, 2],
    };
    let membership = GroupRecord {
        protocol_type: Some("consumer".into()),
        generation: 2,
        protocol: Some("range".into()),
        leader: Some("m-1".into()),
        state_timestamp: 1_700_000_000_000,
        members: vec![member],
    };
    append_json(
        &partition,
        &[
            LegacyRecord::Offset(key("g1", "orders", 0), Some(offset(3))),
            LegacyRecord::Offset(key("g1", "orders", 1), Some(offset(5))),
        ],
    );
    append_json(
        &partition,
        &[LegacyRecord::Group("g1".into(), Some(membership))],
    );
    append_json(
        &partition,
        &[
            LegacyRecord::Offset(key("g1", "orders", 1), Some(offset(6))),
            LegacyRecord::Offset(key("g1", "orders", 2), Some(offset(9))),
        ],
    );
    append_json(
        &partition,
        &[LegacyRecord::Offset(key("g1", "orders", 2), None)],
    );
    append_json(
        &partition,
        &[
            LegacyRecord::Offset(key("g2", "audit", 0), Some(offset(1))),
            LegacyRecord::Group("g2".into(), None),
        ],
    );

    let expect_g1 = BTreeMap::from([(("orders".into(), 0), 3), (("orders".into(), 1), 6)]);
    let expect_g2 = BTreeMap::from([(("audit".into(), 0), 1)]);
    let groups = GroupCoordinator::new(config.clone(), topics.clone());
    groups.load_partition(0).unwrap();
    assert_eq!(loaded(&groups, "g1"), (expect_g1.clone(), 2, 1));
    assert_eq!(loaded(&groups, "g2"), (expect_g2.clone(), 0, 0));

    // The last record of every JSON key is a tombstone; what lives is in Kafka's format.
    let mut last: HashMap<Bytes, Option<Bytes>> = HashMap::new();
    for (k, v) in raw_records(&partition) {
        last.insert(k, v);
    }
    for (k, v) in &last {
        assert!(!is_json(k) || v.is_none(), "a JSON key still live: {k:?}");
    }
    assert_eq!(
        last.values().filter(|v| v.is_some()).count(),
        4,
        "three offsets, one group"
    );

    // Compaction: later batches (over a segment's worth) seal the rewritten ones; the first
    // pass sets the tombstones' delete horizon, the second drops them.
    groups.unload_partition(0);
    let filler = OffsetsStore::new(topics.clone(), 1);
    for i in 0..12 {
        let entry = Entry::Offset(key("filler", "t", 0), Some(offset(i)));
        filler
            .append("filler", &[entry], 1_700_000_000_000)
            .unwrap();
    }
    let now = crate::clock::now_ms();
    partition.clean(now).unwrap();
    std::thread::sleep(Duration::from_millis(2));
    partition.clean(now + 1).unwrap();
    let left = raw_records(&partition);
    assert!(
        left.iter().all(|(k, _)| !is_json(k)),
        "no JSON record is left: {left:?}"
    );

    // Loaded again: the same state, and nothing more to rewrite.
    let end = partition.offsets().unwrap().log_end;
    let groups = GroupCoordinator::new(config, topics);
    groups.load_partition(0).unwrap();
    assert_eq!(loaded(&groups, "g1"), (expect_g1, 2, 1));
    assert_eq!(loaded(&groups, "g2"), (expect_g2, 0, 0));
    assert_eq!(partition.offsets().unwrap().log_end, end);
}
