//! A member's way from its current assignment to its target, one heartbeat at a time, as
//! Kafka's `CurrentAssignmentBuilder`: partitions the member must give up are revoked first
//! (the member acknowledges by no longer listing them as owned), and a partition another
//! member still owns is handed over only once that member has released it. The member's
//! epoch reaches the target epoch when nothing is left to revoke.

use super::{Assignment, MemberState, TopicId};

/// What reconciliation needs of a member and the group.
pub(super) struct Reconciliation<'a> {
    pub target_epoch: i32,
    pub target: &'a Assignment,
    /// The epoch at which a partition is owned by some member (assigned or pending
    /// revocation), `None` when nobody owns it.
    pub owner_epoch: &'a dyn Fn(TopicId, i32) -> Option<i32>,
    /// The partitions the member says it owns; `None` when the heartbeat left them out.
    pub owned: Option<&'a Assignment>,
}

/// The member's reconciliation state after this step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reconciled {
    pub state: MemberState,
    pub epoch: i32,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

impl Reconciliation<'_> {
    /// The next step from (`state`, `epoch`, `assigned`, `pending_revocation`); `None` when
    /// the member stays as it is.
    pub fn step(
        &self,
        state: MemberState,
        epoch: i32,
        assigned: &Assignment,
        pending_revocation: &Assignment,
    ) -> Option<Reconciled> {
        match state {
            MemberState::Stable if epoch == self.target_epoch => None,
            MemberState::Stable | MemberState::UnreleasedPartitions => {
                Some(self.next(epoch, assigned))
            }
            // The epoch moves on only once the member no longer owns what it must revoke.
            MemberState::UnrevokedPartitions if self.owns_any(pending_revocation) => None,
            MemberState::UnrevokedPartitions => Some(self.next(epoch + 1, assigned)),
        }
    }

    /// Whether the member still owns any of `partitions` (or did not say what it owns).
    fn owns_any(&self, partitions: &Assignment) -> bool {
        let Some(owned) = self.owned else {
            return true;
        };
        owned.iter().any(|(topic, owned)| {
            partitions
                .get(topic)
                .is_some_and(|revoking| owned.iter().any(|p| revoking.contains(p)))
        })
    }

    fn next(&self, epoch: i32, current: &Assignment) -> Reconciled {
        let mut assigned = Assignment::new();
        let mut revoking = Assignment::new();
        let mut to_assign = Assignment::new();
        let mut unreleased = false;
        let topics = self.target.keys().chain(current.keys());
        let topics: std::collections::BTreeSet<TopicId> = topics.copied().collect();
        let empty = Default::default();
        for topic in topics {
            let target = self.target.get(&topic).unwrap_or(&empty);
            let now = current.get(&topic).unwrap_or(&empty);
            let kept: std::collections::BTreeSet<i32> = now.intersection(target).copied().collect();
            let revoke: std::collections::BTreeSet<i32> = now.difference(&kept).copied().collect();
            let mut add: std::collections::BTreeSet<i32> =
                target.difference(&kept).copied().collect();
            let before = add.len();
            add.retain(|p| (self.owner_epoch)(topic, *p).is_none());
            unreleased |= add.len() != before;
            for (map, set) in [
                (&mut assigned, kept),
                (&mut revoking, revoke),
                (&mut to_assign, add),
            ] {
                if !set.is_empty() {
                    map.insert(topic, set);
                }
            }
        }
        if !revoking.is_empty() && self.owns_any(&revoking) {
            // Keep the epoch and ask the member to revoke first.
            return Reconciled {
                state: MemberState::UnrevokedPartitions,
                epoch,
                assigned,
                pending_revocation: revoking,
            };
        }
        for (topic, partitions) in to_assign {
            assigned.entry(topic).or_default().extend(partitions);
        }
        Reconciled {
            state: if unreleased {
                MemberState::UnreleasedPartitions
            } else {
                MemberState::Stable
            },
            epoch: self.target_epoch,
            assigned,
            pending_revocation: Assignment::new(),
        }
    }
}
