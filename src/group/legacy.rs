//! The `__consumer_offsets` records samsa wrote before it used Kafka's format, read so that an
//! older data directory loads, and named so that loading can tombstone them once their state
//! is written again in Kafka's format (see `load.rs`).
//!
//! - key: `i16` big-endian version, then compact JSON: version 1 an offset
//!   `{"g": group, "t": topic, "p": partition}`, version 2 group metadata `{"g": group}`.
//! - value: `i16` version 1, then JSON: a [`CommittedOffset`] for version-1 keys, a
//!   [`GroupRecord`] for version-2 keys; null is a tombstone.
//!
//! The key versions collide with Kafka's record types 1 and 2; the keys differ in what follows
//! (`{` is no string length a key could have), and the codec of Kafka's keys takes only a key
//! that ends where its schema does, so a JSON key is never mistaken for one.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::state::CommittedOffset;
use super::store::{GroupRecord, OffsetKey, Replayed, ReplayedRecord};
use crate::error::Result;
use crate::topics::internal::versioned_json;
use crate::topics::schema::{FieldReader, SchemaError};

const OFFSET_KEY: i16 = 1;
const GROUP_KEY: i16 = 2;
#[cfg(test)]
const VALUE_VERSION: i16 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct GroupKey {
    g: String,
}

/// A key in the earlier format: which offset, or which group's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LegacyKey {
    Offset(OffsetKey),
    Group(String),
}

/// A legacy record: its key, and its value unless it is a tombstone.
pub enum LegacyRecord {
    Offset(OffsetKey, Option<CommittedOffset>),
    Group(String, Option<GroupRecord>),
}

impl LegacyKey {
    /// The key's bytes, to write its tombstone.
    pub fn encode(&self) -> Result<Bytes> {
        match self {
            LegacyKey::Offset(key) => versioned_json(OFFSET_KEY, key, "offsets record"),
            LegacyKey::Group(g) => {
                versioned_json(GROUP_KEY, &GroupKey { g: g.clone() }, "offsets record")
            }
        }
    }
}

/// A record in the earlier format, or why it is not one.
pub fn decode(
    key: &Bytes,
    value: Option<&Bytes>,
) -> std::result::Result<LegacyRecord, SchemaError> {
    let (version, json) = FieldReader::prefixed(key)?;
    let value = value
        .map(|v| match FieldReader::prefixed(v)? {
            (1, json) => Ok(json),
            (other, _) => Err(format!("unknown value version {other}")),
        })
        .transpose()?;
    let json_err = |e: serde_json::Error| e.to_string();
    match version {
        OFFSET_KEY => {
            let key: OffsetKey = serde_json::from_slice(&json).map_err(json_err)?;
            let value = value
                .map(|v| serde_json::from_slice(&v))
                .transpose()
                .map_err(json_err)?;
            Ok(LegacyRecord::Offset(key, value))
        }
        GROUP_KEY => {
            let key: GroupKey = serde_json::from_slice(&json).map_err(json_err)?;
            let value = value
                .map(|v| serde_json::from_slice(&v))
                .transpose()
                .map_err(json_err)?;
            Ok(LegacyRecord::Group(key.g, value))
        }
        other => Err(format!("unknown key version {other}")),
    }
}

/// A record as earlier samsa wrote it, for tests of the upgrade.
#[cfg(test)]
pub fn encode(record: &LegacyRecord) -> (Bytes, Option<Bytes>) {
    match record {
        LegacyRecord::Offset(key, value) => (
            LegacyKey::Offset(key.clone()).encode().unwrap(),
            value
                .as_ref()
                .map(|v| versioned_json(VALUE_VERSION, v, "test").unwrap()),
        ),
        LegacyRecord::Group(g, value) => (
            LegacyKey::Group(g.clone()).encode().unwrap(),
            value
                .as_ref()
                .map(|v| versioned_json(VALUE_VERSION, v, "test").unwrap()),
        ),
    }
}

/// What a load found in the earlier format: the JSON keys whose last JSON record is a value
/// (they need a tombstone), and whether each group's last metadata record, in either
/// format, is a value (the group's metadata is then written again in Kafka's format).
#[derive(Default)]
pub struct LegacyKeys {
    live: HashSet<LegacyKey>,
    group_live: HashMap<String, bool>,
}

impl LegacyKeys {
    /// Notes one replayed record.
    pub fn note(&mut self, record: &ReplayedRecord) {
        let (key, live) = match &record.entry {
            Replayed::Offset(key, value) => (LegacyKey::Offset(key.clone()), value.is_some()),
            Replayed::Group(group, value) => {
                self.group_live.insert(group.clone(), value.is_some());
                (LegacyKey::Group(group.clone()), value.is_some())
            }
            Replayed::TxnEnd { .. }
            | Replayed::Consumer(..)
            | Replayed::Streams(..)
            | Replayed::Share(..) => return,
        };
        if !record.legacy {
            return;
        }
        if live {
            self.live.insert(key);
        } else {
            self.live.remove(&key);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The live JSON keys, by group.
    pub fn by_group(&self) -> HashMap<String, Vec<LegacyKey>> {
        let mut groups: HashMap<String, Vec<LegacyKey>> = HashMap::new();
        for key in &self.live {
            let group = match key {
                LegacyKey::Offset(k) => k.g.clone(),
                LegacyKey::Group(g) => g.clone(),
            };
            groups.entry(group).or_default().push(key.clone());
        }
        groups
    }

    /// Whether `group`'s last metadata record is a value.
    pub fn group_live(&self, group: &str) -> bool {
        self.group_live.get(group).copied().unwrap_or(false)
    }
}

#[cfg(test)]
#[path = "legacy_tests.rs"]
mod tests;
