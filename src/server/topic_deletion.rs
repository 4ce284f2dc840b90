//! What a deleted topic leaves in share groups (KIP-932), cleaned up as Kafka's coordinators
//! clean it when the metadata deletes a topic (`GroupCoordinatorService.handleTopicsDeletion`,
//! `ShareCoordinatorService.handleTopicsDeletion`): the share groups this broker coordinates
//! forget the topic's share-partitions (`ShareGroupStatePartitionMetadata`), the share
//! coordinator deletes their state, and the share-partition leader drops what it holds.

use std::collections::BTreeSet;
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

/// Watches the metadata for topics that go, until shutdown.
pub(super) async fn share_cleanup(
    broker: Weak<Broker>,
    mut metadata: watch::Receiver<Arc<ClusterMetadata>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut known = topic_ids(&metadata.borrow_and_update());
    loop {
        tokio::select! {
            changed = metadata.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
        let now = topic_ids(&metadata.borrow_and_update());
        let deleted: BTreeSet<Uuid> = known.difference(&now).copied().collect();
        known = now;
        if deleted.is_empty() {
            continue;
        }
        let Some(broker) = broker.upgrade() else {
            return;
        };
        broker
            .share_leader
            .forget(|k| deleted.contains(&k.topic_id));
        broker.groups.share_topics_deleted(&deleted);
        broker
            .share_state
            .coordinator()
            .topics_deleted(&deleted)
            .await;
    }
}
