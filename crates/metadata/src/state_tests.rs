use super::*;

fn register(
    m: &mut ClusterMetadata,
    id: BrokerId,
    incarnation: u64,
) -> Result<CommandResult, CommandError> {
    m.apply(&Command::RegisterBroker {
        id,
        host: format!("b{id}"),
        port: 9092,
        rack: None,
        incarnation,
        previous_epoch: None,
        registry_url: None,
    })
}

fn epoch_of(m: &ClusterMetadata, id: BrokerId) -> u64 {
    m.brokers[&id].epoch
}

/// Fences broker `id`'s current registration (any, for a broker that never registered).
fn fence(m: &ClusterMetadata, id: BrokerId) -> Command {
    Command::FenceBroker {
        id,
        epoch: m.brokers.get(&id).map(|b| b.epoch),
    }
}

/// Brokers 1..=n registered and unfenced.
fn cluster(n: BrokerId) -> ClusterMetadata {
    let mut m = ClusterMetadata::default();
    for id in 1..=n {
        register(&mut m, id, 1).unwrap();
        m.apply(&Command::UnfenceBroker {
            id,
            epoch: epoch_of(&m, id),
        })
        .unwrap();
    }
    m
}

fn create(
    m: &mut ClusterMetadata,
    name: &str,
    assignment: Vec<Vec<BrokerId>>,
) -> Result<CommandResult, CommandError> {
    let id = [name.as_bytes()[0]; 16];
    m.apply(&Command::CreateTopic {
        name: name.into(),
        id,
        configs: BTreeMap::new(),
        assignment,
    })
}

/// AlterPartition of t-`partition` quoting `(leader_epoch, partition_epoch)`.
fn alter_at(
    m: &mut ClusterMetadata,
    partition: u32,
    leader: BrokerId,
    epochs: (i32, i32),
    new_isr: Vec<BrokerId>,
) -> Result<CommandResult, CommandError> {
    let (leader_epoch, partition_epoch) = epochs;
    let topic = "t".into();
    m.apply(&Command::AlterPartition {
        topic,
        partition,
        leader,
        leader_epoch,
        partition_epoch,
        new_isr,
    })
}

fn reassign(
    m: &mut ClusterMetadata,
    partition: u32,
    target: Vec<BrokerId>,
) -> Result<CommandResult, CommandError> {
    m.apply(&Command::ReassignPartition {
        topic: "t".into(),
        partition,
        target,
    })
}

fn alter(
    m: &mut ClusterMetadata,
    leader: BrokerId,
    new_isr: Vec<BrokerId>,
) -> Result<CommandResult, CommandError> {
    let p = m.partition("t", 0).unwrap().clone();
    alter_at(m, 0, leader, (p.leader_epoch, p.partition_epoch), new_isr)
}

#[test]
fn registered_brokers_start_fenced_with_growing_epochs() {
    let mut m = ClusterMetadata::default();
    assert_eq!(
        register(&mut m, 1, 7),
        Ok(CommandResult::BrokerRegistered { epoch: 0 })
    );
    assert_eq!(
        register(&mut m, 2, 7),
        Ok(CommandResult::BrokerRegistered { epoch: 1 })
    );
    assert!(m.brokers[&1].fenced);
    assert_eq!(m.brokers[&1].host, "b1");
}

#[test]
fn same_incarnation_is_idempotent_and_older_is_rejected() {
    let mut m = cluster(1);
    assert_eq!(
        register(&mut m, 1, 1),
        Ok(CommandResult::BrokerRegistered { epoch: 0 })
    );
    assert!(
        !m.brokers[&1].fenced,
        "a retried registration must not fence"
    );
    register(&mut m, 1, 5).unwrap();
    assert_eq!(
        register(&mut m, 1, 4),
        Err(CommandError::StaleIncarnation {
            id: 1,
            current: 5,
            given: 4
        })
    );
}

#[test]
fn new_incarnation_fences_and_moves_leadership() {
    let mut m = cluster(2);
    create(&mut m, "t", vec![vec![1, 2]]).unwrap();
    assert_eq!(
        register(&mut m, 1, 2),
        Ok(CommandResult::BrokerRegistered { epoch: 2 })
    );
    assert!(m.brokers[&1].fenced);
    let p = m.partition("t", 0).unwrap();
    assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (2, 1, vec![2]));
}

