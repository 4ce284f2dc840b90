//! What a deleted topic leaves in share groups (KIP-932), cleaned up as Kafka's coordinators
//! clean it when the metadata deletes a topic (`GroupCoordinatorService.handleTopicsDeletion`,
//! `ShareCoordinatorService.handleTopicsDeletion`): the share groups this broker coordinates
//! forget the topic's share-partitions (`ShareGroupStatePartitionMetadata`), the share
//! coordinator deletes their state, and the share-partition leader drops what it holds.
//!
//! The same watch drops the share-partitions of a partition whose leadership left this
//! broker or came back at a new leader epoch, as Kafka's `SharePartitionManager` removes
//! them when its partition listener hears the broker became a follower: their in-memory
//! acquisitions are then stale, and the next leader (or this one, later) loads the state
//! afresh from the share coordinator.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};

use samsa_metadata::ClusterMetadata;
use tokio::sync::watch;
use uuid::Uuid;

use crate::broker::Broker;

fn topic_ids(metadata: &ClusterMetadata) -> BTreeSet<Uuid> {
    metadata
        .topics
        .values()
        .map(|t| Uuid::from_bytes(t.id))
        .collect()
}

/// The partitions `node` leads, with their leader epochs.
fn led_by(metadata: &ClusterMetadata, node: i32) -> BTreeMap<(Uuid, i32), i32> {
    let mut led = BTreeMap::new();
    for topic in metadata.topics.values() {
        for (index, partition) in topic.partitions.iter().enumerate() {
            if partition.leader == node {
                let id = (Uuid::from_bytes(topic.id), index as i32);
                led.insert(id, partition.leader_epoch);
            }
        }
    }
    led
}

/// The partitions led `before` that are not led `after`, or are at another leader epoch.
fn moved(
    before: &BTreeMap<(Uuid, i32), i32>,
    after: &BTreeMap<(Uuid, i32), i32>,
) -> BTreeSet<(Uuid, i32)> {
    before
        .iter()
        .filter(|(p, epoch)| after.get(p) != Some(epoch))
        .map(|(p, _)| *p)
        .collect()
}

/// Watches the metadata for topics that go and leaderships that move, until shutdown.
pub(super) async fn share_cleanup(
    broker: Weak<Broker>,
    mut metadata: watch::Receiver<Arc<ClusterMetadata>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(node) = broker.upgrade().map(|b| b.node_id()) else {
        return;
    };
    let (mut known, mut led) = {
        let first = metadata.borrow_and_update();
        (topic_ids(&first), led_by(&first, node))
    };
    loop {
        tokio::select! {
            changed = metadata.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
        let (now, now_led) = {
            let current = metadata.borrow_and_update();
            (topic_ids(&current), led_by(&current, node))
        };
        let deleted: BTreeSet<Uuid> = known.difference(&now).copied().collect();
        let moved = moved(&led, &now_led);
        (known, led) = (now, now_led);
        if deleted.is_empty() && moved.is_empty() {
            continue;
        }
        let Some(broker) = broker.upgrade() else {
            return;
        };
        if !moved.is_empty() {
            broker
                .share_leader
                .forget(|k| moved.contains(&(k.topic_id, k.partition)));
        }
        if deleted.is_empty() {
            continue;
        }
        broker
            .share_leader
            .forget(|k| deleted.contains(&k.topic_id));
        let (groups, ids) = (broker.groups.clone(), deleted.clone());
        let recorded = crate::event_loop::spawn_blocking(move || groups.share_topics_deleted(&ids));
        if let Err(err) = recorded.await {
            tracing::error!("cannot record deleted topics in the share groups: {err}");
        }
        broker
            .share_state
            .coordinator()
            .topics_deleted(&deleted)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use samsa_metadata::state::{Partition, Topic};

    use super::*;

    fn with_leaders(leaders: &[(i32, i32)]) -> ClusterMetadata {
        let mut metadata = ClusterMetadata::default();
        let partitions = leaders
            .iter()
            .map(|&(leader, leader_epoch)| Partition {
                replicas: vec![leader],
                isr: vec![leader],
                leader,
                leader_epoch,
                partition_epoch: 0,
                target_replicas: Vec::new(),
                adding_replicas: Vec::new(),
                elr: Vec::new(),
                last_known_elr: Vec::new(),
            })
            .collect();
        let topic = Topic {
            name: "queue".into(),
            id: [7; 16],
            configs: Default::default(),
            partitions,
        };
        metadata
            .topics
            .insert("queue".into(), std::sync::Arc::new(topic));
        metadata
    }

    #[test]
    fn a_partition_led_elsewhere_or_at_a_new_epoch_has_moved() {
        let id = Uuid::from_bytes([7; 16]);
        // Node 1 leads partitions 0, 1 and 2 at epoch 3; then 0 goes to node 2, 1 comes
        // back to node 1 at epoch 5 (it left and returned between two looks), 2 stays.
        let before = led_by(&with_leaders(&[(1, 3), (1, 3), (1, 3)]), 1);
        let after = led_by(&with_leaders(&[(2, 4), (1, 5), (1, 3)]), 1);
        assert_eq!(moved(&before, &after), BTreeSet::from([(id, 0), (id, 1)]));
        assert!(moved(&after, &after).is_empty());
        // Gaining a partition is no move.
        assert!(moved(&led_by(&with_leaders(&[(2, 4)]), 1), &after).is_empty());
    }
}
