//! Broker configuration: `etc/samsa.toml`, overridden by command-line flags.
//!
//! Key names follow Kafka's where Kafka has one (`log.segment.bytes` becomes
//! `segment_bytes`), so an operator's Kafka knowledge carries over.

pub mod compression;
pub mod link;
mod quorum;
mod sasl;
pub mod schema_registry;
pub mod telemetry;
mod validate;

pub use quorum::{derived_cluster_id, parse_voters, quorum_config, ProcessRole, QuorumConfig};
pub use sasl::{
    SaslConfig, SaslMechanism, ScramCredential, ScramMechanism, ScramUserConfig, MAX_ITERATIONS,
    MIN_ITERATIONS,
};

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors raised while loading configuration; all are fatal at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Whether record timestamps come from the producer or from the broker's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TimestampKind {
    CreateTime,
    LogAppendTime,
}

impl TimestampKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampKind::CreateTime => "CreateTime",
            TimestampKind::LogAppendTime => "LogAppendTime",
        }
    }
}

/// Whether a group may change protocol while it has members
/// (`group.consumer.migration.policy`): `upgrade` lets a consumer-protocol member turn a
/// classic group into a consumer group, `downgrade` the last one leaving turn it back,
/// `bidirectional` (Kafka's default) both, `disabled` neither, and then classic members
/// may not join a consumer group at all. An empty group changes either way whatever this
/// says, as in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationPolicy {
    Bidirectional,
    Upgrade,
    Downgrade,
    Disabled,
}

impl MigrationPolicy {
    pub fn upgrades(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Bidirectional | MigrationPolicy::Upgrade
        )
    }

    pub fn downgrades(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Bidirectional | MigrationPolicy::Downgrade
        )
    }
}

/// Where descriptions of streams topologies that members push
/// (StreamsGroupTopologyDescriptionUpdate, KIP-1331) are kept: Kafka's
/// `group.streams.topology.description.plugin.class`. `none` (Kafka's default, no plugin)
/// turns the feature off; `memory` keeps them in the broker's memory as Kafka's
/// `InMemoryTopologyDescriptionPlugin` does, so they are gone after a restart or a
/// coordinator move until the group's topology changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopologyDescriptionStore {
    None,
    Memory,
}

/// How a listener's connections are secured (Kafka's security protocols).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// An additional listener (`[[listener]]`), beside the plaintext one on `listen`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Name shown in logs and in the broker's `listeners` config entry.
    pub name: String,
    pub address: SocketAddr,
    pub protocol: SecurityProtocol,
    /// `HOST:PORT` given to clients that connect through this listener; defaults to `address`.
    pub advertised: Option<String>,
}

/// Certificates for SSL listeners (`[tls]`), all PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The broker's certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key of the leaf certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
}

/// The server-side assignors of consumer groups samsa implements (`group_consumer_assignors`).
pub const CONSUMER_ASSIGNORS: &[&str] = &["uniform", "range"];

