use kafka_protocol::error::ResponseError;

use super::*;

fn key() -> SharePartitionKey {
    SharePartitionKey {
        group_id: "g".into(),
        topic_id: uuid::Uuid::from_u128(7),
        partition: 0,
    }
}

fn batch(first: i64, last: i64, state: i8, count: i16) -> StateBatch {
    StateBatch {
        first_offset: first,
        last_offset: last,
        delivery_state: state,
        delivery_count: count,
    }
}

fn write(leader_epoch: i32, start: i64, batches: Vec<StateBatch>) -> WriteData {
    WriteData {
        state_epoch: 0,
        leader_epoch,
        start_offset: start,
        delivery_complete_count: 0,
        batches,
    }
}

fn code(err: BrokerError) -> ResponseError {
    err.response_error()
}

/// Decides and replays, as the coordinator does once the record is committed.
fn apply(shard: &mut Shard, record: ShareRecord) -> ShareRecord {
    // Where in the log does not matter to these tests; the pruning test gives offsets.
    shard.replay(record.clone(), 0);
    record
}

#[test]
fn updates_fold_into_the_state_and_a_snapshot_follows_every_n_updates() {
    let mut shard = Shard::new(2);
    let k = key();
    let record = shard.initialize(&k, 0, 0, true, 1).unwrap();
    apply(&mut shard, record);
    let kinds: Vec<RecordType> = (0..5)
        .map(|i| {
            let data = write(0, 0, vec![batch(i * 10, i * 10 + 9, 2, 1)]);
            let record = shard.write(&k, &data, true, 2).unwrap();
            apply(&mut shard, record).kind
        })
        .collect();
    // Kafka counts the first update after a snapshot as 0: two more, then a snapshot.
    assert_eq!(
        kinds,
        vec![
            RecordType::Update,
            RecordType::Update,
            RecordType::Update,
            RecordType::Snapshot,
            RecordType::Update
        ]
    );
    let (state, _) = shard.read(&k, 0, true, 3).unwrap();
    assert_eq!(state.batches, vec![batch(0, 49, 2, 1)]);
}

#[test]
fn the_state_replayed_from_the_records_is_the_state_served() {
    let mut live = Shard::new(500);
    let k = key();
    let first = live.initialize(&k, 0, 5, true, 1).unwrap();
    let mut log = vec![apply(&mut live, first)];
    for data in [
        write(0, 5, vec![batch(5, 9, 0, 1)]),
        write(0, -1, vec![batch(7, 8, 2, 1)]),
        write(0, 8, vec![batch(10, 12, 4, 5)]),
    ] {
        let record = live.write(&k, &data, true, 2).unwrap();
        log.push(apply(&mut live, record));
    }
    let mut replayed = Shard::new(500);
    for (offset, record) in log.into_iter().enumerate() {
        replayed.replay(record, offset as i64);
    }
    let served = live.read(&k, 0, true, 3).unwrap().0;
    assert_eq!(replayed.read(&k, 0, true, 3).unwrap().0, served);
    assert_eq!(served.start_offset, 8);
    assert_eq!(
        served.batches,
        vec![batch(8, 8, 2, 1), batch(9, 9, 0, 1), batch(10, 12, 4, 5)]
    );
}

#[test]
fn epochs_fence_and_uninitialized_partitions_are_refused_as_kafka_refuses_them() {
    let mut shard = Shard::new(500);
    let k = key();
    let data = write(0, 0, vec![]);
    assert_eq!(
        code(shard.write(&k, &data, true, 0).unwrap_err()),
        ResponseError::InvalidRequest
    );
    assert_eq!(
        code(shard.read(&k, 0, true, 0).unwrap_err()),
        ResponseError::InvalidRequest
    );
    let summary = shard.summary(&k, true).unwrap();
    assert_eq!((summary.start_offset, summary.state_epoch), (-1, 0));
    let record = shard.initialize(&k, 3, 0, true, 0).unwrap();
    apply(&mut shard, record);
    // A read at a new leader epoch records it; older leaders are fenced from then on.
    let (_, record) = shard.read(&k, 4, true, 0).unwrap();
    apply(&mut shard, record.expect("the new leader epoch is written"));
    assert!(shard.read(&k, 4, true, 0).unwrap().1.is_none());
    assert_eq!(
        code(shard.write(&k, &write(3, 0, vec![]), true, 0).unwrap_err()),
        ResponseError::FencedLeaderEpoch
    );
    let stale_state = WriteData {
        state_epoch: 2,
        ..write(4, 0, vec![])
    };
    assert_eq!(
        code(shard.write(&k, &stale_state, true, 0).unwrap_err()),
        ResponseError::FencedStateEpoch
    );
    assert_eq!(
        code(shard.initialize(&k, 2, 0, true, 0).unwrap_err()),
        ResponseError::FencedStateEpoch
    );
    let fine = WriteData {
        state_epoch: 3,
        ..write(4, 0, vec![])
    };
    assert_eq!(
        code(shard.write(&k, &fine, false, 0).unwrap_err()),
        ResponseError::UnknownTopicOrPartition
    );
    assert!(shard.write(&k, &fine, true, 0).is_ok());
}