#[test]
fn unfence_checks_the_broker_epoch() {
    let mut m = ClusterMetadata::default();
    register(&mut m, 1, 1).unwrap();
    register(&mut m, 1, 2).unwrap();
    let stale = m.apply(&Command::UnfenceBroker { id: 1, epoch: 0 });
    assert_eq!(
        stale,
        Err(CommandError::StaleBrokerEpoch {
            id: 1,
            current: 1,
            given: 0
        })
    );
    assert!(m.brokers[&1].fenced);
    assert_eq!(
        m.apply(&Command::UnfenceBroker { id: 1, epoch: 1 }),
        Ok(CommandResult::BrokerUnfenced { leaders_elected: 0 })
    );
    assert!(!m.brokers[&1].fenced);
    assert_eq!(
        m.apply(&Command::UnfenceBroker { id: 9, epoch: 0 }),
        Err(CommandError::UnknownBroker(9))
    );
}

#[test]
fn a_fence_of_an_earlier_registration_leaves_the_new_one_alone() {
    let mut m = cluster(2);
    create(&mut m, "t", vec![vec![1, 2]]).unwrap();
    let old_epoch = epoch_of(&m, 1);
    // Broker 1 restarts and is unfenced before a fence decided about its old process lands.
    register(&mut m, 1, 2).unwrap();
    let epoch = epoch_of(&m, 1);
    m.apply(&Command::UnfenceBroker { id: 1, epoch }).unwrap();
    let late = Command::FenceBroker {
        id: 1,
        epoch: Some(old_epoch),
    };
    assert_eq!(
        m.apply(&late),
        Err(CommandError::StaleBrokerEpoch {
            id: 1,
            current: epoch,
            given: old_epoch
        })
    );
    assert!(!m.brokers[&1].fenced);
    // A fence of the current registration, or one logged before fences carried an epoch,
    // still fences.
    let mut legacy = m.clone();
    assert!(legacy
        .apply(&Command::FenceBroker { id: 1, epoch: None })
        .is_ok());
    assert!(legacy.brokers[&1].fenced);
    assert!(m.apply(&fence(&m, 1)).is_ok());
    assert!(m.brokers[&1].fenced);
}

