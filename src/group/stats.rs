//! A snapshot of every group for metrics: members and committed offsets.

use super::state::GroupState;
use super::GroupCoordinator;

/// One group as metrics see it.
#[derive(Debug, Clone)]
pub struct GroupStats {
    pub id: String,
    pub state: GroupState,
    pub members: usize,
    /// (topic, partition, committed offset).
    pub committed: Vec<(String, i32, i64)>,
}

impl GroupCoordinator {
    /// Every live group; each group's lock is held only while it is copied.
    pub fn stats(&self) -> Vec<GroupStats> {
        let groups = self.groups.read().all();
        let mut stats: Vec<GroupStats> = groups
            .iter()
            .map(|g| {
                let g = g.lock();
                GroupStats {
                    id: g.id.clone(),
                    state: g.state,
                    members: g.members.len(),
                    committed: g
                        .offsets
                        .iter()
                        .map(|((topic, partition), o)| (topic.clone(), *partition, o.offset))
                        .collect(),
                }
            })
            .filter(|s| s.state != GroupState::Dead)
            .collect();
        stats.sort_by(|a, b| a.id.cmp(&b.id));
        stats
    }
}