/// The whole broker configuration. Every field has a default so an empty file is valid.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the Kafka listener binds.
    pub listen: SocketAddr,
    /// `host:port` clients are told to connect to in Metadata; defaults to `listen`.
    pub advertised_listener: Option<String>,
    /// Address of the Prometheus metrics endpoint; `None` disables it.
    pub metrics_listen: Option<SocketAddr>,
    /// Directory holding the topic catalogue and one directory per topic-partition.
    pub data_dir: PathBuf,
    /// This broker's id in Metadata responses.
    pub node_id: i32,
    /// Cluster id reported to clients; generated once and kept in the data directory when unset.
    pub cluster_id: Option<String>,
    /// Partitions of an auto-created topic, and of CreateTopics with `num_partitions = -1`.
    pub num_partitions: i32,
    /// Replication factor of CreateTopics with `replication_factor = -1` and of auto-created
    /// topics (`default.replication.factor`). Only 1 is possible on a single node.
    pub default_replication_factor: i16,
    /// Create unknown topics when a client asks for their metadata (Kafka's `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Largest record batch accepted, per topic default (Kafka's `message.max.bytes`).
    pub message_max_bytes: i32,
    /// Largest request frame; a bigger one closes the connection.
    pub socket_request_max_bytes: i32,
    /// Roll a segment when it reaches this size.
    pub segment_bytes: i64,
    /// Roll a segment when its first record is this old.
    pub segment_ms: i64,
    /// Bytes of log between two sparse index entries.
    pub index_interval_bytes: i32,
    /// Delete segments older than this; -1 keeps them forever.
    pub retention_ms: i64,
    /// Delete old segments while a partition is larger than this; -1 for no limit.
    pub retention_bytes: i64,
    /// How often retention is applied.
    pub retention_check_interval_ms: u64,
    /// fsync a partition after this many records; 1 fsyncs every write; unset leaves it to `flush_ms` and the OS.
    pub flush_messages: Option<u64>,
    /// fsync partitions with unflushed data this often; unset leaves it to the OS.
    pub flush_ms: Option<u64>,
    /// How many storage threads run the broker's disk work (appends, reads, fsyncs, rolls,
    /// retention): the event loop never waits on a disk (see `samsa_storage::StorageThreads`).
    pub storage_threads: usize,
    /// Timestamp type of new topics (Kafka's `log.message.timestamp.type`).
    pub message_timestamp_type: TimestampKind,
    /// A CreateTime record this far before the broker's clock is refused
    /// (`log.message.timestamp.before.max.ms`; the largest value, the default, for no bound).
    pub message_timestamp_before_max_ms: i64,
    /// ... or this far after it (`log.message.timestamp.after.max.ms`, an hour by default).
    pub message_timestamp_after_max_ms: i64,
    /// Codec topics keep their batches in (Kafka's `compression.type`): `producer` keeps each
    /// as it came; `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd` recompresses the others.
    pub compression_type: String,
    /// Levels of the codecs above (KIP-390's `compression.gzip.level` and so on).
    pub compression_gzip_level: i32,
    pub compression_lz4_level: i32,
    pub compression_zstd_level: i32,
    /// How long a new group waits for more members before its first rebalance completes
    /// (Kafka's `group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: u64,
    /// Smallest session timeout a member may ask for (`group.min.session.timeout.ms`).
    pub group_min_session_timeout_ms: i32,
    /// Largest session timeout a member may ask for (`group.max.session.timeout.ms`).
    pub group_max_session_timeout_ms: i32,
    /// A consumer-protocol member that does not heartbeat for this long is removed
    /// (`group.consumer.session.timeout.ms`).
    pub group_consumer_session_timeout_ms: u64,
    /// How often consumer-protocol members are asked to heartbeat
    /// (`group.consumer.heartbeat.interval.ms`).
    pub group_consumer_heartbeat_interval_ms: u64,
    /// Most members of one consumer-protocol group (`group.consumer.max.size`).
    pub group_consumer_max_size: u32,
    /// Server-side assignors members may choose, the default first
    /// (`group.consumer.assignors`): `uniform` and `range`.
    pub group_consumer_assignors: Vec<String>,
    /// Whether groups with members change protocol (`group.consumer.migration.policy`).
    pub group_consumer_migration_policy: MigrationPolicy,
    /// A streams group member that does not heartbeat for this long is removed
    /// (`group.streams.session.timeout.ms`).
    pub group_streams_session_timeout_ms: u64,
    /// How often streams group members are asked to heartbeat
    /// (`group.streams.heartbeat.interval.ms`).
    pub group_streams_heartbeat_interval_ms: u64,
    /// Most members of one streams group (`group.streams.max.size`).
    pub group_streams_max_size: u32,
    /// A share group member that does not heartbeat for this long is removed
    /// (`group.share.session.timeout.ms`).
    pub group_share_session_timeout_ms: u64,
    /// How often share group members are asked to heartbeat
    /// (`group.share.heartbeat.interval.ms`).
    pub group_share_heartbeat_interval_ms: u64,
    /// Most members of one share group (`group.share.max.size`).
    pub group_share_max_size: u32,
    /// Least time between two target assignments of a share group
    /// (`group.share.assignment.interval.ms`).
    pub group_share_assignment_interval_ms: u64,
    /// Standby replicas of each stateful task (`group.streams.num.standby.replicas`).
    pub group_streams_num_standby_replicas: u32,
    /// How long a new streams group waits for more members before its first assignment
    /// (`group.streams.initial.rebalance.delay.ms`).
    pub group_streams_initial_rebalance_delay_ms: u64,
    /// Least time between two target assignments of a streams group
    /// (`group.streams.assignment.interval.ms`).
    pub group_streams_assignment_interval_ms: u64,
    /// How often members report their tasks' changelog offsets
    /// (`group.streams.task.offset.interval.ms`).
    pub group_streams_task_offset_interval_ms: u64,
    /// The changelog lag up to which a member counts as caught up on a task
    /// (`group.streams.acceptable.recovery.lag`).
    pub group_streams_acceptable_recovery_lag: i64,
    /// Where pushed topology descriptions are kept
    /// (`group.streams.topology.description.plugin.class`).
    pub group_streams_topology_description_store: TopologyDescriptionStore,
    /// Partitions of the internal `__consumer_offsets` topic when it is first created
    /// (`offsets.topic.num.partitions`).
    pub offsets_topic_num_partitions: i32,
    /// Committed offsets of a group that has had no members for this long are deleted
    /// (`offsets.retention.minutes`).
    pub offsets_retention_minutes: i64,
    /// How often expired offsets are looked for (`offsets.retention.check.interval.ms`).
    pub offsets_retention_check_interval_ms: u64,
    /// How long an OffsetCommit (and SyncGroup's write of the assignment) waits for the
    /// in-sync replicas of the offsets partition before it fails
    /// (`offsets.commit.timeout.ms`).
    pub offsets_commit_timeout_ms: u64,
    /// Segment size of the `__consumer_offsets` topic when it is first created
    /// (`offsets.topic.segment.bytes`): compaction only cleans sealed segments.
    pub offsets_topic_segment_bytes: i32,
    /// How often the log cleaner looks for compacted partitions due a cleaning
    /// (Kafka's `log.cleaner.backoff.ms`).
    pub log_cleaner_interval_ms: u64,
    /// Partitions of the internal `__transaction_state` topic when it is first created
    /// (`transaction.state.log.num.partitions`; 1 rather than Kafka's 50, as for the
    /// offsets topic: one node gains nothing from spreading it).
    pub transaction_state_num_partitions: i32,
    /// Partitions of the share coordinator's `__share_group_state` topic when it is first
    /// created (`share.coordinator.state.topic.num.partitions`; 1 rather than Kafka's 50, as
    /// for the other coordinators' topics).
    pub share_coordinator_state_topic_num_partitions: i32,
    /// Replicas of `__share_group_state` when a cluster creates it, fewer while fewer brokers
    /// are up (`share.coordinator.state.topic.replication.factor`).
    pub share_coordinator_state_topic_replication_factor: i16,
    /// The topic's `min.insync.replicas` (`share.coordinator.state.topic.min.isr`).
    pub share_coordinator_state_topic_min_isr: i16,
    /// The topic's `segment.bytes` (`share.coordinator.state.topic.segment.bytes`).
    pub share_coordinator_state_topic_segment_bytes: i32,
    /// Updates of a share-partition written between two snapshots of its whole state
    /// (`share.coordinator.snapshot.update.records.per.snapshot`).
    pub share_coordinator_snapshot_update_records_per_snapshot: i32,
    /// How long a share state write waits for the topic's in-sync replicas
    /// (`share.coordinator.write.timeout.ms`).
    pub share_coordinator_write_timeout_ms: u64,
    /// How often the share coordinator drops the `__share_group_state` records that later
    /// snapshots made redundant (`share.coordinator.state.topic.prune.interval.ms`).
    pub share_coordinator_state_topic_prune_interval_ms: u64,
    /// Largest transaction timeout a producer may ask for (`transaction.max.timeout.ms`).
    pub transaction_max_timeout_ms: i32,
    /// Idle transactional ids unused this long are forgotten (`transactional.id.expiration.ms`).
    pub transactional_id_expiration_ms: i64,
    /// A producer's state in a partition (its sequences, for deduplication) is dropped once
    /// it has written nothing there for this long and has no open transaction
    /// (`producer.id.expiration.ms`).
    pub producer_id_expiration_ms: i64,
    /// Default for topics' `min.insync.replicas`: how many in-sync replicas an acks=all write
    /// needs (`min.insync.replicas`).
    pub min_insync_replicas: i32,
    /// How often transactions open past their timeout are aborted
    /// (`transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// How often expired transactional ids are looked for
    /// (`transaction.remove.expired.transaction.cleanup.interval.ms`).
    pub transaction_remove_expired_transaction_cleanup_interval_ms: u64,
    /// Largest metadata string a committed offset may carry (`offset.metadata.max.bytes`).
    pub offset_metadata_max_bytes: usize,
    /// Listeners beside `listen`, e.g. an SSL one.
    #[serde(rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// Certificates for SSL and SASL_SSL listeners.
    pub tls: Option<TlsConfig>,
    /// Mechanisms and bootstrap users of SASL listeners.
    pub sasl: Option<SaslConfig>,
    /// Client telemetry (KIP-714): subscriptions and the bounds on pushed metrics.
    pub telemetry: telemetry::TelemetryConfig,
    /// The built-in Confluent-compatible schema registry (`[schema_registry]`).
    pub schema_registry: schema_registry::SchemaRegistryConfig,
    /// Cluster links this cluster mirrors topics from (`[[link]]`).
    #[serde(rename = "link")]
    pub links: Vec<link::LinkConfig>,
    /// Enforce ACLs (Kafka's `authorizer.class.name` set to its standard authorizer).
    /// Off by default: without an authorizer every client may do everything.
    pub authorizer: bool,
    /// Principals (`User:name`) the authorizer always allows (Kafka's `super.users`).
    pub super_users: Vec<String>,
    /// Allow an operation on a resource that no ACL covers (`allow.everyone.if.no.acl.found`).
    pub allow_everyone_if_no_acl_found: bool,
    /// Connections accepted at once over all listeners; more are closed on accept (`max.connections`).
    pub max_connections: usize,
    /// Connections accepted at once from one IP address (`max.connections.per.ip`).
    pub max_connections_per_ip: usize,
    /// Samples a client quota's rate is measured over (`quota.window.num`).
    pub quota_window_num: u32,
    /// Length of each quota sample, in seconds (`quota.window.size.seconds`).
    pub quota_window_size_seconds: u32,
    /// Requests of one connection read ahead of the one being served.
    pub max_inflight_requests: usize,
    /// Close a connection that sends no request for this long (`connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// What this node does in a cluster (`process.roles`); only read with voters set.
    pub process_roles: Vec<ProcessRole>,
    /// The controllers, `ID@HOST:PORT,...`, the same on every node (`controller.quorum.voters`).
    /// Unset: the single-node broker.
    pub controller_quorum_voters: Option<String>,
    /// Controllers of an existing quorum, `HOST:PORT,...`, that a new controller asks to let
    /// it follow the metadata log as an observer (`controller.quorum.bootstrap.servers`,
    /// KIP-853); an operator then adds it as a voter (`kafka-metadata-quorum add-controller`).
    /// Instead of `controller_quorum_voters`, and needs `cluster_id`.
    pub controller_quorum_bootstrap_servers: Option<String>,
    /// Where this node's controller accepts the quorum's traffic; required for a voter.
    pub controller_listen: Option<SocketAddr>,
    /// This broker's rack, for rack-aware replica placement (`broker.rack`).
    pub rack: Option<String>,
    /// How often the broker heartbeats to the active controller (`broker.heartbeat.interval.ms`).
    pub broker_heartbeat_interval_ms: u64,
    /// A broker silent this long is fenced (`broker.session.timeout.ms`).
    pub broker_session_timeout_ms: u64,
    /// A follower that has not caught up with its leader for this long leaves the ISR
    /// (`replica.lag.time.max.ms`).
    pub replica_lag_time_max_ms: u64,
    /// How long a leader may hold a follower's fetch that finds nothing new
    /// (`replica.fetch.wait.max.ms`).
    pub replica_fetch_wait_max_ms: u64,
    /// Bytes a follower fetches per partition and request (`replica.fetch.max.bytes`).
    pub replica_fetch_max_bytes: i32,
    /// Wait after a failed fetch from a leader before trying again (`replica.fetch.backoff.ms`).
    pub replica_fetch_backoff_ms: u64,
    /// How long a leader waits for its in-sync replicas to take the transaction markers of a
    /// WriteTxnMarkers request before it answers REQUEST_TIMED_OUT, and (plus a margin) how
    /// long a transaction coordinator waits for that answer (`request.timeout.ms`).
    pub request_timeout_ms: u64,
    /// Replicas of `__consumer_offsets` when it is created in a cluster, at most as many as
    /// there are brokers (`offsets.topic.replication.factor`).
    pub offsets_topic_replication_factor: i16,
    /// Replicas of `__transaction_state` when it is created in a cluster, at most as many as
    /// there are brokers (`transaction.state.log.replication.factor`).
    pub transaction_state_replication_factor: i16,
    /// The active controller moves leadership back to preferred replicas
    /// (`auto.leader.rebalance.enable`).
    pub auto_leader_rebalance_enable: bool,
    /// How often it looks (`leader.imbalance.check.interval.seconds`).
    pub leader_imbalance_check_interval_seconds: u64,
    /// A broker is rebalanced when more than this share of the partitions it prefers are led
    /// elsewhere (`leader.imbalance.per.broker.percentage`).
    pub leader_imbalance_per_broker_percentage: u32,
    /// Incremental fetch sessions (KIP-227) the broker keeps at once
    /// (`max.incremental.fetch.session.cache.slots`); 0 keeps none.
    pub max_incremental_fetch_session_cache_slots: usize,
    /// How long a fetch session is safe from eviction after its creation, and how long it
    /// may be idle before any new session evicts it
    /// (`min.incremental.fetch.session.eviction.ms`).
    pub min_incremental_fetch_session_eviction_ms: u64,
    /// Partitions cached over all fetch sessions (samsa's own bound on their memory; a
    /// topic name of more than 256 bytes counts once more per 256 bytes).
    pub max_incremental_fetch_session_cache_partitions: usize,
    /// How long a share group's member holds the records it acquired before they may go to
    /// another (`group.share.record.lock.duration.ms`, 1000-3600000).
    pub group_share_record_lock_duration_ms: i64,
    /// Deliveries of a record to a share group before it is archived
    /// (`group.share.delivery.count.limit`, 2-10).
    pub group_share_delivery_count_limit: i16,
    /// Records in flight (past the share-partition start offset, not yet acknowledged) per
    /// share-partition (`group.share.partition.max.record.locks`, 100-10000).
    pub group_share_partition_max_record_locks: i64,
    /// Share sessions the broker keeps at once (`group.share.max.share.sessions`).
    pub group_share_max_share_sessions: usize,
    /// Keys set in the file or on the command line, so DescribeConfigs can tell an
    /// operator's value (STATIC_BROKER_CONFIG) from a built-in default.
    #[serde(skip)]
    pub explicit: BTreeSet<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9092".parse().expect("valid literal address"),
            advertised_listener: None,
            metrics_listen: None,
            data_dir: PathBuf::from("./data"),
            node_id: 1,
            cluster_id: None,
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: true,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 100 * 1024 * 1024,
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            retention_check_interval_ms: 5 * 60 * 1000,
            flush_messages: None,
            flush_ms: None,
            storage_threads: samsa_storage::DEFAULT_STORAGE_THREADS,
            message_timestamp_type: TimestampKind::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 60 * 60 * 1000,
            compression_type: "producer".into(),
            compression_gzip_level: compression::GZIP_DEFAULT_LEVEL,
            compression_lz4_level: compression::LZ4_DEFAULT_LEVEL,
            compression_zstd_level: compression::ZSTD_DEFAULT_LEVEL,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            group_consumer_max_size: i32::MAX as u32,
            group_consumer_assignors: vec!["uniform".to_owned(), "range".to_owned()],
            group_consumer_migration_policy: MigrationPolicy::Bidirectional,
            group_streams_session_timeout_ms: 45_000,
            group_streams_heartbeat_interval_ms: 5_000,
            group_streams_max_size: i32::MAX as u32,
            group_share_session_timeout_ms: 45_000,
            group_share_heartbeat_interval_ms: 5_000,
            group_share_max_size: 200,
            group_share_assignment_interval_ms: 1_000,
            group_streams_num_standby_replicas: 0,
            group_streams_initial_rebalance_delay_ms: 3_000,
            group_streams_assignment_interval_ms: 1_000,
            group_streams_task_offset_interval_ms: 60_000,
            group_streams_acceptable_recovery_lag: 10_000,
            group_streams_topology_description_store: TopologyDescriptionStore::None,
            offsets_topic_num_partitions: 1,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            log_cleaner_interval_ms: 15_000,
            transaction_state_num_partitions: 1,
            share_coordinator_state_topic_num_partitions: 1,
            share_coordinator_state_topic_replication_factor: 3,
            share_coordinator_state_topic_min_isr: 2,
            share_coordinator_state_topic_segment_bytes: 100 * 1024 * 1024,
            share_coordinator_snapshot_update_records_per_snapshot: 500,
            share_coordinator_write_timeout_ms: 5_000,
            share_coordinator_state_topic_prune_interval_ms: 300_000,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 7 * 24 * 60 * 60 * 1000,
            producer_id_expiration_ms: 24 * 60 * 60 * 1000,
            min_insync_replicas: 1,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            transaction_remove_expired_transaction_cleanup_interval_ms: 60 * 60 * 1000,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_retention_check_interval_ms: 600_000,
            offsets_commit_timeout_ms: 5000,
            offset_metadata_max_bytes: 4096,
            listeners: Vec::new(),
            tls: None,
            sasl: None,
            telemetry: telemetry::TelemetryConfig::default(),
            schema_registry: schema_registry::SchemaRegistryConfig::default(),
            links: Vec::new(),
            authorizer: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            max_inflight_requests: 64,
            connections_max_idle_ms: 10 * 60 * 1000,
            process_roles: vec![ProcessRole::Broker, ProcessRole::Controller],
            controller_quorum_voters: None,
            controller_quorum_bootstrap_servers: None,
            controller_listen: None,
            rack: None,
            broker_heartbeat_interval_ms: 2000,
            broker_session_timeout_ms: 9000,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1_048_576,
            replica_fetch_backoff_ms: 1000,
            request_timeout_ms: 30_000,
            offsets_topic_replication_factor: 3,
            transaction_state_replication_factor: 3,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
            max_incremental_fetch_session_cache_slots: 1000,
            min_incremental_fetch_session_eviction_ms: 120_000,
            max_incremental_fetch_session_cache_partitions: 500_000,
            group_share_record_lock_duration_ms: 30_000,
            group_share_delivery_count_limit: 5,
            group_share_partition_max_record_locks: 2000,
            group_share_max_share_sessions: 2000,
            explicit: BTreeSet::new(),
        }
    }
}