#[test]
fn a_fence_logged_without_an_epoch_still_reads() {
    let legacy: Command = serde_json::from_str(r#"{"FenceBroker":{"id":3}}"#).unwrap();
    assert_eq!(legacy, Command::FenceBroker { id: 3, epoch: None });
}

#[test]
fn create_topic_leads_with_first_unfenced_replica() {
    let mut m = cluster(3);
    m.apply(&fence(&m, 2)).unwrap();
    assert_eq!(
        create(&mut m, "t", vec![vec![2, 3, 1], vec![1, 2]]),
        Ok(CommandResult::TopicCreated { id: [b't'; 16] })
    );
    let p0 = m.partition("t", 0).unwrap();
    assert_eq!(
        (p0.leader, p0.isr.clone(), p0.replicas.clone()),
        (3, vec![3, 1], vec![2, 3, 1])
    );
    assert_eq!((p0.leader_epoch, p0.partition_epoch), (0, 0));
    assert_eq!(m.partition("t", 1).unwrap().leader, 1);
}

#[test]
fn create_topic_rejects_duplicates_and_bad_assignments() {
    let mut m = cluster(2);
    create(&mut m, "t", vec![vec![1]]).unwrap();
    assert_eq!(
        create(&mut m, "t", vec![vec![1]]),
        Err(CommandError::TopicExists("t".into()))
    );
    let same_id = m.apply(&Command::CreateTopic {
        name: "u".into(),
        id: [b't'; 16],
        configs: BTreeMap::new(),
        assignment: vec![vec![1]],
    });
    assert_eq!(same_id, Err(CommandError::TopicIdInUse("t".into())));
    assert!(matches!(
        create(&mut m, "uu", vec![]),
        Err(CommandError::InvalidAssignment(_))
    ));
    assert!(matches!(
        create(&mut m, "uu", vec![vec![]]),
        Err(CommandError::InvalidAssignment(_))
    ));
    assert!(matches!(
        create(&mut m, "uu", vec![vec![1, 1]]),
        Err(CommandError::InvalidAssignment(_))
    ));
    assert_eq!(
        create(&mut m, "uu", vec![vec![1, 7]]),
        Err(CommandError::UnknownBroker(7))
    );
    m.apply(&fence(&m, 2)).unwrap();
    assert_eq!(
        create(&mut m, "uu", vec![vec![2]]),
        Err(CommandError::NoAvailableReplica(vec![2]))
    );
    assert_eq!(m.topics.len(), 1, "failed creations must leave no trace");
}

#[test]
fn topic_configs_are_kept() {
    let mut m = cluster(1);
    let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
    m.apply(&Command::CreateTopic {
        name: "c".into(),
        id: [9; 16],
        configs: configs.clone(),
        assignment: vec![vec![1]],
    })
    .unwrap();
    assert_eq!(m.topics["c"].configs, configs);
}

#[test]
fn delete_topic() {
    let mut m = cluster(1);
    create(&mut m, "t", vec![vec![1]]).unwrap();
    assert_eq!(
        m.apply(&Command::DeleteTopic { name: "t".into() }),
        Ok(CommandResult::TopicDeleted)
    );
    assert!(m.topics.is_empty());
    assert_eq!(
        m.apply(&Command::DeleteTopic { name: "t".into() }),
        Err(CommandError::UnknownTopic("t".into()))
    );
}

#[test]
fn create_partitions_appends() {
    let mut m = cluster(2);
    create(&mut m, "t", vec![vec![1, 2]]).unwrap();
    let added = m.apply(&Command::CreatePartitions {
        topic: "t".into(),
        assignment: vec![vec![2, 1], vec![1]],
    });
    assert_eq!(added, Ok(CommandResult::PartitionsCreated { total: 3 }));
    assert_eq!(m.partition("t", 1).unwrap().leader, 2);
    assert_eq!(m.partition("t", 2).unwrap().replicas, vec![1]);
    let unknown = m.apply(&Command::CreatePartitions {
        topic: "x".into(),
        assignment: vec![vec![1]],
    });
    assert_eq!(unknown, Err(CommandError::UnknownTopic("x".into())));
    let bad = m.apply(&Command::CreatePartitions {
        topic: "t".into(),
        assignment: vec![vec![1], vec![5]],
    });
    assert_eq!(bad, Err(CommandError::UnknownBroker(5)));
    let none = m.apply(&Command::CreatePartitions {
        topic: "t".into(),
        assignment: vec![],
    });
    assert!(matches!(none, Err(CommandError::InvalidAssignment(_))));
    assert_eq!(m.topics["t"].partitions.len(), 3);
}

#[test]
fn fencing_the_leader_elects_the_next_unfenced_isr_member() {
    let mut m = cluster(3);
    create(&mut m, "t", vec![vec![1, 2, 3]]).unwrap();
    m.apply(&fence(&m, 2)).unwrap();
    let p = m.partition("t", 0).unwrap();
    assert_eq!(
        (p.leader, p.leader_epoch, p.partition_epoch, p.isr.clone()),
        (1, 0, 1, vec![1, 3])
    );
    assert_eq!(
        m.apply(&fence(&m, 1)),
        Ok(CommandResult::BrokerFenced {
            partitions_changed: 1
        })
    );
    let p = m.partition("t", 0).unwrap();
    assert_eq!(
        (p.leader, p.leader_epoch, p.partition_epoch, p.isr.clone()),
        (3, 1, 2, vec![3])
    );
}

#[test]
fn fencing_the_last_isr_member_leaves_no_leader_and_keeps_the_isr() {
    let mut m = cluster(2);
    create(&mut m, "t", vec![vec![1, 2]]).unwrap();
    alter(&mut m, 1, vec![1]).unwrap();
    m.apply(&fence(&m, 1)).unwrap();
    let p = m.partition("t", 0).unwrap();
    assert_eq!(
        (p.leader, p.leader_epoch, p.isr.clone()),
        (NO_LEADER, 1, vec![1]),
        "no unclean election of 2"
    );
    // Fencing another broker does not touch a leaderless partition.
    assert_eq!(
        m.apply(&fence(&m, 2)),
        Ok(CommandResult::BrokerFenced {
            partitions_changed: 0
        })
    );
}

#[test]
fn unfencing_restores_leaderless_partitions_it_is_in_sync_for() {
    let mut m = cluster(2);
    create(&mut m, "t", vec![vec![1, 2]]).unwrap();
    create(&mut m, "u", vec![vec![2, 1]]).unwrap();
    m.apply(&fence(&m, 2)).unwrap();
    m.apply(&fence(&m, 1)).unwrap();
    assert_eq!(m.partition("t", 0).unwrap().leader, NO_LEADER);
    let unfenced = m.apply(&Command::UnfenceBroker {
        id: 1,
        epoch: epoch_of(&m, 1),
    });
    assert_eq!(
        unfenced,
        Ok(CommandResult::BrokerUnfenced { leaders_elected: 2 })
    );
    for (t, leader_epoch) in [("t", 2), ("u", 3)] {
        let p = m.partition(t, 0).unwrap();
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch),
            (1, vec![1], leader_epoch),
            "{t}"
        );
    }
}

