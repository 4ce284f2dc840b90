//! The APIs samsa implements and the versions of each it serves. ApiVersions reports
//! exactly this table, and the decoder refuses anything outside it.

use kafka_protocol::messages::ApiKey;

/// (API, lowest version, highest version). Each range lies within what the
/// `kafka-protocol` crate can decode, and every version in it is handled in full.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    // The crate decodes OffsetCommit requests only up to v9 and OffsetFetch up to v9,
    // although `ApiKey::valid_versions` names v10 for both.
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::TxnOffsetCommit, 0, 4), // not v5: KIP-890 part 2 (transaction.version 2)
    // After a v0 handshake tokens come as bare frames; librdkafka needs v0 advertised to
    // believe the broker does SASL at all, although it then uses v1 and SaslAuthenticate.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    // Kafka 4 serves the ACL APIs from v1 (v0 had no pattern type).
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // Transactions as Kafka's transaction.version 1: InitProducerId v6 (KIP-939) and
    // EndTxn v5 (KIP-890 part 2) are left out; AddPartitionsToTxn v5 only adds an error code.
    // ListTransactions v2 filters by a Java regular expression, which samsa does not evaluate.
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::DescribeProducers, 0, 0),
    // Inter-broker. Kafka 4 serves v1-2 (v0 was removed); the crate decodes v1 only, and v2
    // only adds the marker's transaction.version.
    (ApiKey::WriteTxnMarkers, 1, 1),
    // v0-1 were removed in Kafka 4.0 (KIP-896).
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
];

/// The served version range of `key`, if samsa implements it.
pub fn supported(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

pub fn is_supported(key: ApiKey, version: i16) -> bool {
    supported(key).is_some_and(|(min, max)| (min..=max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_range_is_one_the_crate_can_decode() {
        for &(key, min, max) in SUPPORTED {
            let known = key.valid_versions();
            assert!(min <= max, "{key:?}");
            assert!(
                known.min <= min && max <= known.max,
                "{key:?} {min}..{max} outside {known}"
            );
        }
    }
}
