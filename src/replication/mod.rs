//! Data replication between brokers, following Kafka's protocol: followers fetch from the
//! leader with their replica id (`follower`: the fetcher that keeps a follower's replicas in
//! step with their leader). The leader's side, its bookkeeping of the followers' progress, the
//! ISR and the high watermark, belongs to the partition it leads
//! (`topics::partition::replicas`), which the fetcher writes into: this layer sits above it.

pub mod follower;
#[cfg(test)]
mod follower_tests;