#[test]
fn fence_unknown_broker() {
    let mut m = ClusterMetadata::default();
    assert_eq!(m.apply(&fence(&m, 4)), Err(CommandError::UnknownBroker(4)));
}

#[test]
fn alter_partition_shrinks_and_expands_the_isr() {
    let mut m = cluster(3);
    create(&mut m, "t", vec![vec![1, 2, 3]]).unwrap();
    assert_eq!(
        alter(&mut m, 1, vec![1, 3]),
        Ok(CommandResult::PartitionAltered {
            leader_epoch: 0,
            partition_epoch: 1
        })
    );
    assert_eq!(
        alter(&mut m, 1, vec![1, 3, 2]),
        Ok(CommandResult::PartitionAltered {
            leader_epoch: 0,
            partition_epoch: 2
        })
    );
    assert_eq!(m.partition("t", 0).unwrap().isr, vec![1, 3, 2]);
}

#[test]
fn alter_partition_rejects_stale_epochs_distinctly() {
    let mut m = cluster(3);
    create(&mut m, "t", vec![vec![1, 2, 3]]).unwrap();
    alter(&mut m, 1, vec![1, 2]).unwrap();
    let stale_partition = alter_at(&mut m, 0, 1, (0, 0), vec![1]);
    assert_eq!(
        stale_partition,
        Err(CommandError::StalePartitionEpoch {
            current: 1,
            given: 0
        })
    );
    m.apply(&fence(&m, 1)).unwrap();
    let old_leader = alter_at(&mut m, 0, 1, (0, 2), vec![1]);
    assert_eq!(
        old_leader,
        Err(CommandError::FencedLeaderEpoch {
            current: 1,
            given: 0
        })
    );
    assert_eq!(
        alter(&mut m, 1, vec![1, 2]),
        Err(CommandError::NotLeader {
            current: 2,
            given: 1
        })
    );
}

#[test]
fn alter_partition_validates_the_new_isr() {
    let mut m = cluster(4);
    create(&mut m, "t", vec![vec![1, 2, 3]]).unwrap();
    assert!(matches!(
        alter(&mut m, 1, vec![2, 3]),
        Err(CommandError::InvalidIsr(_))
    ));
    assert!(matches!(
        alter(&mut m, 1, vec![1, 4]),
        Err(CommandError::InvalidIsr(_))
    ));
    assert!(matches!(
        alter(&mut m, 1, vec![1, 2, 2]),
        Err(CommandError::InvalidIsr(_))
    ));
    alter(&mut m, 1, vec![1]).unwrap();
    m.apply(&fence(&m, 2)).unwrap();
    assert_eq!(
        alter(&mut m, 1, vec![1, 2]),
        Err(CommandError::IneligibleReplica(2))
    );
    let missing = alter_at(&mut m, 3, 1, (0, 0), vec![1]);
    assert_eq!(
        missing,
        Err(CommandError::UnknownPartition {
            topic: "t".into(),
            partition: 3
        })
    );
}

