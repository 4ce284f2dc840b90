//! samsa: a Kafka-wire-compatible message broker.
//!
//! The layers, from the socket down: [`network`] frames bytes into requests, [`protocol`]
//! decodes and encodes them with the `kafka-protocol` crate, [`handlers`] turn a request
//! and the [`broker`] state into a response, and [`topics`] holds the partitions whose
//! logs live in the `samsa-storage` crate, which knows nothing of the wire.

// A connection's future nests the request's (charged, timed, counting its storage time):
// computing its layout goes deeper than rustc's default query depth of 128.
#![recursion_limit = "256"]

pub mod auth;
pub mod broker;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod error;
pub mod event_loop;
pub mod fetch_sessions;
pub mod group;
pub mod handlers;
pub mod link;
pub mod lock_order;
pub mod logging;
pub mod metrics;
pub mod network;
pub mod peer;
pub mod protocol;
pub mod quotas;
pub mod replication;
pub mod schema_registry;
pub mod schema_validation;
pub mod server;
pub mod share;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod topics;
pub mod txn;
