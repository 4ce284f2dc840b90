//! What a Produce or Fetch answer tells a client whose partition's leader moved (KIP-951):
//! the current leader and its epoch beside the error, and the endpoints of the leaders it
//! names, so that the client goes to the new leader without waiting for a metadata refresh.
//! Built here once, for both APIs' types.

use kafka_protocol::messages::{
    fetch_response, produce_response, share_acknowledge_response, share_fetch_response, BrokerId,
};

use super::cluster::{leader_endpoints, Endpoint};
use super::{built_from, str_bytes};
use crate::broker::Broker;
use crate::topics::Partition;

/// A partition's leader as this broker knows it, and that leader's epoch.
pub(super) struct CurrentLeader {
    id: i32,
    epoch: i32,
}

/// The leader an answer refusing `partition` points the client at.
pub(super) fn of<L: From<CurrentLeader>>(partition: &Partition) -> L {
    let (id, epoch) = partition.current_leader();
    L::from(CurrentLeader { id, epoch })
}

/// The `node_endpoints` of an answer that names `leaders`: those among the live brokers.
pub(super) fn node_endpoints<E: From<Endpoint>>(
    broker: &Broker,
    leaders: impl IntoIterator<Item = BrokerId>,
) -> Vec<E> {
    let ids = leaders.into_iter().map(|id| id.0);
    leader_endpoints(broker, ids)
        .into_iter()
        .map(E::from)
        .collect()
}

built_from! {
    CurrentLeader => produce_response::LeaderIdAndEpoch, fetch_response::LeaderIdAndEpoch;
    |l| { with_leader_id(BrokerId(l.id)), with_leader_epoch(l.epoch) }
}

// The share APIs' leader ids are plain int32s.
built_from! {
    CurrentLeader => share_fetch_response::LeaderIdAndEpoch, share_acknowledge_response::LeaderIdAndEpoch;
    |l| { with_leader_id(l.id), with_leader_epoch(l.epoch) }
}

built_from! {
    Endpoint => produce_response::NodeEndpoint, fetch_response::NodeEndpoint,
        share_fetch_response::NodeEndpoint, share_acknowledge_response::NodeEndpoint;
    |e| {
        with_node_id(BrokerId(e.id)),
        with_host(str_bytes(e.host)),
        with_port(e.port),
        with_rack(e.rack.map(str_bytes)),
    }
}