#[test]
fn reassignment_adds_then_drops_replicas_once_the_target_is_in_sync() {
    let mut m = cluster(4);
    create(&mut m, "t", vec![vec![1, 2]]).unwrap();
    let started = reassign(&mut m, 0, vec![3, 4]);
    assert_eq!(
        started,
        Ok(CommandResult::ReassignmentStarted { complete: false })
    );
    let p = m.partition("t", 0).unwrap();
    assert_eq!(
        (p.replicas.clone(), p.target_replicas.clone(), p.isr.clone()),
        (vec![3, 4, 1, 2], vec![3, 4], vec![1, 2])
    );
    alter(&mut m, 1, vec![1, 2, 3]).unwrap();
    assert_eq!(
        m.partition("t", 0).unwrap().replicas.len(),
        4,
        "4 is not in sync yet"
    );
    let done = alter(&mut m, 1, vec![1, 2, 3, 4]).unwrap();
    let p = m.partition("t", 0).unwrap();
    assert_eq!(
        done,
        CommandResult::PartitionAltered {
            leader_epoch: 1,
            partition_epoch: p.partition_epoch
        }
    );
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![3, 4], vec![3, 4], 3)
    );
    assert!(p.target_replicas.is_empty());
}

#[test]
fn reassignment_within_the_isr_completes_at_once() {
    let mut m = cluster(3);
    create(&mut m, "t", vec![vec![1, 2, 3]]).unwrap();
    let done = reassign(&mut m, 0, vec![2, 1]);
    assert_eq!(
        done,
        Ok(CommandResult::ReassignmentStarted { complete: true })
    );
    let p = m.partition("t", 0).unwrap();
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader, p.leader_epoch),
        (vec![2, 1], vec![1, 2], 1, 0)
    );
    assert_eq!(p.partition_epoch, 1);
}

#[test]
fn reassignment_validates_its_target() {
    let mut m = cluster(2);
    create(&mut m, "t", vec![vec![1]]).unwrap();
    let unknown = reassign(&mut m, 0, vec![8]);
    assert_eq!(unknown, Err(CommandError::UnknownBroker(8)));
    let empty = reassign(&mut m, 0, vec![]);
    assert!(matches!(empty, Err(CommandError::InvalidAssignment(_))));
    let missing = reassign(&mut m, 1, vec![2]);
    assert_eq!(
        missing,
        Err(CommandError::UnknownPartition {
            topic: "t".into(),
            partition: 1
        })
    );
}

#[test]
fn state_round_trips_through_serde() {
    let mut m = cluster(2);
    create(&mut m, "t", vec![vec![1, 2]]).unwrap();
    let json = serde_json::to_vec(&m).unwrap();
    assert_eq!(serde_json::from_slice::<ClusterMetadata>(&json).unwrap(), m);
}

#[test]
fn a_new_target_replaces_the_one_in_progress_and_cancel_restores_the_start() {
    let mut m = cluster(5);
    create(&mut m, "t", vec![vec![1, 2]]).unwrap();
    reassign(&mut m, 0, vec![3, 4]).unwrap();
    let p = m.partition("t", 0).unwrap();
    assert_eq!(
        (p.adding_replicas.clone(), p.removing_replicas()),
        (vec![3, 4], vec![1, 2])
    );
    // 4 is replaced by 5 before it caught up: it leaves at once; 1 and 2 stay the originals.
    reassign(&mut m, 0, vec![3, 5]).unwrap();
    let p = m.partition("t", 0).unwrap();
    assert_eq!(
        (
            p.replicas.clone(),
            p.adding_replicas.clone(),
            p.original_replicas()
        ),
        (vec![3, 5, 1, 2], vec![3, 5], vec![1, 2])
    );
    alter(&mut m, 1, vec![1, 2, 3]).unwrap();
    let epoch_before = m.partition("t", 0).unwrap().partition_epoch;
    assert_eq!(
        m.apply(&Command::CancelReassignment {
            topic: "t".into(),
            partition: 0
        }),
        Ok(CommandResult::ReassignmentCancelled)
    );
    let p = m.partition("t", 0).unwrap();
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![1, 2], vec![1, 2], 1)
    );
    assert!(p.target_replicas.is_empty() && p.adding_replicas.is_empty());
    assert_eq!(p.partition_epoch, epoch_before + 1);
    assert_eq!(
        m.apply(&Command::CancelReassignment {
            topic: "t".into(),
            partition: 0
        }),
        Err(CommandError::NoReassignmentInProgress {
            topic: "t".into(),
            partition: 0
        })
    );
}

