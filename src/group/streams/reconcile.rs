//! A streams member's way to its target tasks, one heartbeat at a time, as Kafka's streams
//! `CurrentAssignmentBuilder`: tasks the member must give up are revoked first (the member
//! acknowledges by no longer listing them as owned); an active task another member still
//! runs, or a standby or warm-up another member of the same process still holds, is handed
//! over only once it has been released.

use super::{MemberState, StreamsGroup, StreamsMember, TaskSet, Tasks};

/// The member's reconciliation state after one step.
pub(super) struct Reconciled {
    pub state: MemberState,
    pub epoch: i32,
    pub assigned: Tasks,
    pub pending_revocation: Tasks,
}

/// Splits `current` against `target`: (kept, to revoke, to add), less the tasks to add that
/// `unreleased` says are still held elsewhere; the flag tells whether there were any.
fn difference(
    current: &TaskSet,
    target: &TaskSet,
    unreleased: impl Fn(&str, i32) -> bool,
) -> (TaskSet, TaskSet, TaskSet, bool) {
    let (mut kept, mut revoke, mut add) = (TaskSet::new(), TaskSet::new(), TaskSet::new());
    let mut held = false;
    let subs: std::collections::BTreeSet<&String> = current.keys().chain(target.keys()).collect();
    let empty = Default::default();
    for sub in subs {
        let now = current.get(sub).unwrap_or(&empty);
        let want = target.get(sub).unwrap_or(&empty);
        let k: std::collections::BTreeSet<i32> = now.intersection(want).copied().collect();
        let r: std::collections::BTreeSet<i32> = now.difference(&k).copied().collect();
        let mut a: std::collections::BTreeSet<i32> = want.difference(&k).copied().collect();
        let before = a.len();
        a.retain(|p| !unreleased(sub, *p));
        held |= a.len() != before;
        for (map, set) in [(&mut kept, k), (&mut revoke, r), (&mut add, a)] {
            if !set.is_empty() {
                map.insert(sub.clone(), set);
            }
        }
    }
    (kept, revoke, add, held)
}

fn merge(into: &mut TaskSet, from: TaskSet) {
    for (sub, ps) in from {
        into.entry(sub).or_default().extend(ps);
    }
}

impl StreamsGroup {
    /// One step of `member` towards `target` at `target_epoch`; `None` when it stays.
    /// `owned` is what the member says it owns (`None`: it did not say).
    pub(super) fn reconcile_step(
        &self,
        member: &StreamsMember,
        target_epoch: i32,
        target: &Tasks,
        owned: Option<&Tasks>,
    ) -> Option<Reconciled> {
        let not_released = |pending: &Tasks| owned.is_none_or(|o| o.contains_any(pending));
        let epoch = match member.state {
            MemberState::Stable if member.epoch == target_epoch => return None,
            MemberState::Stable | MemberState::UnreleasedTasks => member.epoch,
            MemberState::UnrevokedTasks if not_released(&member.pending_revocation) => return None,
            MemberState::UnrevokedTasks => member.epoch + 1,
        };
        let me = &member.id;
        let process = member.process_id.as_str();
        let (a_kept, a_revoke, a_add, a_held) =
            difference(&member.assigned.active, &target.active, |s, p| {
                self.active_owner(s, p, me).is_some()
                    || self.replica_processes(s, p, me).contains(process)
            });
        let replica_unreleased = |s: &str, p: i32| {
            self.active_owner(s, p, me) == Some(process)
                || self.replica_processes(s, p, me).contains(process)
        };
        let (s_kept, s_revoke, s_add, s_held) = difference(
            &member.assigned.standby,
            &target.standby,
            replica_unreleased,
        );
        let (w_kept, w_revoke, w_add, w_held) =
            difference(&member.assigned.warmup, &target.warmup, replica_unreleased);
        let pending = Tasks {
            active: a_revoke,
            standby: s_revoke,
            warmup: w_revoke,
        };
        let mut assigned = Tasks {
            active: a_kept,
            standby: s_kept,
            warmup: w_kept,
        };
        if !pending.is_empty() && not_released(&pending) {
            return Some(Reconciled {
                state: MemberState::UnrevokedTasks,
                epoch,
                assigned,
                pending_revocation: pending,
            });
        }
        merge(&mut assigned.active, a_add);
        merge(&mut assigned.standby, s_add);
        merge(&mut assigned.warmup, w_add);
        Some(Reconciled {
            state: if a_held || s_held || w_held {
                MemberState::UnreleasedTasks
            } else {
                MemberState::Stable
            },
            epoch: target_epoch,
            assigned,
            pending_revocation: Tasks::default(),
        })
    }
}
