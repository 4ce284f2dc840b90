//! The broker's error type, and the one place where errors become Kafka error codes.

use kafka_protocol::error::ResponseError;
use samsa_storage::StorageError;

use samsa_metadata::voters::VoterChangeReason;
use samsa_metadata::{CommandError, Error as MetadataError};

/// Failures of a single topic or partition operation. Each maps to the code Kafka returns
/// for the same situation; the mapping lives in [`BrokerError::code`] and nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("unknown topic id")]
    UnknownTopicId,
    #[error("{0}")]
    LogDirNotFound(String),
    #[error("this broker holds no replica of the partition")]
    ReplicaNotAvailable,
    #[error("Broker ID {0} is not currently registered")]
    BrokerIdNotRegistered(i32),
    #[error("Controller ID {0} is not currently registered.")]
    ControllerIdNotRegistered(i32),
    /// A quorum request for another cluster (AddRaftVoter, RemoveRaftVoter), with Kafka's words.
    #[error("The given id \"{given}\" doesn't match the cluster id \"{ours}\"")]
    InconsistentClusterId { given: String, ours: String },
    #[error("{0}")]
    TopicAlreadyExists(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidRecord(String),
    /// Records of a batch refused above the log (schema id validation), each by its index
    /// with the reason: the batch is refused whole and each named (KIP-467).
    #[error("{} records of the batch were refused: {}", .0.len(), .0.first().map_or("", |r| r.1.as_str()))]
    RecordsInvalid(Vec<(usize, String)>),
    /// A schema id this broker's registry may not have read yet: retriable, so the producer
    /// tries again rather than losing records the registry is about to know.
    #[error("{0}")]
    SchemaNotReady(String),
    #[error("{0}")]
    InvalidRegularExpression(String),
    #[error("{0}")]
    UnsupportedVersion(String),
    #[error("invalid required acks {0}")]
    InvalidRequiredAcks(i16),
    #[error("the partition is not served by this broker right now")]
    NotLeaderOrFollower,
    #[error("the write was appended but the in-sync replicas fell below min.insync.replicas")]
    NotEnoughReplicasAfterAppend,
    #[error("the in-sync replicas did not acknowledge the write in time")]
    RequestTimedOut,
    #[error("leader epoch {claimed} is older than the current {epoch}")]
    FencedLeaderEpoch { claimed: i32, epoch: i32 },
    #[error("leader epoch {claimed} is newer than the current {epoch}")]
    UnknownLeaderEpoch { claimed: i32, epoch: i32 },
    #[error("fewer in-sync replicas than min.insync.replicas (capped at the replica count) for an acks=all write")]
    NotEnoughReplicas,
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error("resource type {0} is not supported")]
    UnsupportedResource(i8),
    #[error("{0}")]
    PolicyViolation(String),
    /// A strict controller mutation quota (KIP-599) is exhausted.
    #[error("The throttling quota has been exceeded.")]
    ThrottlingQuotaExceeded,
    // Consumer groups (src/group).
    #[error("the group coordinator is still loading the offsets topic")]
    CoordinatorLoadInProgress,
    #[error("the group coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("this broker is not the coordinator of the group or transactional id")]
    NotCoordinator,
    #[error("the offsets are too large to be written to the offsets topic")]
    InvalidCommitOffsetSize,
    #[error("the coordinator could not write its record")]
    CoordinatorWriteFailed,
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("the member id is not known to the group")]
    UnknownMemberId,
    #[error("the generation is not the group's current generation")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("rejoin with the member id given in this response")]
    MemberIdRequired,
    #[error("another member with the same group.instance.id has joined")]
    FencedInstanceId,
    #[error("the member's protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error("the session timeout is outside the broker's allowed range")]
    InvalidSessionTimeout,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("the group is not empty")]
    NonEmptyGroup,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("the offset metadata is too large")]
    OffsetMetadataTooLarge,
    #[error("an open transaction committed offsets of the partition")]
    UnstableOffsetCommit,
    #[error("the transaction cannot go on; abort it")]
    TransactionAbortable,
    // Consumer groups of the "consumer" protocol (KIP-848): Kafka words each answer.
    #[error("{0}")]
    UnknownMember(String),
    #[error("{0}")]
    FencedInstance(String),
    #[error("{0}")]
    FencedMemberEpoch(String),
    #[error("{0}")]
    StaleMemberEpoch(String),
    #[error("{0}")]
    UnreleasedInstanceId(String),
    #[error("{0}")]
    UnsupportedAssignor(String),
    #[error("{0}")]
    GroupMaxSizeReached(String),
    #[error("{0}")]
    NoSuchGroup(String),
    /// A streams group's topology no topics can satisfy (KIP-1071).
    #[error("{0}")]
    StreamsInvalidTopology(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Txn(#[from] TxnError),
    #[error(transparent)]
    FetchSession(#[from] FetchSessionError),
    // The share-partition leader (src/share): share sessions and acknowledgements.
    #[error("The share session was not found.")]
    ShareSessionNotFound,
    #[error("The share session epoch is invalid.")]
    InvalidShareSessionEpoch,
    #[error("The limit of share sessions has been reached.")]
    ShareSessionLimitReached,
    #[error("{0}")]
    InvalidRecordState(String),
    // Cluster mode (src/cluster).
    #[error("the partition has no leader right now")]
    LeaderNotAvailable,
    #[error("no reassignment of the partition is in progress")]
    NoReassignmentInProgress,
    #[error("Leader election not needed for topic partition.")]
    ElectionNotNeeded,
    #[error("no replica of the partition is alive to lead it")]
    EligibleLeadersNotAvailable,
    #[error("the active controller could not be reached in time")]
    ControllerUnreachable,
    /// UNKNOWN_TOPIC_OR_PARTITION where Kafka explains which (the controller's APIs).
    #[error("{0}")]
    NoSuchPartition(String),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// Another broker's refusal of a request this one sent on a client's behalf (a
    /// transaction coordinator's AddPartitionsToTxn), passed on as Kafka passes it on.
    #[error("another broker answered {0:?}")]
    Peer(ResponseError),
    /// The share coordinator's refusal of a share-partition's state request, in Kafka's
    /// words (`ShareCoordinatorShard`), or another broker's coordinator's passed on.
    #[error("{message}")]
    ShareState {
        error: ResponseError,
        message: String,
    },
}

impl BrokerError {
    pub fn code(&self) -> i16 {
        self.response_error().code()
    }

    pub fn response_error(&self) -> ResponseError {
        use ResponseError as E;
        match self {
            BrokerError::Storage(err) => match err {
                StorageError::CorruptRecord(_) => E::CorruptMessage,
                StorageError::InvalidRecord(_) => E::InvalidRecord,
                StorageError::RecordsRefused(refused) => {
                    if refused.iter().any(|r| r.fault.is_timestamp()) {
                        E::InvalidTimestamp
                    } else {
                        E::InvalidRecord
                    }
                }
                StorageError::RecordTooLarge { .. } => E::MessageTooLarge,
                StorageError::UnsupportedMagic(_) => E::UnsupportedForMessageFormat,
                StorageError::OffsetOutOfRange { .. } => E::OffsetOutOfRange,
                StorageError::OutOfOrderSequence(_) => E::OutOfOrderSequenceNumber,
                StorageError::InvalidProducerEpoch(_) => E::InvalidProducerEpoch,
                StorageError::UnknownProducerId(_) => E::UnknownProducerId,
                StorageError::InvalidTxnState(_) => E::InvalidTxnState,
                StorageError::CoordinatorFenced(_) => E::TransactionCoordinatorFenced,
                _ => E::KafkaStorageError,
            },
            BrokerError::UnknownTopicOrPartition => E::UnknownTopicOrPartition,
            BrokerError::UnknownTopicId => E::UnknownTopicId,
            BrokerError::LogDirNotFound(_) => E::LogDirNotFound,
            BrokerError::ReplicaNotAvailable => E::ReplicaNotAvailable,
            BrokerError::BrokerIdNotRegistered(_) => E::BrokerIdNotRegistered,
            BrokerError::ControllerIdNotRegistered(_) => E::ControllerIdNotRegistered,
            BrokerError::InconsistentClusterId { .. } => E::InconsistentClusterId,
            BrokerError::TopicAlreadyExists(_) => E::TopicAlreadyExists,
            BrokerError::InvalidTopic(_) => E::InvalidTopicException,
            BrokerError::InvalidPartitions(_) => E::InvalidPartitions,
            BrokerError::InvalidReplicationFactor(_) => E::InvalidReplicationFactor,
            BrokerError::InvalidReplicaAssignment(_) => E::InvalidReplicaAssignment,
            BrokerError::InvalidConfig(_) => E::InvalidConfig,
            BrokerError::InvalidRequest(_) => E::InvalidRequest,
            BrokerError::InvalidRecord(_) | BrokerError::RecordsInvalid(_) => E::InvalidRecord,
            BrokerError::SchemaNotReady(_) => E::RequestTimedOut,
            BrokerError::InvalidRegularExpression(_) => E::InvalidRegularExpression,
            BrokerError::UnsupportedVersion(_) => E::UnsupportedVersion,
            BrokerError::InvalidRequiredAcks(_) => E::InvalidRequiredAcks,
            BrokerError::NotEnoughReplicas => E::NotEnoughReplicas,
            BrokerError::NotEnoughReplicasAfterAppend => E::NotEnoughReplicasAfterAppend,
            BrokerError::RequestTimedOut => E::RequestTimedOut,
            BrokerError::FencedLeaderEpoch { .. } => E::FencedLeaderEpoch,
            BrokerError::UnknownLeaderEpoch { .. } => E::UnknownLeaderEpoch,
            BrokerError::NotLeaderOrFollower | BrokerError::ShuttingDown => E::NotLeaderOrFollower,
            BrokerError::UnsupportedResource(_) => E::InvalidRequest,
            BrokerError::PolicyViolation(_) => E::PolicyViolation,
            BrokerError::ThrottlingQuotaExceeded => E::ThrottlingQuotaExceeded,
            BrokerError::CoordinatorLoadInProgress => E::CoordinatorLoadInProgress,
            BrokerError::CoordinatorNotAvailable => E::CoordinatorNotAvailable,
            BrokerError::NotCoordinator => E::NotCoordinator,
            BrokerError::InvalidCommitOffsetSize => E::InvalidCommitOffsetSize,
            BrokerError::CoordinatorWriteFailed => E::UnknownServerError,
            BrokerError::InvalidGroupId => E::InvalidGroupId,
            BrokerError::UnknownMemberId => E::UnknownMemberId,
            BrokerError::IllegalGeneration => E::IllegalGeneration,
            BrokerError::RebalanceInProgress => E::RebalanceInProgress,
            BrokerError::MemberIdRequired => E::MemberIdRequired,
            BrokerError::FencedInstanceId => E::FencedInstanceId,
            BrokerError::InconsistentGroupProtocol => E::InconsistentGroupProtocol,
            BrokerError::InvalidSessionTimeout => E::InvalidSessionTimeout,
            BrokerError::GroupIdNotFound => E::GroupIdNotFound,
            BrokerError::NonEmptyGroup => E::NonEmptyGroup,
            BrokerError::GroupSubscribedToTopic => E::GroupSubscribedToTopic,
            BrokerError::OffsetMetadataTooLarge => E::OffsetMetadataTooLarge,
            BrokerError::ShareSessionNotFound => E::ShareSessionNotFound,
            BrokerError::InvalidShareSessionEpoch => E::InvalidShareSessionEpoch,
            BrokerError::ShareSessionLimitReached => E::ShareSessionLimitReached,
            BrokerError::InvalidRecordState(_) => E::InvalidRecordState,
            BrokerError::Txn(err) => match err {
                TxnError::InvalidProducerIdMapping => E::InvalidProducerIdMapping,
                TxnError::ProducerFenced => E::ProducerFenced,
                TxnError::InvalidProducerEpoch => E::InvalidProducerEpoch,
                TxnError::ConcurrentTransactions => E::ConcurrentTransactions,
                TxnError::InvalidTxnState | TxnError::NotInTransaction => E::InvalidTxnState,
                TxnError::InvalidTransactionTimeout => E::InvalidTransactionTimeout,
                TxnError::TransactionalIdNotFound => E::TransactionalIdNotFound,
            },
            BrokerError::UnstableOffsetCommit => E::UnstableOffsetCommit,
            BrokerError::LeaderNotAvailable => E::LeaderNotAvailable,
            BrokerError::NoReassignmentInProgress => E::NoReassignmentInProgress,
            BrokerError::ControllerUnreachable => E::RequestTimedOut,
            BrokerError::NoSuchPartition(_) => E::UnknownTopicOrPartition,
            BrokerError::ElectionNotNeeded => E::ElectionNotNeeded,
            BrokerError::EligibleLeadersNotAvailable => E::EligibleLeadersNotAvailable,
            BrokerError::Metadata(err) => match err {
                MetadataError::Command(refused) => match refused {
                    CommandError::TopicExists(_) | CommandError::TopicIdInUse(_) => {
                        E::TopicAlreadyExists
                    }
                    CommandError::UnknownTopic(_) | CommandError::UnknownPartition { .. } => {
                        E::UnknownTopicOrPartition
                    }
                    CommandError::UnknownBroker(_)
                    | CommandError::InvalidAssignment(_)
                    | CommandError::NoAvailableReplica(_) => E::InvalidReplicaAssignment,
                    CommandError::FencedLeaderEpoch { .. } => E::FencedLeaderEpoch,
                    CommandError::StalePartitionEpoch { .. } => E::InvalidUpdateVersion,
                    CommandError::NotLeader { .. } => E::NotLeaderOrFollower,
                    CommandError::InvalidIsr(_) | CommandError::IneligibleReplica(_) => {
                        E::InvalidRequest
                    }
                    CommandError::StaleIncarnation { .. }
                    | CommandError::StaleBrokerEpoch { .. } => E::StaleBrokerEpoch,
                    CommandError::NoReassignmentInProgress { .. } => E::NoReassignmentInProgress,
                    CommandError::ElectionNotNeeded => E::ElectionNotNeeded,
                    CommandError::PreferredLeaderNotAvailable(_) => E::PreferredLeaderNotAvailable,
                    CommandError::UnknownScramCredential { .. } => E::ResourceNotFound,
                    CommandError::InvalidFeatureUpdate { .. } => E::InvalidUpdateVersion,
                },
                MetadataError::VoterChange(refused) => match refused.reason {
                    VoterChangeReason::RequestTimedOut => E::RequestTimedOut,
                    VoterChangeReason::UnsupportedVersion => E::UnsupportedVersion,
                    VoterChangeReason::DuplicateVoter => E::DuplicateVoter,
                    VoterChangeReason::VoterNotFound => E::VoterNotFound,
                    VoterChangeReason::InvalidRequest => E::InvalidRequest,
                    VoterChangeReason::NotRegistered => E::ControllerIdNotRegistered,
                },
                MetadataError::Timeout(_) => E::RequestTimedOut,
                MetadataError::NotController { .. }
                | MetadataError::Unavailable(_)
                | MetadataError::Config(_)
                | MetadataError::Io(_) => E::NotController,
            },
            BrokerError::TransactionAbortable => E::TransactionAbortable,
            BrokerError::Peer(error) => *error,
            BrokerError::ShareState { error, .. } => *error,
            BrokerError::UnknownMember(_) => E::UnknownMemberId,
            BrokerError::FencedInstance(_) => E::FencedInstanceId,
            BrokerError::FencedMemberEpoch(_) => E::FencedMemberEpoch,
            BrokerError::StaleMemberEpoch(_) => E::StaleMemberEpoch,
            BrokerError::UnreleasedInstanceId(_) => E::UnreleasedInstanceId,
            BrokerError::UnsupportedAssignor(_) => E::UnsupportedAssignor,
            BrokerError::GroupMaxSizeReached(_) => E::GroupMaxSizeReached,
            BrokerError::NoSuchGroup(_) => E::GroupIdNotFound,
            BrokerError::StreamsInvalidTopology(_) => E::StreamsInvalidTopology,
            BrokerError::Auth(err) => match err {
                AuthError::AuthenticationFailed(_) => E::SaslAuthenticationFailed,
                AuthError::UnsupportedMechanism(_) => E::UnsupportedSaslMechanism,
                AuthError::IllegalSaslState(_) => E::IllegalSaslState,
                AuthError::ResourceNotFound(_) => E::ResourceNotFound,
                AuthError::DuplicateResource(_) => E::DuplicateResource,
                AuthError::UnacceptableCredential(_) => E::UnacceptableCredential,
                AuthError::InvalidAcl(_) => E::InvalidRequest,
                AuthError::SecurityDisabled => E::SecurityDisabled,
                AuthError::TopicDenied => E::TopicAuthorizationFailed,
                AuthError::GroupDenied => E::GroupAuthorizationFailed,
                AuthError::ClusterDenied => E::ClusterAuthorizationFailed,
                AuthError::TransactionalIdDenied => E::TransactionalIdAuthorizationFailed,
            },
            BrokerError::FetchSession(err) => match err {
                FetchSessionError::NotFound => E::FetchSessionIdNotFound,
                FetchSessionError::InvalidEpoch => E::InvalidFetchSessionEpoch,
                FetchSessionError::TopicIdMismatch => E::FetchSessionTopicIdError,
            },
        }
    }

    /// What a client is told when a coordinator's write to its internal topic failed, or was
    /// not replicated in time: the codes Kafka's GroupMetadataManager and
    /// TransactionStateManager answer, which send clients to look the coordinator up again
    /// rather than give up. Other errors (a fenced producer's TxnOffsetCommit) pass through.
    pub fn for_coordinator_write(self, write: CoordinatorWrite) -> BrokerError {
        use ResponseError as E;
        match (self.response_error(), write) {
            (
                E::UnknownTopicOrPartition | E::NotEnoughReplicas | E::NotEnoughReplicasAfterAppend,
                _,
            ) => BrokerError::CoordinatorNotAvailable,
            // Members of a group whose assignment did not get stored rebalance (Kafka's storeGroup).
            (E::RequestTimedOut, CoordinatorWrite::GroupMetadata) => {
                BrokerError::RebalanceInProgress
            }
            (E::RequestTimedOut, _) => BrokerError::CoordinatorNotAvailable,
            (E::NotLeaderOrFollower | E::KafkaStorageError, _) => BrokerError::NotCoordinator,
            (
                E::MessageTooLarge | E::RecordListTooLarge | E::InvalidFetchSize,
                CoordinatorWrite::Offsets,
            ) => BrokerError::InvalidCommitOffsetSize,
            (E::MessageTooLarge | E::RecordListTooLarge | E::InvalidFetchSize, _) => {
                BrokerError::CoordinatorWriteFailed
            }
            _ => self,
        }
    }

    /// What a client is told when a change the broker sends to the active controller (ACLs,
    /// SCRAM credentials) did not get there: Kafka's broker forwards it, retries while the
    /// controller moves, and answers REQUEST_TIMED_OUT once the forwarding times out
    /// (ForwardingManager's onTimeout). Refusals by the controller pass through.
    pub fn for_forwarded_request(self) -> BrokerError {
        match self {
            BrokerError::Metadata(
                MetadataError::NotController { .. }
                | MetadataError::Timeout(_)
                | MetadataError::Unavailable(_)
                | MetadataError::Io(_),
            ) => BrokerError::ControllerUnreachable,
            other => other,
        }
    }

    /// A fresh copy of a coordinator write's error for each member waiting on it. Only the
    /// codes [`Self::for_coordinator_write`] gives a group's metadata write can be copied;
    /// anything else was unexpected (Kafka logs it) and is UNKNOWN_SERVER_ERROR.
    pub fn for_each_waiter(&self) -> fn() -> BrokerError {
        match self {
            BrokerError::CoordinatorNotAvailable => || BrokerError::CoordinatorNotAvailable,
            BrokerError::NotCoordinator => || BrokerError::NotCoordinator,
            BrokerError::RebalanceInProgress => || BrokerError::RebalanceInProgress,
            _ => || BrokerError::CoordinatorWriteFailed,
        }
    }

    /// The message sent beside the code where the response has room for one.
    /// Whether Kafka raises this error inside the log's append (its ReplicaManager then
    /// answers a Produce with the partition's log start offset), rather than before it
    /// (unknown partitions, leadership) or as a batch it cannot read (size, CRC, storage).
    pub fn in_append(&self) -> bool {
        match self {
            BrokerError::NotEnoughReplicas | BrokerError::RecordsInvalid(_) => true,
            BrokerError::Storage(err) => matches!(
                err,
                StorageError::InvalidRecord(_)
                    | StorageError::RecordsRefused(_)
                    | StorageError::OutOfOrderSequence(_)
                    | StorageError::InvalidProducerEpoch(_)
                    | StorageError::UnknownProducerId(_)
                    | StorageError::InvalidTxnState(_)
            ),
            _ => false,
        }
    }

    pub fn message(&self) -> Option<String> {
        match self {
            BrokerError::UnknownTopicOrPartition
            | BrokerError::UnknownTopicId
            | BrokerError::NoReassignmentInProgress => None,
            // Kafka sends no message with a batch refused as too large, recompressed or not.
            BrokerError::Storage(StorageError::RecordTooLarge { .. }) => None,
            // Kafka sends no message with authorization failures.
            BrokerError::Auth(
                AuthError::TopicDenied
                | AuthError::GroupDenied
                | AuthError::ClusterDenied
                | AuthError::TransactionalIdDenied,
            ) => None,
            // A share coordinator's answer Kafka sends without words.
            BrokerError::ShareState { message, .. } if message.is_empty() => None,
            other => Some(other.to_string()),
        }
    }
}

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// Which of a coordinator's writes failed: Kafka tells clients of each a little differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorWrite {
    /// OffsetCommit and TxnOffsetCommit (GroupMetadataManager's maybeConvertOffsetCommitError).
    Offsets,
    /// A group's membership and assignment after SyncGroup (GroupMetadataManager.storeGroup).
    GroupMetadata,
    /// A transactional id's state (TransactionStateManager.appendTransactionToLog).
    TransactionState,
    /// A KIP-848 consumer group's records (the coordinator runtime's `normalizeException`).
    GroupRecords,
    /// A share-partition's state (the share coordinator runtime's `normalizeException`).
    ShareState,
}

/// Failures of authentication, authorization and their administration APIs. Declared here,
/// with every other error, so that this module imports nothing above it.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    AuthenticationFailed(String),
    #[error("{0}")]
    UnsupportedMechanism(String),
    #[error("{0}")]
    IllegalSaslState(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    DuplicateResource(String),
    #[error("{0}")]
    UnacceptableCredential(String),
    #[error("{0}")]
    InvalidAcl(String),
    #[error("No Authorizer is configured.")]
    SecurityDisabled,
    #[error("Topic authorization failed.")]
    TopicDenied,
    #[error("Group authorization failed.")]
    GroupDenied,
    #[error("Cluster authorization failed.")]
    ClusterDenied,
    #[error("Transactional Id authorization failed.")]
    TransactionalIdDenied,
}

/// The transaction coordinator's refusals. Declared here, with every other error, so that
/// this module imports nothing above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("the producer id is not the one of this transactional id")]
    InvalidProducerIdMapping,
    #[error("a newer producer with the same transactional id fenced this one")]
    ProducerFenced,
    #[error("the producer epoch is not the current one")]
    InvalidProducerEpoch,
    #[error("another operation on this transaction is in progress")]
    ConcurrentTransactions,
    #[error("the transaction is not in a state that allows this")]
    InvalidTxnState,
    #[error("the transaction timeout is not between 1 ms and transaction_max_timeout_ms")]
    InvalidTransactionTimeout,
    #[error("the transactional id is not known")]
    TransactionalIdNotFound,
    #[error("Partition was not added to the transaction")]
    NotInTransaction,
}

