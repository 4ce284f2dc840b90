//! Who is in a group: members joining (dynamic and static), parked JoinGroup replies, and
//! members leaving or timing out.

use super::*;

impl Group {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_member(
        &mut self,
        id: String,
        req: JoinRequest,
        reply: oneshot::Sender<JoinOutcome>,
        now: Instant,
        now_ms: i64,
        settings: &GroupSettings,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        let member = Member {
            id: id.clone(),
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            protocol_type: req.protocol_type,
            protocols: req.protocols,
            assignment: Bytes::new(),
            last_heartbeat: now,
            order: self.next_order,
            join_waiter: Some(reply),
            sync_waiter: None,
        };
        self.next_order += 1;
        self.members.insert(id, member);
        if self.state == GroupState::PreparingRebalance {
            // Each arrival during the initial delay buys the others a little more time.
            if let Some(cap) = self.initial_join_cap {
                self.rebalance_deadline = Some((now + settings.initial_rebalance_delay).min(cap));
            }
        } else {
            self.prepare_rebalance(now, now_ms, settings);
        }
        self.maybe_complete_join(now, now_ms);
    }

    /// A static member came back with a new process (KIP-345): the old member id is fenced
    /// and the new one takes its place, without a rebalance when nothing else changed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn replace_static_member(
        &mut self,
        old_id: &str,
        req: JoinRequest,
        reply: oneshot::Sender<JoinOutcome>,
        now: Instant,
        now_ms: i64,
        settings: &GroupSettings,
        new_id: String,
    ) {
        let mut member = self
            .members
            .remove(old_id)
            .expect("static member is a member");
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(Err(JoinError {
                error: BrokerError::FencedInstanceId,
                member_id: old_id.to_owned(),
            }));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(Err(BrokerError::FencedInstanceId));
        }
        let changed = member.protocols != req.protocols;
        member.id = new_id.clone();
        member.protocols = req.protocols;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.last_heartbeat = now;
        let instance = member
            .instance_id
            .clone()
            .expect("static member has an instance id");
        self.static_members.insert(instance, new_id.clone());
        self.members.insert(new_id.clone(), member);
        if self.is_leader(old_id) {
            self.leader = Some(new_id.clone());
        }
        match self.state {
            GroupState::Stable if !changed => {
                let leader = self.is_leader(&new_id);
                let result = self.join_result(&new_id, leader);
                self.dirty = true;
                let _ = reply.send(Ok(result));
            }
            GroupState::PreparingRebalance => {
                self.park_join(&new_id, reply);
                self.maybe_complete_join(now, now_ms);
            }
            _ => {
                self.park_join(&new_id, reply);
                self.prepare_rebalance(now, now_ms, settings);
                self.maybe_complete_join(now, now_ms);
            }
        }
    }

    pub(super) fn park_join(&mut self, member_id: &str, reply: oneshot::Sender<JoinOutcome>) {
        let member = self
            .members
            .get_mut(member_id)
            .expect("parked member exists");
        if let Some(old) = member.join_waiter.replace(reply) {
            let _ = old.send(Err(JoinError {
                error: BrokerError::RebalanceInProgress,
                member_id: member_id.to_owned(),
            }));
        }
    }

    pub(super) fn remove_member(
        &mut self,
        id: &str,
        now: Instant,
        now_ms: i64,
        settings: &GroupSettings,
    ) {
        let Some(mut member) = self.members.remove(id) else {
            return;
        };
        if let Some(instance) = &member.instance_id {
            self.static_members.remove(instance);
        }
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(Err(JoinError {
                error: BrokerError::UnknownMemberId,
                member_id: id.to_owned(),
            }));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(Err(BrokerError::UnknownMemberId));
        }
        if self.is_leader(id) {
            self.leader = None;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, now_ms, settings)
            }
            _ => {}
        }
        self.maybe_complete_join(now, now_ms);
    }
}
