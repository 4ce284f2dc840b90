//! The checks a loaded configuration must pass before the broker starts: every value in
//! range and every combination coherent, each refusal naming its key.

use super::*;

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if !(1..=256).contains(&self.storage_threads) {
            return invalid("storage_threads", "must be between 1 and 256");
        }
        if self.num_partitions < 1 {
            return invalid("num_partitions", "must be at least 1");
        }
        let single = self.controller_quorum_voters.is_none()
            && self.controller_quorum_bootstrap_servers.is_none();
        if single && self.default_replication_factor != 1 {
            return invalid(
                "default_replication_factor",
                "a single node can only hold 1 replica",
            );
        }
        if self.default_replication_factor < 1
            || self.offsets_topic_replication_factor < 1
            || self.transaction_state_replication_factor < 1
        {
            return invalid(
                "default_replication_factor",
                "replication factors must be at least 1",
            );
        }
        if self.leader_imbalance_check_interval_seconds == 0
            || self.leader_imbalance_per_broker_percentage > 100
        {
            return invalid(
                "leader_imbalance_check_interval_seconds",
                "the check interval must be positive and the percentage at most 100",
            );
        }
        if self.replica_lag_time_max_ms == 0 || self.replica_fetch_max_bytes < 1 {
            return invalid(
                "replica_lag_time_max_ms",
                "replica lag time and fetch size must be positive",
            );
        }
        if self.message_max_bytes < 1 {
            return invalid("message_max_bytes", "must be positive");
        }
        if self.message_timestamp_before_max_ms < 0 || self.message_timestamp_after_max_ms < 0 {
            return invalid(
                "message_timestamp_before_max_ms",
                "timestamp bounds must not be negative",
            );
        }
        if let Err(reason) = compression::check_type(&self.compression_type) {
            return invalid("compression_type", &reason);
        }
        for (key, codec, level) in [
            (
                "compression_gzip_level",
                compression::LevelOf::Gzip,
                self.compression_gzip_level,
            ),
            (
                "compression_lz4_level",
                compression::LevelOf::Lz4,
                self.compression_lz4_level,
            ),
            (
                "compression_zstd_level",
                compression::LevelOf::Zstd,
                self.compression_zstd_level,
            ),
        ] {
            if let Err(reason) = compression::check_level(codec, &level.to_string()) {
                return invalid(key, &reason);
            }
        }
        if self.socket_request_max_bytes < 1 {
            return invalid("socket_request_max_bytes", "must be positive");
        }
        if self.segment_bytes < 14 {
            return invalid("segment_bytes", "must be at least 14");
        }
        if self.segment_ms < 1 {
            return invalid("segment_ms", "must be positive");
        }
        if self.index_interval_bytes < 0 {
            return invalid("index_interval_bytes", "must not be negative");
        }
        if self.group_min_session_timeout_ms < 1
            || self.group_max_session_timeout_ms < self.group_min_session_timeout_ms
        {
            return invalid(
                "group_max_session_timeout_ms",
                "session timeout bounds must be positive with min <= max",
            );
        }
        if self.group_consumer_heartbeat_interval_ms < 1
            || self.group_consumer_session_timeout_ms <= self.group_consumer_heartbeat_interval_ms
        {
            return invalid(
                "group_consumer_heartbeat_interval_ms",
                "must be positive and below group_consumer_session_timeout_ms",
            );
        }
        // Kafka's ShareGroupConfig ranges.
        if !(1000..=3_600_000).contains(&self.group_share_record_lock_duration_ms) {
            return invalid(
                "group_share_record_lock_duration_ms",
                "must be in 1000..=3600000",
            );
        }
        if !(2..=10).contains(&self.group_share_delivery_count_limit) {
            return invalid("group_share_delivery_count_limit", "must be in 2..=10");
        }
        if !(100..=10_000).contains(&self.group_share_partition_max_record_locks) {
            return invalid(
                "group_share_partition_max_record_locks",
                "must be in 100..=10000",
            );
        }
        if self.group_share_max_share_sessions < 1 {
            return invalid("group_share_max_share_sessions", "must be at least 1");
        }
        if self.group_consumer_max_size < 1 {
            return invalid("group_consumer_max_size", "must be at least 1");
        }
        if self.group_consumer_assignors.is_empty()
            || self
                .group_consumer_assignors
                .iter()
                .any(|a| !CONSUMER_ASSIGNORS.contains(&a.as_str()))
        {
            return invalid(
                "group_consumer_assignors",
                "must name one or more of: uniform, range",
            );
        }
        if self.group_streams_heartbeat_interval_ms < 1
            || self.group_streams_session_timeout_ms <= self.group_streams_heartbeat_interval_ms
        {
            return invalid(
                "group_streams_heartbeat_interval_ms",
                "must be positive and below group_streams_session_timeout_ms",
            );
        }
        if self.group_streams_max_size < 1 {
            return invalid("group_streams_max_size", "must be at least 1");
        }
        if self.group_share_heartbeat_interval_ms < 1
            || self.group_share_session_timeout_ms <= self.group_share_heartbeat_interval_ms
        {
            return invalid(
                "group_share_heartbeat_interval_ms",
                "must be positive and below group_share_session_timeout_ms",
            );
        }
        if !(1..=1000).contains(&self.group_share_max_size) {
            return invalid("group_share_max_size", "must be between 1 and 1000");
        }
        // Kafka's `group.streams.max.standby.replicas` default.
        if self.group_streams_num_standby_replicas > 2 {
            return invalid("group_streams_num_standby_replicas", "must be at most 2");
        }
        if self.offsets_topic_num_partitions < 1 {
            return invalid("offsets_topic_num_partitions", "must be at least 1");
        }
        if self.offsets_topic_segment_bytes < 14 {
            return invalid("offsets_topic_segment_bytes", "must be at least 14");
        }
        if self.request_timeout_ms < 1 {
            return invalid("request_timeout_ms", "must be positive");
        }
        if self.offsets_commit_timeout_ms < 1 {
            return invalid("offsets_commit_timeout_ms", "must be positive");
        }
        if self.offsets_retention_minutes < 1 {
            return invalid("offsets_retention_minutes", "must be positive");
        }
        if self.transaction_state_num_partitions < 1 {
            return invalid("transaction_state_num_partitions", "must be at least 1");
        }
        if self.share_coordinator_state_topic_num_partitions < 1 {
            return invalid(
                "share_coordinator_state_topic_num_partitions",
                "must be at least 1",
            );
        }
        if self.share_coordinator_state_topic_replication_factor < 1
            || self.share_coordinator_state_topic_min_isr < 1
        {
            return invalid(
                "share_coordinator_state_topic_replication_factor",
                "replication factor and min ISR must be at least 1",
            );
        }
        if self.share_coordinator_snapshot_update_records_per_snapshot < 0 {
            return invalid(
                "share_coordinator_snapshot_update_records_per_snapshot",
                "must not be negative",
            );
        }
        if self.producer_id_expiration_ms < 1 {
            return invalid("producer_id_expiration_ms", "must be positive");
        }
        if self.min_insync_replicas < 1 {
            return invalid("min_insync_replicas", "must be at least 1");
        }
        if self.transaction_max_timeout_ms < 1 || self.transactional_id_expiration_ms < 1 {
            return invalid(
                "transaction_max_timeout_ms",
                "transaction timeouts and expiry must be positive",
            );
        }
        if let Some(listener) = &self.advertised_listener {
            if parse_host_port(listener).is_none() {
                return invalid("advertised_listener", "expected HOST:PORT");
            }
        }
        for listener in &self.listeners {
            if listener
                .advertised
                .as_deref()
                .is_some_and(|a| parse_host_port(a).is_none())
            {
                return invalid("listener.advertised", "expected HOST:PORT");
            }
            if listener.protocol.uses_tls() && self.tls.is_none() {
                return invalid(
                    "listener.protocol",
                    "an SSL or SASL_SSL listener needs a [tls] section",
                );
            }
            if listener.protocol.uses_sasl()
                && self.sasl.as_ref().is_none_or(|s| s.mechanisms.is_empty())
            {
                return invalid(
                    "listener.protocol",
                    "a SASL listener needs [sasl] with at least one mechanism",
                );
            }
        }
        for user in self.sasl.iter().flat_map(|s| &s.scram_users) {
            let key_len = match user.mechanism {
                ScramMechanism::Sha256 => 32,
                ScramMechanism::Sha512 => 64,
            };
            if user.name.is_empty() || user.salt.is_empty() {
                return invalid("sasl.scram_user", "name and salt must not be empty");
            }
            if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&user.iterations) {
                return invalid(
                    "sasl.scram_user.iterations",
                    "must be between 4096 and 16384",
                );
            }
            if user.stored_key.len() != key_len || user.server_key.len() != key_len {
                return invalid(
                    "sasl.scram_user",
                    "stored_key and server_key must be hash-sized (32 or 64 bytes)",
                );
            }
        }
        if let Some(bad) = self.super_users.iter().find(|p| {
            !p.split_once(':')
                .is_some_and(|(t, n)| !t.is_empty() && !n.is_empty())
        }) {
            return Err(ConfigError::Invalid {
                key: "super_users",
                reason: format!("'{bad}' is not of the form User:name"),
            });
        }
        // Kafka's bounds: at least one window, of at least a second.
        if self.quota_window_num == 0 || self.quota_window_size_seconds == 0 {
            return invalid("quota_window_num", "must be at least 1, as must its size");
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            return invalid("max_connections", "must be at least 1");
        }
        if self.max_inflight_requests == 0 {
            return invalid("max_inflight_requests", "must be at least 1");
        }
        self.telemetry.validate()?;
        self.validate_schema_registry()?;
        super::link::validate(&self.links)?;
        quorum_config(self)?;
        Ok(())
    }
}
