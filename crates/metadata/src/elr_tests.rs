use std::collections::BTreeMap;

use crate::features::{FeatureCommand, FeatureUpdate, UpgradeType, ELR_VERSION};
use crate::state::{BrokerId, ClusterMetadata, Command, CommandError, CommandResult, NO_LEADER};

/// Registers a new incarnation of broker `id`: after a clean shutdown it quotes the epoch it
/// stopped at, after a crash nothing.
fn restart(m: &mut ClusterMetadata, id: BrokerId, clean: bool) {
    let previous = m.brokers.get(&id);
    let incarnation = previous.map_or(1, |b| b.incarnation + 1);
    let previous_epoch = previous.map(|b| b.epoch).filter(|_| clean);
    m.apply(&Command::RegisterBroker {
        id,
        host: format!("b{id}"),
        port: 9092,
        rack: None,
        incarnation,
        previous_epoch,
        registry_url: None,
    })
    .unwrap();
}

fn unfence(m: &mut ClusterMetadata, id: BrokerId) -> Result<CommandResult, CommandError> {
    let epoch = m.brokers[&id].epoch;
    m.apply(&Command::UnfenceBroker { id, epoch })
}

fn fence(m: &mut ClusterMetadata, id: BrokerId) {
    let epoch = Some(m.brokers[&id].epoch);
    m.apply(&Command::FenceBroker { id, epoch }).unwrap();
}

/// Brokers 1..=3 unfenced, and topic `t` on all three with `min.insync.replicas=2`, in a
/// cluster at `eligible.leader.replicas.version` 1.
fn three_replicas_min_isr_two() -> ClusterMetadata {
    let mut m = ClusterMetadata::default();
    let levels = BTreeMap::from([(ELR_VERSION.to_string(), 1)]);
    m.apply(&Command::Features(FeatureCommand::Bootstrap { levels }))
        .unwrap();
    with_topic(m)
}

/// As [`three_replicas_min_isr_two`], in a cluster that never enabled the ELR.
fn without_elr() -> ClusterMetadata {
    with_topic(ClusterMetadata::default())
}

fn with_topic(mut m: ClusterMetadata) -> ClusterMetadata {
    for id in 1..=3 {
        restart(&mut m, id, false);
        unfence(&mut m, id).unwrap();
    }
    let configs = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
    m.apply(&Command::CreateTopic {
        name: "t".into(),
        id: [7; 16],
        configs,
        assignment: vec![vec![1, 2, 3]],
    })
    .unwrap();
    m
}

/// (leader, ISR, ELR, last known ELR) of t-0.
fn state(m: &ClusterMetadata) -> (BrokerId, Vec<BrokerId>, Vec<BrokerId>, Vec<BrokerId>) {
    let p = m.partition("t", 0).unwrap();
    (
        p.leader,
        p.isr.clone(),
        p.elr.clone(),
        p.last_known_elr.clone(),
    )
}

fn alter(m: &mut ClusterMetadata, new_isr: Vec<BrokerId>) -> Result<CommandResult, CommandError> {
    let p = m.partition("t", 0).unwrap();
    let command = Command::AlterPartition {
        topic: "t".into(),
        partition: 0,
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr,
    };
    m.apply(&command)
}

#[test]
fn replicas_leaving_an_isr_below_the_minimum_become_eligible() {
    let mut m = three_replicas_min_isr_two();
    fence(&mut m, 3);
    assert_eq!(
        state(&m),
        (1, vec![1, 2], vec![], vec![]),
        "still at the minimum"
    );
    fence(&mut m, 2);
    assert_eq!(state(&m), (1, vec![1], vec![2], vec![]));
    fence(&mut m, 1);
    assert_eq!(
        state(&m),
        (NO_LEADER, vec![], vec![1, 2], vec![1]),
        "the last leader joins the ELR and is the last known leader"
    );
}

