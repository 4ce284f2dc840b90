//! One thin handler per API: a decoded request and the broker state in, a response out.
//! The declaration below ([`apis!`]) is the only place that knows which APIs and versions
//! samsa serves and which handler serves each.

pub mod acl;
pub mod admin;
pub mod api_versions;
mod charge;
pub mod cluster;
pub mod config_resources;
pub mod configs;
pub mod consumer_group;
mod current_leader;
mod delegation_tokens;
pub mod delete_records;
pub mod elections;
mod features;
pub mod fetch;
mod fetch_session;
pub mod group;
mod group_configs;
pub mod leader_epochs;
pub mod list_offsets;
pub mod log_dirs;
pub mod metadata;
pub mod offsets;
mod partition_codes;
pub mod produce;
pub mod quorum;
pub mod quotas;
mod raft_voters;
pub mod reassignments;
mod record_errors;
pub mod sasl;
mod schema_check;
pub mod scram;
mod session;
pub mod share_fetch;
pub mod share_group;
pub mod share_offsets;
pub mod share_offsets_alter;
mod share_poll;
pub mod share_state;
pub mod streams_describe;
pub mod streams_group;
pub mod streams_topology;
pub mod telemetry;
pub mod topic_partitions;
pub mod transactions;
pub mod txn;
pub mod txn_markers;
pub mod txn_offsets;
pub mod unregister;

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::auth::{Operation, ResourceType};
use crate::broker::Broker;

pub use charge::serve;
pub use session::{ListenerInfo, Session};

/// A request decoded in full.
#[derive(Debug)]
pub struct Request {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub body: RequestKind,
    /// Bytes of the frame, length prefix excluded: what a produce quota counts.
    pub size: usize,
}

impl Request {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
}

/// Declares every API samsa serves once: its key, the versions served (each handled in full,
/// and within what the `kafka-protocol` crate decodes), and the handler that serves it. The
/// version table that ApiVersions reports and the decoder checks ([`APIS`]) and the dispatch
/// ([`handle`]) both come from this one list, so they cannot disagree. The names in brackets
/// are the bindings every handler expression may use.
macro_rules! apis {
    (
        [$broker:ident, $session:ident, $version:ident, $client_id:ident, $req:ident]
        $( $key:ident $min:literal ..= $max:literal => $handler:expr ),* $(,)?
    ) => {
        /// (API, lowest version, highest version) of every API samsa serves.
        pub const APIS: &[(ApiKey, i16, i16)] = &[ $( (ApiKey::$key, $min, $max) ),* ];

        /// Serves one request; the decoder lets through only what [`APIS`] lists. Each
        /// handler checks with the authorizer
        /// what the session's principal may do.
        pub async fn handle(
            $broker: &Arc<Broker>,
            $session: &mut Session,
            request: Request,
        ) -> ResponseKind {
            let $version = request.version();
            let $client_id = request.header.client_id.as_deref().unwrap_or("").to_owned();
            coordinator_topic_first($broker, $session, &request.body).await;
            match request.body {
                $( RequestKind::$key($req) => ResponseKind::$key($handler), )*
                other => unreachable!("{other:?} is not in the declared APIs"),
            }
        }
    };
}