#[test]
fn a_deletion_tombstones_the_state_and_forgets_its_epochs() {
    let mut shard = Shard::new(500);
    let k = key();
    assert_eq!(shard.delete(&k, true).unwrap(), None);
    let record = shard.initialize(&k, 5, 0, true, 0).unwrap();
    apply(&mut shard, record);
    let tombstone = shard.delete(&k, true).unwrap().unwrap();
    assert_eq!(
        (tombstone.kind, tombstone.value.is_none()),
        (RecordType::Snapshot, true)
    );
    apply(&mut shard, tombstone);
    assert!(shard.is_empty());
    assert!(shard.initialize(&k, 0, 0, true, 0).is_ok());
}

#[test]
fn the_start_offset_never_moves_back_and_keeps_its_delivery_complete_count() {
    let mut shard = Shard::new(500);
    let k = key();
    let record = shard.initialize(&k, 0, 10, true, 0).unwrap();
    apply(&mut shard, record);
    let ahead = WriteData {
        delivery_complete_count: 4,
        ..write(0, 20, vec![])
    };
    let record = shard.write(&k, &ahead, true, 0).unwrap();
    apply(&mut shard, record);
    let behind = WriteData {
        delivery_complete_count: 9,
        ..write(0, 15, vec![batch(15, 30, 0, 1)])
    };
    let record = shard.write(&k, &behind, true, 0).unwrap();
    apply(&mut shard, record);
    let summary = shard.summary(&k, true).unwrap();
    assert_eq!(
        (summary.start_offset, summary.delivery_complete_count),
        (20, 4)
    );
    assert_eq!(
        shard.read(&k, 0, true, 0).unwrap().0.batches,
        vec![batch(20, 30, 0, 1)]
    );
}

/// Kafka's `ShareCoordinatorOffsetsManager`: the records before the earliest latest
/// snapshot of the keys are redundant; updates do not move it, and a deleted key's
/// tombstone holds it back only until the next snapshot of another key.
#[test]
fn the_redundant_offset_is_the_earliest_latest_snapshot() {
    let mut shard = Shard::new(1);
    let a = key();
    let b = SharePartitionKey {
        partition: 1,
        ..key()
    };
    assert_eq!(shard.last_redundant_offset(), None);
    let mut offset = 0;
    let mut replay = |shard: &mut Shard, record: ShareRecord| {
        let at = offset;
        shard.replay(record, at);
        offset += 1;
        at
    };
    // Writes to `k` until one becomes a snapshot; its offset.
    let snapshot = |shard: &mut Shard,
                    k: &SharePartitionKey,
                    replay: &mut dyn FnMut(&mut Shard, ShareRecord) -> i64| {
        let mut start = 0;
        loop {
            start += 1;
            let record = shard.write(k, &write(0, start, vec![]), true, 2).unwrap();
            let kind = record.kind;
            let at = replay(shard, record);
            if kind == RecordType::Snapshot {
                return at;
            }
        }
    };
    let init = shard.initialize(&a, 0, 0, true, 1).unwrap();
    replay(&mut shard, init);
    // Offset 0: nothing before it to prune.
    assert_eq!(shard.last_redundant_offset(), None);
    let init = shard.initialize(&b, 0, 0, true, 1).unwrap();
    let b_init = replay(&mut shard, init);
    assert_eq!(shard.last_redundant_offset(), None);
    // a's updates and snapshot leave b's initialization the earliest latest snapshot.
    let a_snapshot = snapshot(&mut shard, &a, &mut replay);
    assert!(a_snapshot > b_init + 1, "updates came first");
    assert_eq!(shard.last_redundant_offset(), Some(b_init));
    // Once b snapshots, a's snapshot is the earliest.
    let b_snapshot = snapshot(&mut shard, &b, &mut replay);
    assert_eq!(shard.last_redundant_offset(), Some(a_snapshot));
    // a is deleted: its tombstone does not hold anything back once b snapshots again.
    let tombstone = shard.delete(&a, true).unwrap().unwrap();
    replay(&mut shard, tombstone);
    assert_eq!(shard.last_redundant_offset(), Some(b_snapshot));
    let b_again = snapshot(&mut shard, &b, &mut replay);
    assert_eq!(shard.last_redundant_offset(), Some(b_again));
}