#[test]
fn an_eligible_replica_that_comes_back_leads_alone_in_the_isr() {
    let mut m = three_replicas_min_isr_two();
    for id in [3, 2, 1] {
        fence(&mut m, id);
    }
    let epoch = m.partition("t", 0).unwrap().leader_epoch;
    restart(&mut m, 2, true);
    assert_eq!(state(&m), (NO_LEADER, vec![], vec![1, 2], vec![1]), "clean");
    assert_eq!(
        unfence(&mut m, 2),
        Ok(CommandResult::BrokerUnfenced { leaders_elected: 1 })
    );
    assert_eq!(state(&m), (2, vec![2], vec![1], vec![]));
    assert_eq!(m.partition("t", 0).unwrap().leader_epoch, epoch + 1);
    // The others catch up and rejoin; at the minimum the ELR is cleared.
    restart(&mut m, 3, true);
    unfence(&mut m, 3).unwrap();
    alter(&mut m, vec![2, 3]).unwrap();
    assert_eq!(state(&m), (2, vec![2, 3], vec![], vec![]));
}

#[test]
fn a_crashed_broker_is_no_longer_eligible() {
    let mut m = three_replicas_min_isr_two();
    for id in [3, 2, 1] {
        fence(&mut m, id);
    }
    restart(&mut m, 1, false);
    assert_eq!(state(&m), (NO_LEADER, vec![], vec![2], vec![1]));
    unfence(&mut m, 1).unwrap();
    assert_eq!(
        state(&m),
        (NO_LEADER, vec![], vec![2], vec![1]),
        "1 may lose acknowledged records: it waits for 2"
    );
    restart(&mut m, 2, true);
    unfence(&mut m, 2).unwrap();
    assert_eq!(state(&m), (2, vec![2], vec![], vec![]));
}

#[test]
fn with_isr_and_elr_empty_the_last_known_leader_is_elected() {
    let mut m = three_replicas_min_isr_two();
    for id in [3, 2, 1] {
        fence(&mut m, id);
    }
    restart(&mut m, 2, false);
    restart(&mut m, 1, false);
    assert_eq!(state(&m), (NO_LEADER, vec![], vec![], vec![1]));
    restart(&mut m, 3, true);
    unfence(&mut m, 3).unwrap();
    assert_eq!(
        state(&m).0,
        NO_LEADER,
        "3 left while the ISR was at the minimum"
    );
    unfence(&mut m, 1).unwrap();
    assert_eq!(state(&m), (1, vec![1], vec![], vec![]));
}

#[test]
fn a_crash_of_a_live_isr_member_takes_it_out_of_isr_and_elr() {
    let mut m = three_replicas_min_isr_two();
    fence(&mut m, 3);
    fence(&mut m, 2);
    // The leader restarts before its session expired: it was never fenced.
    restart(&mut m, 1, false);
    assert_eq!(state(&m), (NO_LEADER, vec![], vec![2], vec![1]));
}

#[test]
fn an_isr_shrink_by_the_leader_fills_the_elr_and_a_regrowth_clears_it() {
    let mut m = three_replicas_min_isr_two();
    alter(&mut m, vec![1]).unwrap();
    assert_eq!(state(&m), (1, vec![1], vec![2, 3], vec![]));
    alter(&mut m, vec![1, 3]).unwrap();
    assert_eq!(state(&m), (1, vec![1, 3], vec![], vec![]));
}

#[test]
fn a_changed_minimum_clears_the_elr() {
    let mut m = three_replicas_min_isr_two();
    alter(&mut m, vec![1]).unwrap();
    let epoch = m.partition("t", 0).unwrap().partition_epoch;
    let same = m.topics["t"].configs.clone();
    m.apply(&Command::AlterTopicConfigs {
        topic: "t".into(),
        configs: same,
    })
    .unwrap();
    assert_eq!(state(&m).2, vec![2, 3], "an unchanged minimum keeps it");
    m.apply(&Command::AlterTopicConfigs {
        topic: "t".into(),
        configs: BTreeMap::new(),
    })
    .unwrap();
    assert_eq!(state(&m), (1, vec![1], vec![], vec![]));
    assert_eq!(m.partition("t", 0).unwrap().partition_epoch, epoch + 1);
    // Now under the cluster's minimum, which a change also clears after.
    m.apply(&Command::SetDefaultMinInsyncReplicas { value: 3 })
        .unwrap();
    assert_eq!(m.effective_min_isr("t"), 3);
    alter(&mut m, vec![1, 2, 3]).unwrap();
    alter(&mut m, vec![1, 2]).unwrap();
    assert_eq!(state(&m).2, vec![3]);
    m.apply(&Command::SetDefaultMinInsyncReplicas { value: 2 })
        .unwrap();
    assert_eq!(state(&m).2, Vec::<BrokerId>::new());
}