/// A coordinator's request creates its internal topic if it does not exist yet, as
/// FindCoordinator does, and waits until this broker knows it (and so has loaded the
/// partitions it leads): a client may ask a broker it knows to coordinate before it ever
/// looks for the coordinator, and a single node answers it then as Kafka's does, where
/// the topic appears with the first group or transaction. As for FindCoordinator, the
/// principal must be allowed DESCRIBE on a group or transactional id it names. If the
/// creation fails, the handler answers what a missing coordinator means for its request.
async fn coordinator_topic_first(broker: &Broker, session: &Session, body: &RequestKind) {
    let (groups, transactional_ids): (Vec<&str>, Vec<&str>) = match body {
        RequestKind::JoinGroup(r) => (vec![&r.group_id], Vec::new()),
        RequestKind::SyncGroup(r) => (vec![&r.group_id], Vec::new()),
        RequestKind::Heartbeat(r) => (vec![&r.group_id], Vec::new()),
        RequestKind::LeaveGroup(r) => (vec![&r.group_id], Vec::new()),
        RequestKind::OffsetCommit(r) => (vec![&r.group_id], Vec::new()),
        RequestKind::ConsumerGroupHeartbeat(r) => (vec![&r.group_id], Vec::new()),
        RequestKind::ConsumerGroupDescribe(r) => {
            (r.group_ids.iter().map(|g| g.as_str()).collect(), Vec::new())
        }
        RequestKind::StreamsGroupHeartbeat(r) => (vec![&r.group_id], Vec::new()),
        RequestKind::ShareGroupHeartbeat(r) => (vec![&r.group_id], Vec::new()),
        RequestKind::ShareGroupDescribe(r) => {
            (r.group_ids.iter().map(|g| g.as_str()).collect(), Vec::new())
        }
        RequestKind::DescribeShareGroupOffsets(r) => (
            r.groups.iter().map(|g| g.group_id.as_str()).collect(),
            Vec::new(),
        ),
        RequestKind::AlterShareGroupOffsets(r) => (vec![&r.group_id], Vec::new()),
        RequestKind::DeleteShareGroupOffsets(r) => (vec![&r.group_id], Vec::new()),
        RequestKind::StreamsGroupTopologyDescriptionUpdate(r) => (vec![&r.group_id], Vec::new()),
        RequestKind::StreamsGroupDescribe(r) => {
            (r.group_ids.iter().map(|g| g.as_str()).collect(), Vec::new())
        }
        RequestKind::OffsetDelete(r) => (vec![&r.group_id], Vec::new()),
        // Before v8 one group, from v8 a list.
        RequestKind::OffsetFetch(r) => {
            let listed = r.groups.iter().map(|g| g.group_id.as_str());
            let ids = std::iter::once(r.group_id.as_str()).chain(listed);
            (ids.filter(|id| !id.is_empty()).collect(), Vec::new())
        }
        RequestKind::DescribeGroups(r) => {
            (r.groups.iter().map(|g| g.as_str()).collect(), Vec::new())
        }
        RequestKind::DeleteGroups(r) => (
            r.groups_names.iter().map(|g| g.as_str()).collect(),
            Vec::new(),
        ),
        // The group coordinator asks the transaction coordinator about the producer.
        RequestKind::TxnOffsetCommit(r) => (vec![&r.group_id], vec![&r.transactional_id]),
        RequestKind::InitProducerId(r) => match &r.transactional_id {
            Some(id) => (Vec::new(), vec![id.as_str()]),
            None => return,
        },
        // Before v4 one transactional id, from v4 a batch.
        RequestKind::AddPartitionsToTxn(r) => {
            let batched = r.transactions.iter().map(|t| t.transactional_id.as_str());
            let ids = std::iter::once(r.v3_and_below_transactional_id.as_str()).chain(batched);
            (Vec::new(), ids.filter(|id| !id.is_empty()).collect())
        }
        RequestKind::AddOffsetsToTxn(r) => (Vec::new(), vec![&r.transactional_id]),
        RequestKind::EndTxn(r) => (Vec::new(), vec![&r.transactional_id]),
        _ => return,
    };
    let wanted = [
        (group::GROUP_KEY, ResourceType::Group, groups),
        (
            group::TRANSACTION_KEY,
            ResourceType::TransactionalId,
            transactional_ids,
        ),
    ];
    for (key_type, resource, ids) in wanted {
        // Known here, as it is for every request but the first: nothing to do.
        if ids.is_empty() || group::internal_topic_known(broker, key_type) {
            continue;
        }
        let may_describe = |id: &&str| allowed(broker, session, Operation::Describe, resource, id);
        if !ids.iter().any(may_describe) {
            continue;
        }
        if let Err(err) = group::internal_topic(broker, key_type).await {
            tracing::debug!("cannot create the coordinator's internal topic: {err}");
        }
    }
}

