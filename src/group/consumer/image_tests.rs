//! A group replayed from the records it wrote is the group it was: members keep epochs,
//! assignments and revocations, and carry on without a new epoch.

use super::super::records::{decode_value, encode_value};
use super::super::tests::settings;
use super::*;

fn image() -> TopicImage {
    let meta = TopicMeta {
        id: Uuid::from_bytes([1; 16]),
        partitions: 2,
    };
    [("a".to_owned(), meta)].into_iter().collect()
}

fn join(id: &str) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: Some(60_000),
        subscribed_topic_names: Some(vec!["a".into()]),
        owned: Some(Assignment::new()),
        client_id: format!("client-{id}"),
        ..Default::default()
    }
}

/// Writes what changed, through the bytes, into `log`.
fn write(group: &mut ConsumerGroup, log: &mut Vec<Record>) -> usize {
    let (records, written) = group.unwritten_records(7);
    let n = records.len();
    for (key, value) in records {
        let value = value.map(|v| decode_value(&key, &encode_value(&v)).unwrap());
        log.push((key, value));
    }
    group.written(written);
    n
}

fn replay(log: &[Record], now: Instant) -> ConsumerGroup {
    let mut group = ConsumerGroup::new("g");
    for (key, value) in log {
        group.replay(key.clone(), value.clone(), now);
    }
    group.loaded(now, &settings());
    group
}

#[tokio::test]
async fn a_replayed_group_carries_on_without_a_new_epoch() {
    let now = Instant::now();
    let (mut group, mut log) = (ConsumerGroup::new("g"), Vec::new());
    let join1 = group.heartbeat(join("m1"), &image(), &settings(), now, String::new);
    let epoch1 = join1.unwrap().member_epoch;
    write(&mut group, &mut log);
    group
        .heartbeat(join("m2"), &image(), &settings(), now, String::new)
        .unwrap();
    write(&mut group, &mut log);
    // m1 must give a partition up: the revocation is on disk too.
    let owned = group.members["m1"].assigned.clone();
    let beat = Heartbeat {
        member_id: "m1".into(),
        member_epoch: epoch1,
        owned: Some(owned),
        ..Default::default()
    };
    group
        .heartbeat(beat.clone(), &image(), &settings(), now, String::new)
        .unwrap();
    assert!(write(&mut group, &mut log) > 0);
    assert_eq!(
        write(&mut group, &mut log),
        0,
        "nothing changed, nothing written"
    );

    let mut loaded = replay(&log, now);
    assert_eq!(
        (loaded.group_epoch, loaded.assignment_epoch),
        (group.group_epoch, group.assignment_epoch)
    );
    assert_eq!(loaded.target, group.target);
    for (id, m) in &group.members {
        let l = &loaded.members[id];
        assert_eq!(
            (l.epoch, l.previous_epoch, l.state),
            (m.epoch, m.previous_epoch, m.state)
        );
        assert_eq!(
            (&l.assigned, &l.pending_revocation),
            (&m.assigned, &m.pending_revocation)
        );
        assert_eq!(l.client_id, m.client_id);
    }
    assert_eq!(
        loaded.unwritten_records(7).0,
        Vec::new(),
        "loaded = written"
    );
    // The same heartbeat on the loaded group gets the same answer, at the same epoch.
    let again = loaded.heartbeat(beat, &image(), &settings(), now, String::new);
    assert_eq!(again.unwrap().member_epoch, epoch1);
    assert_eq!(loaded.group_epoch, group.group_epoch);
}

#[tokio::test]
async fn a_member_leaving_is_tombstoned() {
    let now = Instant::now();
    let (mut group, mut log) = (ConsumerGroup::new("g"), Vec::new());
    group
        .heartbeat(join("m1"), &image(), &settings(), now, String::new)
        .unwrap();
    group
        .heartbeat(join("m2"), &image(), &settings(), now, String::new)
        .unwrap();
    write(&mut group, &mut log);
    group.leave("m2", None, LEAVE_EPOCH, &settings()).unwrap();
    let (records, _) = group.unwritten_records(7);
    let tombstones: Vec<&ConsumerKey> = records
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        tombstones,
        vec![
            &ConsumerKey::CurrentAssignment("g".into(), "m2".into()),
            &ConsumerKey::TargetMember("g".into(), "m2".into()),
            &ConsumerKey::Member("g".into(), "m2".into()),
        ]
    );
    write(&mut group, &mut log);
    let loaded = replay(&log, now);
    assert_eq!(loaded.members.keys().collect::<Vec<_>>(), vec!["m1"]);
    // Deleting the group ends with its own tombstones, as Kafka's.
    let last: Vec<ConsumerKey> = group.tombstones().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        last[last.len() - 2..],
        [
            ConsumerKey::PartitionMetadata("g".into()),
            ConsumerKey::Metadata("g".into())
        ]
    );
}