/// Command-line values that take precedence over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// Reads `path`, applies `overrides`, and checks the values.
    pub fn load(path: &Path, overrides: Overrides) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        let mut config: Config = toml::from_str(text)?;
        let table: toml::Table = toml::from_str(text)?;
        config.explicit = table.keys().cloned().collect();
        Ok(config)
    }

    /// Whether `key` was set by the operator rather than left at its default.
    pub fn is_explicit(&self, key: &str) -> bool {
        self.explicit.contains(key)
    }

    pub fn apply(&mut self, overrides: Overrides) {
        if let Some(listen) = overrides.listen {
            self.listen = listen;
            self.explicit.insert("listen".into());
        }
        if let Some(dir) = overrides.data_dir {
            self.data_dir = dir;
            self.explicit.insert("data_dir".into());
        }
        if let Some(metrics) = overrides.metrics_listen {
            self.metrics_listen = Some(metrics);
            self.explicit.insert("metrics_listen".into());
        }
    }

    /// The host and port clients are told to use.
    pub fn advertised(&self) -> (String, i32) {
        self.advertised_listener
            .as_deref()
            .and_then(parse_host_port)
            .unwrap_or_else(|| (self.listen.ip().to_string(), i32::from(self.listen.port())))
    }
}

pub fn parse_host_port(s: &str) -> Option<(String, i32)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_owned(), i32::from(port)))
}

#[cfg(test)]
mod tests;
