//! The groups' clock: session expiry and rebalance deadlines every tick, offset retention on
//! its own interval, and the shutdown that answers whoever still waits.

use super::store::Entry;
use super::{offset_key, GroupCoordinator, GroupState};
use crate::clock::now_ms;
use crate::error::BrokerError;
use tokio::time::Instant;

impl GroupCoordinator {
    /// Moves every loaded group's clock: session expiry, rebalance deadlines.
    pub fn tick(&self) {
        let groups = self.groups.read().all();
        let (now, ms) = (Instant::now(), now_ms());
        for group in groups {
            let mut group = group.lock();
            // Dropped (deleted, expired or unloaded) since the snapshot: nothing to time.
            if group.state == GroupState::Dead {
                continue;
            }
            group.tick(now, ms, &self.settings);
            self.tick_consumer_group(&mut group, now);
            self.tick_streams_group(&mut group, now);
            self.tick_share_group(&mut group, now);
            self.persist_if_dirty(&mut group);
        }
    }

    /// Deletes offsets past retention, and groups left with neither members nor offsets.
    pub fn expire_offsets(&self) {
        let retention_ms = self.config.offsets_retention_minutes.saturating_mul(60_000);
        let groups = self.groups.read().all();
        let now = now_ms();
        for group in groups {
            let mut group = group.lock_arc();
            if group.state == GroupState::Dead {
                continue;
            }
            let empty = group.is_empty();
            let base = group.state_timestamp;
            // Kafka keeps an offset an open transaction is about to replace.
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|((t, p), _)| !group.pending.contains(t, *p))
                .filter(|(_, o)| match o.expire_timestamp {
                    Some(at) => at <= now,
                    None => {
                        empty && o.commit_timestamp.max(base).saturating_add(retention_ms) <= now
                    }
                })
                .map(|(k, _)| k.clone())
                .collect();
            if !expired.is_empty() {
                let entries: Vec<Entry> = expired
                    .iter()
                    .map(|(t, p)| Entry::Offset(offset_key(&group.id, t, *p), None))
                    .collect();
                if let Err(err) = self.store.append(&group.id, &entries, now) {
                    tracing::error!(group = %group.id, "cannot expire offsets: {err}");
                    continue;
                }
                for key in &expired {
                    group.offsets.remove(key);
                }
                tracing::info!(group = %group.id, partitions = expired.len(), "expired committed offsets");
            }
            // A member between MEMBER_ID_REQUIRED and its second JoinGroup keeps the group.
            let joining = !group.pending_members.is_empty();
            if empty && !joining && group.offsets.is_empty() && group.pending.is_empty() {
                if let Err(err) = self.drop_group(&mut group) {
                    tracing::error!(group = %group.id, "cannot remove empty group: {err}");
                }
            }
        }
    }

    /// Answers every parked JoinGroup and SyncGroup: this broker stops coordinating.
    pub fn shutdown(&self) {
        let groups = self.groups.read().all();
        for group in groups {
            group.lock().abandon_waiters(|| BrokerError::NotCoordinator);
        }
    }
}
