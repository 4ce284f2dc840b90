//! Data replication between brokers, following Kafka's protocol: followers fetch from the
//! leader with their replica id, the leader tracks their progress, keeps the in-sync replica
//! set and advances the high watermark.
//!
//! `leader`: the leader's bookkeeping, free of I/O, so its rules are tested directly;
//! `follower`: the fetcher that keeps a follower's replicas in step with their leader.

pub mod follower;
#[cfg(test)]
mod follower_tests;
pub mod leader;

pub use leader::{LeaderReplicas, NotAReplica};
