//! Where a request is charged to its client's quotas (Kafka's `RequestHandlerHelper` and
//! the quota calls of `KafkaApis`): the handler runs timed, then the request's bytes and
//! time are recorded, the longest throttle of those it earned goes into the response's
//! `throttle_time_ms`, and the connection is told how long to stay muted.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{RequestKind, ResponseKind};

use super::{handle, Request, Session};
use crate::broker::Broker;
use crate::quotas::{Client, Throttle};

/// How a request counts against the request-time quota.
enum Charge {
    /// Produce: its bytes against `producer_byte_rate`; its time too unless acks=0 (Kafka
    /// exempts those from the request quota: the client sees no response to wait on).
    Produce { acks: i16 },
    /// Replication and inter-broker traffic, and SASL before authentication: exempt.
    Exempt,
    /// Everything else: its time against `request_percentage`.
    Timed,
}

fn charge_of(body: &RequestKind) -> Charge {
    match body {
        RequestKind::Produce(p) => Charge::Produce { acks: p.acks },
        RequestKind::Fetch(f) if f.replica_id.0 >= 0 || f.replica_state.replica_id.0 >= 0 => {
            Charge::Exempt
        }
        RequestKind::WriteTxnMarkers(_)
        | RequestKind::SaslHandshake(_)
        | RequestKind::SaslAuthenticate(_) => Charge::Exempt,
        _ => Charge::Timed,
    }
}

/// Serves a request and charges it: the response, with the throttle it carries, and the
/// throttle the connection must keep it muted for.
pub async fn serve(
    broker: &Arc<Broker>,
    session: &mut Session,
    request: Request,
) -> (ResponseKind, Option<Throttle>) {
    // Before SASL completes the connection has no user yet: Kafka's authenticator answers
    // those requests outside the quotas.
    let charge = if session.sasl.is_complete() {
        charge_of(&request.body)
    } else {
        Charge::Exempt
    };
    let size = request.size;
    let client_id = request.header.client_id.as_deref().unwrap_or("").to_owned();
    session.throttle = None;
    // The time the request was polled, and the disk work the storage threads did for it:
    // Kafka's request handler thread does both itself, and its request quota counts both.
    let ((mut response, polled), on_disk) =
        samsa_storage::count_storage_time(timed(handle(broker, session, request))).await;
    let busy = polled + on_disk;
    let client = Client {
        user: session.user_name(),
        client_id: &client_id,
    };
    let quotas = &broker.quotas;
    let earned = match charge {
        Charge::Produce { acks } => {
            let bytes = quotas.record_produce(client, size);
            let time = (acks != 0)
                .then(|| quotas.record_request_time(client, busy))
                .flatten();
            Throttle::longest(bytes, time)
        }
        Charge::Exempt => None,
        Charge::Timed => quotas.record_request_time(client, busy),
    };
    let throttle = Throttle::longest(session.throttle.take(), earned);
    if let Some(throttle) = &throttle {
        quotas.note_throttle(throttle);
        set_throttle_time(&mut response, throttle.ms.min(i64::from(i32::MAX)) as i32);
        tracing::debug!(
            peer = %session.peer,
            quota = throttle.key.config_name(),
            ms = throttle.ms,
            "client throttled"
        );
    }
    (response, throttle)
}

/// Runs `future`, measuring the time spent inside its polls: the time the broker worked
/// on the request, not the time it waited (a long poll, replication of an acks=all
/// produce). Kafka measures its request handler thread's time the same way.
async fn timed<T>(future: impl Future<Output = T>) -> (T, Duration) {
    let mut future = std::pin::pin!(future);
    let mut busy = Duration::ZERO;
    let output = std::future::poll_fn(|cx| {
        let started = Instant::now();
        let polled = future.as_mut().poll(cx);
        busy += started.elapsed();
        match polled {
            Poll::Ready(output) => Poll::Ready(output),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    (output, busy)
}

/// Sets `throttle_time_ms` on every response that has the field; versions without it leave
/// it out when encoding.
macro_rules! set_throttle {
    ($response:expr, $ms:expr; $($kind:ident),* $(,)?) => {
        match $response {
            $( ResponseKind::$kind(r) => r.throttle_time_ms = $ms, )*
            _ => {}
        }
    };
}

fn set_throttle_time(response: &mut ResponseKind, ms: i32) {
    set_throttle!(response, ms;
        AddOffsetsToTxn, AddPartitionsToTxn, AddRaftVoter, AllocateProducerIds,
        AlterClientQuotas, AlterConfigs, AlterPartitionReassignments, AlterPartition,
        AlterReplicaLogDirs, AlterShareGroupOffsets, AlterUserScramCredentials, ApiVersions,
        AssignReplicasToDirs, BrokerHeartbeat, BrokerRegistration, ConsumerGroupDescribe,
        ConsumerGroupHeartbeat, ControllerRegistration, CreateAcls, CreateDelegationToken,
        CreatePartitions, CreateTopics, DeleteAcls, DeleteGroups, DeleteRecords,
        DeleteShareGroupOffsets, DeleteTopics, DescribeAcls, DescribeClientQuotas,
        DescribeCluster, DescribeConfigs, DescribeDelegationToken, DescribeGroups,
        DescribeLogDirs, DescribeProducers, DescribeShareGroupOffsets,
        DescribeTopicPartitions, DescribeTransactions, DescribeUserScramCredentials,
        ElectLeaders, EndTxn, ExpireDelegationToken, Fetch, FetchSnapshot, FindCoordinator,
        GetTelemetrySubscriptions, Heartbeat, IncrementalAlterConfigs, InitProducerId,
        JoinGroup, LeaveGroup, ListConfigResources, ListGroups, ListOffsets,
        ListPartitionReassignments, ListTransactions, Metadata, OffsetCommit, OffsetDelete,
        OffsetFetch, OffsetForLeaderEpoch, Produce, PushTelemetry, RemoveRaftVoter,
        RenewDelegationToken, ShareAcknowledge, ShareFetch, ShareGroupDescribe,
        ShareGroupHeartbeat, StreamsGroupDescribe, StreamsGroupHeartbeat,
        StreamsGroupTopologyDescriptionUpdate, SyncGroup,
        TxnOffsetCommit, UnregisterBroker, UnregisterController, UpdateFeatures,
        UpdateRaftVoter,
    );
}