/// Why an incremental fetch cannot go on with its session (KIP-227). Declared here, with
/// every other error, so that this module imports nothing above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FetchSessionError {
    #[error("no fetch session with this id")]
    NotFound,
    #[error("not the epoch the fetch session expects")]
    InvalidEpoch,
    #[error("the fetch session names topics by id and the request by name, or the reverse")]
    TopicIdMismatch,
}

/// Why a client's telemetry request is refused (KIP-714). Declared here, with every other
/// error, so that this module imports nothing above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid client instance id, or a push after a terminating one")]
    InvalidRequest,
    #[error("the request arrived before the next push interval")]
    ThrottlingQuotaExceeded,
    #[error("not the subscription id the client was given")]
    UnknownSubscriptionId,
    #[error("unknown compression type")]
    UnsupportedCompressionType,
    #[error("the metrics are larger than telemetry.max_bytes")]
    TelemetryTooLarge,
    #[error("the metrics could not be decoded")]
    InvalidRecord,
}

impl TelemetryError {
    pub fn code(self) -> i16 {
        let error = match self {
            TelemetryError::InvalidRequest => ResponseError::InvalidRequest,
            TelemetryError::ThrottlingQuotaExceeded => ResponseError::ThrottlingQuotaExceeded,
            TelemetryError::UnknownSubscriptionId => ResponseError::UnknownSubscriptionId,
            TelemetryError::UnsupportedCompressionType => ResponseError::UnsupportedCompressionType,
            TelemetryError::TelemetryTooLarge => ResponseError::TelemetryTooLarge,
            TelemetryError::InvalidRecord => ResponseError::InvalidRecord,
        };
        error.code()
    }
}
