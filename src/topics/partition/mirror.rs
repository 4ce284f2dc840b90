//! A mirror partition's leader writing what a cluster link fetched from the source cluster:
//! the batches keep the source's offsets, as a follower's do (the same storage path,
//! `append_as_follower`), but the writer leads the partition here, so its followers and
//! consumers see the high watermark move as after a produce.

use std::sync::Arc;

use bytes::Bytes;
use samsa_storage::{storage_threads, AppendInfo};

use super::role::FetchedBy;

use super::Partition;
use crate::error::{BrokerError, Result};

impl Partition {
    /// Appends `records` fetched from the source at their source offsets, while this broker
    /// still leads at `epoch` (the destination's leader epoch the link started under): a link
    /// task left over from an earlier leadership never writes.
    pub async fn append_mirrored(
        self: &Arc<Self>,
        epoch: i32,
        records: Bytes,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.append_fetched(FetchedBy::Mirror(epoch), records, now_ms)
            .await
    }

    /// Empties the log and starts it at `offset`, the source's log start: a new mirror of a
    /// source whose log starts later than 0, or one that fell behind the source's retention.
    pub async fn restart_mirror_at(self: &Arc<Self>, epoch: i32, offset: i64) -> Result<()> {
        let partition = self.clone();
        storage_threads()
            .run(move || {
                let mut guard = partition.log.write();
                let log = guard.as_mut().ok_or(BrokerError::NotLeaderOrFollower)?;
                let mut role = partition.role.lock();
                check_leading(role.leading.is_some(), role.epoch, epoch)?;
                log.truncate_fully_and_start_at(offset)?;
                partition.sync.reset(offset);
                partition.advance_high_watermark(log, &mut role);
                Ok::<_, BrokerError>(())
            })
            .await
    }

    /// Whether this broker still leads the partition at `epoch`.
    pub fn leads_at(&self, epoch: i32) -> bool {
        let role = self.role.lock();
        role.leading.is_some() && role.epoch == epoch
    }
}

fn check_leading(leading: bool, current: i32, epoch: i32) -> Result<()> {
    if leading && current == epoch {
        Ok(())
    } else {
        Err(BrokerError::NotLeaderOrFollower)
    }
}
