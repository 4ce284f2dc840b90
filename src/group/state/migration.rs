//! A classic group's side of online migration: handing its members to the consumer group an
//! upgrade makes, and taking back the classic members of a downgraded consumer group.

use super::*;

impl Group {
    /// Drops the classic members, as an online upgrade hands them to the consumer group: the
    /// classic part is left Empty, holding only the offsets.
    pub fn clear_classic_members(&mut self) {
        self.members.clear();
        self.static_members.clear();
        self.pending_members.clear();
        self.state = GroupState::Empty;
        self.generation = 0;
        self.protocol_type = None;
        self.protocol = None;
        self.leader = None;
        self.rebalance_deadline = None;
        self.initial_join_cap = None;
        self.storing_assignment = false;
        self.dirty = false;
    }

    /// Becomes the classic group an online downgrade makes of a consumer group's classic
    /// members (Kafka's `ClassicGroup.fromConsumerGroup`, then `prepareRebalance`): Stable at
    /// the consumer group's epoch, with the protocol they all support and the first as
    /// leader, then rebalancing so that each member rejoins.
    pub fn downgrade(
        &mut self,
        generation: i32,
        members: Vec<Member>,
        now: Instant,
        now_ms: i64,
        settings: &GroupSettings,
    ) {
        self.generation = generation;
        self.protocol_type = Some(crate::group::consumer::PROTOCOL_TYPE.to_owned());
        let first = members.first().map(|m| m.id.clone());
        for member in members {
            self.restore_member(member);
        }
        self.state = GroupState::Stable;
        self.protocol = Some(self.select_protocol());
        self.leader = first;
        self.state_timestamp = now_ms;
        self.prepare_rebalance(now, now_ms, settings);
    }
}
