//! Answers that give every partition a request named an error code and nothing else:
//! OffsetCommit, OffsetDelete, TxnOffsetCommit and AddPartitionsToTxn. Built here once, in
//! the request's order, and shaped into each API's types.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::TopicName;

use super::built_from;

/// A topic's partitions and their codes, before they take an API's types.
pub(super) struct TopicCodes {
    name: TopicName,
    partitions: Vec<PartitionCode>,
}

pub(super) struct PartitionCode {
    index: i32,
    code: i16,
}

/// Each partition of `asked` (the request's topics, each with its partition indexes, in the
/// request's order) answered with `code(topic, partition)`, 0 for success.
pub(super) fn answer<T, P>(
    asked: impl IntoIterator<Item = (TopicName, P)>,
    mut code: impl FnMut(&str, i32) -> i16,
) -> Vec<T>
where
    T: From<TopicCodes>,
    P: IntoIterator<Item = i32>,
{
    asked
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|index| PartitionCode {
                    index,
                    code: code(&name, index),
                })
                .collect();
            T::from(TopicCodes { name, partitions })
        })
        .collect()
}

built_from! {
    TopicCodes => OffsetCommitResponseTopic, OffsetDeleteResponseTopic, TxnOffsetCommitResponseTopic;
    |t| { with_name(t.name), with_partitions(t.partitions.into_iter().map(Into::into).collect()) }
}

built_from! {
    PartitionCode =>
        OffsetCommitResponsePartition, OffsetDeleteResponsePartition, TxnOffsetCommitResponsePartition;
    |p| { with_partition_index(p.index), with_error_code(p.code) }
}

// AddPartitionsToTxn names the same fields otherwise.
built_from! {
    TopicCodes => AddPartitionsToTxnTopicResult;
    |t| {
        with_name(t.name),
        with_results_by_partition(t.partitions.into_iter().map(Into::into).collect()),
    }
}

built_from! {
    PartitionCode => AddPartitionsToTxnPartitionResult;
    |p| { with_partition_index(p.index), with_partition_error_code(p.code) }
}