#[test]
fn the_minimum_is_capped_at_the_replication_factor() {
    let mut m = three_replicas_min_isr_two();
    m.apply(&Command::SetDefaultMinInsyncReplicas { value: 5 })
        .unwrap();
    m.apply(&Command::AlterTopicConfigs {
        topic: "t".into(),
        configs: BTreeMap::new(),
    })
    .unwrap();
    assert_eq!(m.effective_min_isr("t"), 3);
    assert_eq!(m.effective_min_isr("unknown"), 1);
}

#[test]
fn an_unclean_election_prefers_the_elr_and_clears_it_otherwise() {
    let mut m = three_replicas_min_isr_two();
    for id in [3, 2, 1] {
        fence(&mut m, id);
    }
    restart(&mut m, 1, false);
    restart(&mut m, 2, false);
    restart(&mut m, 3, true);
    unfence(&mut m, 3).unwrap();
    assert_eq!(state(&m), (NO_LEADER, vec![], vec![], vec![1]));
    let elect = Command::ElectUncleanLeader {
        topic: "t".into(),
        partition: 0,
    };
    assert_eq!(
        m.apply(&elect),
        Ok(CommandResult::LeaderElected { leader: 3 })
    );
    assert_eq!(state(&m), (3, vec![3], vec![], vec![]));
}

#[test]
fn partitions_recorded_before_the_elr_read_as_having_none() {
    let old = r#"{"replicas":[1,2],"isr":[1],"leader":1,"leader_epoch":3,
        "partition_epoch":4,"target_replicas":[]}"#;
    let p: crate::state::Partition = serde_json::from_str(old).unwrap();
    assert!(p.elr.is_empty() && p.last_known_elr.is_empty());
    // And a partition without an ELR is written as before.
    let written = serde_json::to_string(&p).unwrap();
    assert!(!written.contains("elr"), "{written}");
}

#[test]
fn without_the_feature_the_last_isr_member_stays_and_nothing_is_eligible() {
    let mut m = without_elr();
    assert!(!m.elr_enabled());
    for id in [3, 2, 1] {
        fence(&mut m, id);
    }
    assert_eq!(state(&m), (NO_LEADER, vec![1], vec![], vec![]));
    restart(&mut m, 2, true);
    unfence(&mut m, 2).unwrap();
    assert_eq!(state(&m).0, NO_LEADER, "2 is not in the ISR");
    restart(&mut m, 1, false);
    unfence(&mut m, 1).unwrap();
    assert_eq!(state(&m), (1, vec![1], vec![], vec![]));
}

#[test]
fn a_downgrade_stops_electing_into_the_elr_and_drops_it_at_the_next_change() {
    let mut m = three_replicas_min_isr_two();
    alter(&mut m, vec![1]).unwrap();
    assert_eq!(state(&m).2, vec![2, 3]);
    let downgrade = FeatureCommand::Update {
        updates: vec![FeatureUpdate {
            name: ELR_VERSION.into(),
            level: 0,
            upgrade: UpgradeType::SafeDowngrade,
        }],
        supported: BTreeMap::from([(ELR_VERSION.to_string(), (0, 1))]),
        controller: 1,
        validate_only: false,
    };
    m.apply(&Command::Features(downgrade)).unwrap();
    assert!(!m.elr_enabled());
    // Kafka 4.4 writes nothing for the partitions when the feature goes down: their next
    // change drops the ELR.
    assert_eq!(state(&m).2, vec![2, 3]);
    alter(&mut m, vec![1, 2]).unwrap();
    assert_eq!(state(&m), (1, vec![1, 2], vec![], vec![]));
}
