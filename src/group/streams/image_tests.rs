//! A streams group rebuilt from records: Kafka's own (the fixture of `make.py
//! --streams-groups`), and samsa's written for a group.

use super::*;
use crate::group::records::{decode_key, RecordKey};
use crate::topics::schema::kafka_streams_group_records;

/// Kafka's records of the word count up to both members running their tasks (the first
/// offset commit follows).
fn kafkas_running_group() -> Vec<Record> {
    kafka_streams_group_records()
        .into_iter()
        .map_while(|(k, v)| match decode_key(&k).unwrap() {
            RecordKey::Streams(key) => {
                let value = v.map(|v| rec::decode_value(&key, &v).unwrap());
                Some((key, value))
            }
            _ => None,
        })
        .collect()
}

fn settings() -> StreamsSettings {
    StreamsSettings {
        session_timeout: Duration::from_secs(45),
        heartbeat_interval: Duration::from_secs(5),
        max_size: 100,
        num_standby_replicas: 0,
        initial_rebalance_delay: Duration::ZERO,
        assignment_interval: Duration::ZERO,
        task_offset_interval: Duration::from_secs(60),
        acceptable_recovery_lag: 10_000,
    }
}

fn replayed(records: Vec<Record>, now: Instant) -> StreamsGroup {
    let mut group = StreamsGroup::new("sg");
    for (key, value) in records {
        group.replay(key, value, now);
    }
    group.loaded(now, &settings());
    group
}

fn active(group: &StreamsGroup) -> Vec<(String, i32)> {
    let mut tasks: Vec<(String, i32)> = group
        .members
        .values()
        .flat_map(|m| {
            m.assigned
                .active
                .iter()
                .flat_map(|(s, ps)| ps.iter().map(move |p| (s.clone(), *p)))
        })
        .collect();
    tasks.sort();
    tasks
}

#[tokio::test]
async fn a_group_kafka_wrote_loads_as_it_ran() {
    let now = Instant::now();
    let group = replayed(kafkas_running_group(), now);
    assert_eq!(group.members.len(), 2);
    let topology = group.topology.as_ref().unwrap();
    assert_eq!(topology.subtopologies.len(), 2);
    assert_eq!(group.state(), StreamsGroupState::Stable);
    let want: Vec<(String, i32)> = ["0", "1"]
        .iter()
        .flat_map(|s| (0..2).map(move |p| (s.to_string(), p)))
        .collect();
    assert_eq!(active(&group), want);
    for m in group.members.values() {
        assert_eq!(m.epoch, group.assignment_epoch);
        assert_eq!(group.target[&m.id], m.assigned);
        assert_eq!(m.session_deadline, now + settings().session_timeout);
    }
    // Loading writes nothing: what was read is what is on disk.
    assert!(group.unwritten_records(0).0.is_empty());
}

#[tokio::test]
async fn samsas_records_rebuild_the_same_group() {
    let now = Instant::now();
    let mut kafkas = replayed(kafkas_running_group(), now);
    kafkas.persisted = Persisted::default();
    let (records, image) = kafkas.unwritten_records(7);
    // Kafka's order: members, topology, group epoch, targets, target epoch, assignments.
    let kinds: Vec<&str> = records
        .iter()
        .map(|(k, _)| match k {
            StreamsKey::Member(..) => "member",
            StreamsKey::Topology(_) => "topology",
            StreamsKey::Metadata(_) => "metadata",
            StreamsKey::TargetMember(..) => "target",
            StreamsKey::TargetMetadata(_) => "target epoch",
            StreamsKey::CurrentAssignment(..) => "current",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "member",
            "member",
            "topology",
            "metadata",
            "target",
            "target",
            "target epoch",
            "current",
            "current"
        ]
    );
    // Each record survives its own bytes.
    for (key, value) in &records {
        let bytes = rec::encode_value(value.as_ref().unwrap());
        assert_eq!(
            &rec::decode_value(key, &bytes).unwrap(),
            value.as_ref().unwrap()
        );
    }
    let again = replayed(records, now);
    assert_eq!(again.image(), image);
    assert_eq!(active(&again), active(&kafkas));
    assert_eq!(
        (again.group_epoch, again.assignment_epoch),
        (kafkas.group_epoch, kafkas.assignment_epoch)
    );
}

#[tokio::test]
async fn a_member_that_leaves_is_tombstoned_and_nothing_else_changes() {
    let now = Instant::now();
    let mut group = replayed(kafkas_running_group(), now);
    let gone = group.members.keys().next().unwrap().clone();
    group.remove_member(&gone);
    let (records, image) = group.unwritten_records(0);
    assert_eq!(
        records,
        vec![
            (
                StreamsKey::CurrentAssignment("sg".into(), gone.clone()),
                None
            ),
            (StreamsKey::TargetMember("sg".into(), gone.clone()), None),
            (StreamsKey::Member("sg".into(), gone), None),
        ]
    );
    group.written(image);
    assert!(group.unwritten_records(0).0.is_empty());
    // Deleting the group tombstones the rest, the group's own records last.
    let tombstones = group.tombstones();
    assert!(tombstones.iter().all(|(_, v)| v.is_none()));
    assert_eq!(tombstones.len(), 3 + 3);
    assert_eq!(
        tombstones.last().unwrap().0,
        StreamsKey::Topology("sg".into())
    );
}
