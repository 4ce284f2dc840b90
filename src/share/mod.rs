//! Share groups (KIP-932): queues on Kafka partitions.
//!
//! Three parts, as in Kafka:
//! - the share coordinator ([`state`]) keeps each share-partition's durable state (its start
//!   offset and the delivery state of the records after it) in `__share_group_state`;
//! - the share-partition leader (on the broker that leads the topic partition) acquires
//!   records for ShareFetch, takes ShareAcknowledge, times out acquisition locks and counts
//!   deliveries, writing its state through [`state::Persister`];
//! - the group coordinator (`group`) keeps the membership and the assignment, and
//!   initializes a share-partition's state before it first assigns the partition.

mod combine;
pub mod coordinator;
pub mod leader;
pub mod partition;
pub mod records;
mod remote;
pub mod sessions;
mod shard;
pub mod state;

pub use remote::Remote;
pub use shard::{kafka_words, WriteData};

#[cfg(test)]
mod tests;