#[test]
fn topic_configs_are_replaced() {
    let mut m = cluster(1);
    create(&mut m, "t", vec![vec![1]]).unwrap();
    let configs = BTreeMap::from([("retention.ms".to_string(), "5".to_string())]);
    let alter = Command::AlterTopicConfigs {
        topic: "t".into(),
        configs: configs.clone(),
    };
    assert_eq!(m.apply(&alter), Ok(CommandResult::TopicConfigsAltered));
    assert_eq!(m.topics["t"].configs, configs);
    let unknown = Command::AlterTopicConfigs {
        topic: "u".into(),
        configs,
    };
    assert_eq!(
        m.apply(&unknown),
        Err(CommandError::UnknownTopic("u".into()))
    );
}

#[test]
fn group_configs_are_replaced_and_removed_when_empty() {
    let mut m = cluster(1);
    let configs = BTreeMap::from([(
        "share.auto.offset.reset".to_string(),
        "earliest".to_string(),
    )]);
    // A group needs no members (nor any existence) to be configured, as in Kafka.
    let alter = |configs: &BTreeMap<String, String>| Command::AlterGroupConfigs {
        group: "g".into(),
        configs: configs.clone(),
    };
    assert_eq!(
        m.apply(&alter(&configs)),
        Ok(CommandResult::GroupConfigsAltered)
    );
    assert_eq!(m.group_configs["g"], configs);
    assert_eq!(
        m.apply(&alter(&BTreeMap::new())),
        Ok(CommandResult::GroupConfigsAltered)
    );
    assert!(m.group_configs.is_empty());
}

#[test]
fn producer_id_blocks_never_overlap() {
    let mut m = cluster(2);
    let first = m.apply(&Command::AllocateProducerIds {
        broker: 1,
        count: 1000,
    });
    let second = m.apply(&Command::AllocateProducerIds {
        broker: 2,
        count: 1000,
    });
    assert_eq!(
        first,
        Ok(CommandResult::ProducerIdsAllocated {
            first: 0,
            count: 1000
        })
    );
    assert_eq!(
        second,
        Ok(CommandResult::ProducerIdsAllocated {
            first: 1000,
            count: 1000
        })
    );
    let unknown = m.apply(&Command::AllocateProducerIds {
        broker: 9,
        count: 1,
    });
    assert_eq!(unknown, Err(CommandError::UnknownBroker(9)));
}

#[test]
fn the_producer_id_floor_only_rises_and_moves_the_next_block_past_it() {
    let mut m = cluster(1);
    let raise = |floor| Command::RaiseProducerIdFloor { floor };
    assert_eq!(
        m.apply(&raise(5000)),
        Ok(CommandResult::ProducerIdFloorRaised { floor: 5000 })
    );
    assert_eq!(
        m.apply(&raise(2000)),
        Ok(CommandResult::ProducerIdFloorRaised { floor: 5000 })
    );
    let block = m.apply(&Command::AllocateProducerIds {
        broker: 1,
        count: 1000,
    });
    assert_eq!(
        block,
        Ok(CommandResult::ProducerIdsAllocated {
            first: 5000,
            count: 1000
        })
    );
    // Below the ids already handed out, the floor leaves the next block where it was.
    m.apply(&raise(5500)).unwrap();
    assert_eq!((m.producer_id_floor, m.next_producer_id), (5500, 6000));
    let json = serde_json::to_vec(&m).unwrap();
    let back: ClusterMetadata = serde_json::from_slice(&json).unwrap();
    assert_eq!(back.producer_id_floor, 5500);
}

