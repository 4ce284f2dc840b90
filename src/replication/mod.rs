//! Data replication between brokers, following Kafka's protocol: followers fetch from the
//! leader with their replica id, the leader tracks their progress, keeps the in-sync replica
//! set and advances the high watermark.
//!
//! `leader`: the leader's bookkeeping, free of I/O, so its rules are tested directly.

pub mod leader;

pub use leader::{LeaderReplicas, NotAReplica};