apis! {
    [broker, session, version, client_id, req]
    Produce 3..=13 => produce::handle(broker, session, req, version).await,
    Fetch 4..=18 => fetch::handle(broker, session, req, version, &client_id).await,
    ListOffsets 1..=11 => list_offsets::handle(broker, session, req, version),
    Metadata 0..=13 => metadata::handle(broker, session, req, version).await,
    DescribeTopicPartitions 0..=0 => topic_partitions::handle(broker, session, req),
    ApiVersions 0..=5 => api_versions::handle(broker, session, &req, version),
    CreateTopics 2..=7 => admin::create_topics(broker, session, req, version, &client_id).await,
    DeleteTopics 1..=6 => admin::delete_topics(broker, session, req, version, &client_id).await,
    DescribeConfigs 1..=4 => configs::describe(broker, session, req, version),
    AlterConfigs 0..=2 => configs::alter(broker, session, req).await,
    IncrementalAlterConfigs 0..=1 => configs::incremental_alter(broker, session, req).await,
    ListConfigResources 0..=1 => config_resources::handle(broker, session, req, version),
    DeleteRecords 0..=2 => delete_records::handle(broker, session, req),
    CreatePartitions 0..=3 => admin::create_partitions(broker, session, req, version, &client_id).await,
    ElectLeaders 0..=2 => elections::handle(broker, session, req, version).await,
    DescribeLogDirs 1..=5 => log_dirs::handle(broker, session, req, version),
    AlterReplicaLogDirs 1..=2 => log_dirs::alter(broker, session, req),
    AlterPartitionReassignments 0..=1 => reassignments::alter(broker, session, req, version).await,
    ListPartitionReassignments 0..=0 => reassignments::list(broker, session, req),
    DescribeCluster 0..=2 => cluster::describe(broker, session, req),
    DescribeQuorum 0..=2 => quorum::handle(broker, session, req).await,
    UnregisterBroker 0..=0 => unregister::handle(broker, session, req).await,
    // KIP-853's dynamic quorum; UNSUPPORTED_VERSION while kraft.version is 0, as in Kafka.
    AddRaftVoter 0..=1 => raft_voters::add(broker, session, req).await,
    RemoveRaftVoter 0..=0 => raft_voters::remove(broker, session, req).await,
    UnregisterController 0..=0 => raft_voters::unregister_controller(broker, session, req).await,
    // Delegation tokens (KIP-48), disabled as in a Kafka without a token secret key.
    CreateDelegationToken 1..=3 => delegation_tokens::create(session, &req, version),
    RenewDelegationToken 1..=2 => delegation_tokens::renew(session, &req),
    ExpireDelegationToken 1..=2 => delegation_tokens::expire(session, &req),
    DescribeDelegationToken 1..=3 => delegation_tokens::describe(session, &req),
    // `kafka-configs --entity-type users|clients|ips`: client quotas in the metadata log.
    DescribeClientQuotas 0..=1 => quotas::describe(broker, session, req),
    AlterClientQuotas 0..=1 => quotas::alter(broker, session, req).await,
    // `kafka-features`: finalized feature levels (KIP-584), reported by ApiVersions.
    UpdateFeatures 0..=2 => features::update(broker, session, req, version).await,
    FindCoordinator 0..=6 => group::find_coordinator(broker, session, req, version).await,
    JoinGroup 0..=9 => {
        let peer = session.peer;
        group::join(broker, session, req, version, &client_id, peer).await
    },
    SyncGroup 0..=5 => group::sync(broker, session, req, version).await,
    Heartbeat 0..=4 => group::heartbeat(broker, session, req),
    LeaveGroup 0..=5 => group::leave(broker, session, req, version).await,
    OffsetCommit 2..=10 => offsets::commit(broker, session, req, version).await,
    OffsetFetch 1..=10 => offsets::fetch(broker, session, req, version),
    OffsetDelete 0..=0 => offsets::delete(broker, session, req).await,
    DescribeGroups 0..=6 => group::describe(broker, session, req, version),
    ListGroups 0..=5 => group::list(broker, session, req, version),
    DeleteGroups 0..=3 => group::delete(broker, session, req).await,
    // Streams groups (KIP-1071); UNSUPPORTED_VERSION while streams.version is 0.
    StreamsGroupHeartbeat 0..=1 => {
        let peer = session.peer;
        streams_group::heartbeat(broker, session, req, version, &client_id, peer).await
    },
    StreamsGroupDescribe 0..=1 => streams_describe::describe(broker, session, req),
    // Share groups (KIP-932); UNSUPPORTED_VERSION while share.version is 0.
    ShareGroupHeartbeat 1..=1 => {
        let peer = session.peer;
        share_group::heartbeat(broker, session, req, &client_id, peer).await
    },
    ShareGroupDescribe 1..=1 => share_group::describe(broker, session, req),
    DescribeShareGroupOffsets 0..=1 => share_offsets::describe(broker, session, req).await,
    AlterShareGroupOffsets 0..=0 => share_offsets_alter::alter(broker, session, req).await,
    DeleteShareGroupOffsets 0..=0 => share_offsets_alter::delete(broker, session, req).await,
    // KIP-1331: UNSUPPORTED_VERSION unless group_streams_topology_description_store is set.
    StreamsGroupTopologyDescriptionUpdate 0..=0 => streams_topology::update(broker, session, req).await,
    // v5+ come from transaction.version 2 producers: the group joins the transaction here.
    TxnOffsetCommit 0..=6 => txn_offsets::commit(broker, session, req, version).await,
    // After a v0 handshake tokens come as bare frames; librdkafka needs v0 advertised to
    // believe the broker does SASL at all, although it then uses v1 and SaslAuthenticate.
    SaslHandshake 0..=1 => sasl::handshake(broker, session, req, version),
    SaslAuthenticate 0..=2 => sasl::authenticate(broker, session, req),
    // Kafka 4 serves the ACL APIs from v1 (v0 had no pattern type).
    CreateAcls 1..=3 => acl::create(broker, session, req).await,
    DescribeAcls 1..=3 => acl::describe(broker, session, req),
    DeleteAcls 1..=3 => acl::delete(broker, session, req).await,
    DescribeUserScramCredentials 0..=0 => scram::describe(broker, session, req),
    AlterUserScramCredentials 0..=0 => scram::alter(broker, session, req).await,
    // Transactions, transaction.version 1 and 2 (KIP-890 part 2: EndTxn v5 bumps the
    // epoch; AddPartitionsToTxn v4+ from brokers adds partitions for v2 producers). Kafka 4.4
    // serves InitProducerId up to v5, as here.
    InitProducerId 0..=5 => txn::init_producer_id(broker, session, req, version).await,
    AddPartitionsToTxn 0..=5 => txn::add_partitions(broker, session, req, version).await,
    AddOffsetsToTxn 0..=4 => txn::add_offsets(broker, session, req, version).await,
    EndTxn 0..=5 => txn::end(broker, session, req, version).await,
    ListTransactions 0..=2 => transactions::list(broker, session, req, version),
    DescribeTransactions 0..=0 => transactions::describe(broker, session, req),
    DescribeProducers 0..=0 => transactions::describe_producers(broker, session, req),
    // Inter-broker. Kafka 4 serves v1-2 (v0 was removed); v2 adds the marker's
    // transaction.version, which decides how strictly the partition checks its epoch.
    WriteTxnMarkers 1..=2 => txn_markers::write(broker, session, req).await,
    // v0-1 were removed in Kafka 4.0 (KIP-896).
    OffsetForLeaderEpoch 2..=4 => leader_epochs::handle(broker, session, req),
    // KIP-848 consumer groups: answered UNSUPPORTED_VERSION while group.version is 0.
    ConsumerGroupHeartbeat 0..=1 => {
        let peer = session.peer;
        consumer_group::heartbeat(broker, session, req, version, &client_id, peer).await
    },
    ConsumerGroupDescribe 0..=1 => consumer_group::describe(broker, session, req, version),
    // Share groups (KIP-932): the share-partition leader; UNSUPPORTED_VERSION while
    // share.version is 0, as in Kafka.
    ShareFetch 1..=2 => share_fetch::fetch(broker, session, req, version).await,
    ShareAcknowledge 1..=2 => share_fetch::acknowledge_request(broker, session, req, version).await,
    // Client telemetry (KIP-714); listed by ApiVersions only when a subscription is configured.
    GetTelemetrySubscriptions 0..=0 => telemetry::get_subscriptions(broker, session, &req, &client_id),
    PushTelemetry 0..=0 => telemetry::push(broker, session, req, &client_id),
    // Share groups (KIP-932): the share coordinator's inter-broker APIs.
    InitializeShareGroupState 0..=0 => share_state::initialize(broker, session, req).await,
    ReadShareGroupState 0..=0 => share_state::read(broker, session, req).await,
    WriteShareGroupState 0..=1 => share_state::write(broker, session, req, version).await,
    DeleteShareGroupState 0..=0 => share_state::delete(broker, session, req).await,
    ReadShareGroupStateSummary 0..=1 => share_state::read_summary(broker, session, req).await,
}