#[test]
fn the_preferred_leader_takes_its_partition_back_once_in_sync() {
    let mut m = cluster(3);
    create(&mut m, "t", vec![vec![1, 2, 3]]).unwrap();
    let elect = Command::ElectPreferredLeader {
        topic: "t".into(),
        partition: 0,
    };
    assert_eq!(m.apply(&elect), Err(CommandError::ElectionNotNeeded));
    m.apply(&fence(&m, 1)).unwrap();
    assert_eq!(m.partition("t", 0).unwrap().leader, 2);
    assert_eq!(
        m.apply(&elect),
        Err(CommandError::PreferredLeaderNotAvailable(1))
    );
    register(&mut m, 1, 2).unwrap();
    m.apply(&Command::UnfenceBroker {
        id: 1,
        epoch: epoch_of(&m, 1),
    })
    .unwrap();
    assert_eq!(
        m.apply(&elect),
        Err(CommandError::PreferredLeaderNotAvailable(1)),
        "not in sync yet"
    );
    assert_eq!(m.preferred_leader_imbalance(), vec![(1, 1, vec![])]);
    alter(&mut m, 2, vec![2, 3, 1]).unwrap();
    assert_eq!(
        m.preferred_leader_imbalance(),
        vec![(1, 1, vec![("t".to_string(), 0)])]
    );
    let before = m.partition("t", 0).unwrap().clone();
    assert_eq!(
        m.apply(&elect),
        Ok(CommandResult::LeaderElected { leader: 1 })
    );
    let p = m.partition("t", 0).unwrap();
    assert_eq!(
        (p.leader, p.leader_epoch, p.partition_epoch),
        (1, before.leader_epoch + 1, before.partition_epoch + 1)
    );
}

#[test]
fn an_unclean_election_gives_a_leaderless_partition_any_live_replica() {
    let mut m = cluster(3);
    create(&mut m, "t", vec![vec![1, 2]]).unwrap();
    let elect = Command::ElectUncleanLeader {
        topic: "t".into(),
        partition: 0,
    };
    assert_eq!(m.apply(&elect), Err(CommandError::ElectionNotNeeded));
    // 2 falls out of the ISR, then 1 dies: no in-sync replica is left to lead.
    alter(&mut m, 1, vec![1]).unwrap();
    m.apply(&fence(&m, 1)).unwrap();
    assert_eq!(m.partition("t", 0).unwrap().leader, NO_LEADER);
    assert_eq!(
        m.apply(&elect),
        Ok(CommandResult::LeaderElected { leader: 2 })
    );
    let p = m.partition("t", 0).unwrap();
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
}

#[test]
fn unregistering_a_broker_moves_its_partitions_away_and_forgets_it() {
    let mut m = cluster(3);
    create(&mut m, "t", vec![vec![2, 1, 3], vec![1, 3, 2]]).unwrap();
    let unregistered = m.apply(&Command::UnregisterBroker { id: 2 });
    assert_eq!(
        unregistered,
        Ok(CommandResult::BrokerUnregistered {
            partitions_changed: 2
        })
    );
    assert!(!m.brokers.contains_key(&2));
    let p = &m.topics["t"].partitions;
    assert_eq!((p[0].leader, p[0].isr.clone()), (1, vec![1, 3]));
    assert_eq!((p[1].leader, p[1].isr.clone()), (1, vec![1, 3]));
    // Gone: a second unregistration, or a fence, finds no broker; it may register again.
    assert_eq!(
        m.apply(&Command::UnregisterBroker { id: 2 }),
        Err(CommandError::UnknownBroker(2))
    );
    assert!(register(&mut m, 2, 2).is_ok());
}

#[test]
fn a_registration_carries_the_registry_url_and_older_entries_read_without_it() {
    let old = r#"{"RegisterBroker":{"id":4,"host":"h","port":9092,"rack":null,"incarnation":1}}"#;
    let command: Command = serde_json::from_str(old).unwrap();
    let mut m = ClusterMetadata::default();
    m.apply(&command).unwrap();
    assert_eq!(m.brokers[&4].registry_url, None);
    let url = Some("https://h:8081".to_owned());
    let new = Command::RegisterBroker {
        id: 4,
        host: "h".into(),
        port: 9092,
        rack: None,
        incarnation: 2,
        previous_epoch: None,
        registry_url: url.clone(),
    };
    let written = serde_json::to_string(&new).unwrap();
    m.apply(&serde_json::from_str(&written).unwrap()).unwrap();
    assert_eq!(m.brokers[&4].registry_url, url);
    // A broker without a registry writes its registration as before.
    let plain = Command::RegisterBroker {
        id: 4,
        host: "h".into(),
        port: 9092,
        rack: None,
        incarnation: 3,
        previous_epoch: None,
        registry_url: None,
    };
    assert!(!serde_json::to_string(&plain)
        .unwrap()
        .contains("registry_url"));
}
