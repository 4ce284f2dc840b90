//! The rebalance itself: preparing it, completing the join when every member is in, choosing
//! the protocol, and the answers JoinGroup and SyncGroup get.

use super::*;

impl Group {
    pub(super) fn prepare_rebalance(
        &mut self,
        now: Instant,
        now_ms: i64,
        settings: &GroupSettings,
    ) {
        // The assignments of the rebalance abandoned are void (Kafka's
        // `resetAndPropagateAssignmentWithError`).
        if self.state == GroupState::CompletingRebalance {
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(w) = member.sync_waiter.take() {
                    let _ = w.send(Err(BrokerError::RebalanceInProgress));
                }
            }
        }
        let longest = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        let delay = settings.initial_rebalance_delay;
        if self.state == GroupState::Empty && !delay.is_zero() {
            let cap = now + longest;
            self.initial_join_cap = Some(cap);
            self.rebalance_deadline = Some((now + delay).min(cap));
        } else {
            self.initial_join_cap = None;
            self.rebalance_deadline = Some(now + longest);
        }
        self.set_state(GroupState::PreparingRebalance, Some(now_ms));
    }

    pub(super) fn maybe_complete_join(&mut self, now: Instant, now_ms: i64) {
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some())
            && self.pending_members.is_empty();
        if self.state == GroupState::PreparingRebalance
            && self.initial_join_cap.is_none()
            && all_joined
        {
            self.complete_join(now, now_ms);
        }
    }

    pub(super) fn complete_join(&mut self, now: Instant, now_ms: i64) {
        // Dynamic members that did not rejoin in time are gone; static ones keep their place.
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in missing {
            self.members.remove(&id);
            if self.is_leader(&id) {
                self.leader = None;
            }
        }
        self.initial_join_cap = None;
        self.rebalance_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty, Some(now_ms));
            self.dirty = true;
            return;
        }
        self.protocol = Some(self.select_protocol());
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.order)
                .map(|m| m.id.clone());
        }
        self.set_state(GroupState::CompletingRebalance, Some(now_ms));
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let leader = self.is_leader(&id);
            let result = self.join_result(&id, leader);
            let member = self.members.get_mut(&id).expect("listed");
            member.last_heartbeat = now;
            if let Some(w) = member.join_waiter.take() {
                let _ = w.send(Ok(result));
            }
        }
    }

    /// Each member votes for its most preferred protocol that every member supports.
    pub(super) fn select_protocol(&self) -> String {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.order);
        let common = |name: &str| {
            members
                .iter()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        };
        let mut votes: Vec<(String, usize)> = Vec::new();
        for member in &members {
            if let Some((name, _)) = member.protocols.iter().find(|(n, _)| common(n)) {
                match votes.iter_mut().find(|(n, _)| n == name) {
                    Some((_, count)) => *count += 1,
                    None => votes.push((name.clone(), 1)),
                }
            }
        }
        // Ties go to the protocol the longest-standing member voted for first.
        let best = votes.iter().map(|(_, c)| *c).max().unwrap_or(0);
        votes
            .into_iter()
            .find(|(_, c)| *c == best)
            .map(|(n, _)| n)
            .unwrap_or_default()
    }

    pub(super) fn join_result(&self, member_id: &str, with_members: bool) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if with_members {
            let mut all: Vec<&Member> = self.members.values().collect();
            all.sort_by_key(|m| m.order);
            all.into_iter()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            generation: self.generation,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol,
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            skip_assignment: with_members && self.state == GroupState::Stable,
            members,
        }
    }

    pub(super) fn sync_result(&self, member_id: &str) -> SyncResult {
        SyncResult {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: self.protocol.clone().unwrap_or_default(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// The leader's assignment of `generation` is stored: the group is Stable and the members
    /// waiting in SyncGroup get their assignments. Too late (the group moved on) does nothing.
    pub fn assignment_stored(&mut self, generation: i32) {
        if !self.storing_assignment_of(generation) {
            return;
        }
        self.set_state(GroupState::Stable, None);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.sync_result(&id);
            if let Some(waiter) = self.members.get_mut(&id).and_then(|m| m.sync_waiter.take()) {
                let _ = waiter.send(Ok(result));
            }
        }
    }

    /// Storing the assignment of `generation` failed: as Kafka does, the waiting members get
    /// `error`, the assignment is dropped and the group rebalances.
    pub fn assignment_not_stored(
        &mut self,
        generation: i32,
        error: fn() -> BrokerError,
        now: Instant,
        now_ms: i64,
        settings: &GroupSettings,
    ) {
        if !self.storing_assignment_of(generation) {
            return;
        }
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(Err(error()));
            }
        }
        self.prepare_rebalance(now, now_ms, settings);
    }

    fn storing_assignment_of(&self, generation: i32) -> bool {
        self.storing_assignment
            && self.state == GroupState::CompletingRebalance
            && self.generation == generation
    }

    pub(super) fn set_state(&mut self, state: GroupState, now_ms: Option<i64>) {
        self.storing_assignment = false;
        self.state = state;
        if let Some(ms) = now_ms {
            self.state_timestamp = ms;
        }
    }
}