/// Whether the session's principal may perform `op` on the resource.
pub(crate) fn allowed(
    broker: &Broker,
    session: &Session,
    op: Operation,
    rt: ResourceType,
    name: &str,
) -> bool {
    broker
        .authorizer
        .authorize(&session.principal, &session.host, op, rt, name)
}

/// The coordinators' topics: clients may not write them, Metadata flags them internal
/// (pattern subscriptions skip them); all but `__share_group_state` are compacted.
pub(crate) fn is_internal_topic(topic: &str) -> bool {
    topic == crate::group::store::OFFSETS_TOPIC
        || topic == crate::txn::log::TRANSACTION_STATE_TOPIC
        || topic == crate::share::coordinator::SHARE_STATE_TOPIC
}

/// Whether the session's principal may perform `op` on the cluster.
pub(crate) fn allowed_on_cluster(broker: &Broker, session: &Session, op: Operation) -> bool {
    allowed(
        broker,
        session,
        op,
        ResourceType::Cluster,
        crate::auth::acl::CLUSTER_NAME,
    )
}

/// The `*_authorized_operations` bit set of a resource, or the "not requested" marker.
pub(crate) fn authorized_operations(
    broker: &Broker,
    session: &Session,
    requested: bool,
    rt: ResourceType,
    name: &str,
) -> i32 {
    if requested {
        broker
            .authorizer
            .authorized_operations(&session.principal, &session.host, rt, name)
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    }
}

/// Kafka's "authorized operations were not requested" marker.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub(crate) use crate::event_loop::off_event_loop;

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Implements `From<$from>` for kafka-protocol types that repeat one shape under several
/// APIs (the same fields, generated again in each API's module), with one list of setters:
/// an answer is built once, in a type of ours, and takes each API's type at the end.
///
/// ```ignore
/// built_from! {
///     Leader => produce_response::LeaderIdAndEpoch, fetch_response::LeaderIdAndEpoch;
///     |l| { with_leader_id(BrokerId(l.id)), with_leader_epoch(l.epoch) }
/// }
/// ```
macro_rules! built_from {
    ($from:ty => $($to:ty),+ ; |$v:pat_param| $setters:tt) => {
        $( $crate::handlers::built_from!(@one $from => $to; |$v| $setters); )+
    };
    (@one $from:ty => $to:ty; |$v:pat_param| { $($with:ident($value:expr)),+ $(,)? }) => {
        impl From<$from> for $to {
            fn from($v: $from) -> Self {
                Self::default()$(.$with($value))+
            }
        }
    };
}
pub(crate) use built_from;
