//! Topology descriptions (KIP-1331): the processing graph a Kafka Streams member pushes with
//! StreamsGroupTopologyDescriptionUpdate (subtopologies of source, processor and sink nodes,
//! global stores), kept for StreamsGroupDescribe. Kafka hands them to a pluggable store
//! (`group.streams.topology.description.plugin.class`, none by default) and records in the
//! group's metadata record only which topology epoch the store holds; samsa offers the
//! store Kafka ships, in memory ([`TopologyDescriptions`]).
//!
//! The coordinator asks a member to push (TopologyDescriptionRequired in a heartbeat) when
//! the store does not hold the group's current topology epoch, at most once per back-off
//! period ([`Solicitations`], Kafka's `StreamsGroupTopologyDescriptionBackoff`), so a member
//! that cannot push is not asked on every heartbeat.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// The metadata record's stored epoch when the store holds nothing for the group.
pub const NOT_STORED: i32 = -1;
/// The stored epoch while a store operation is under way (Kafka's "uncertain"): whether
/// the store holds a description is not known, so the group is asked again as if it held
/// none.
pub const UNCERTAIN: i32 = -2;

/// Kafka's node types in the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Source = 1,
    Processor = 2,
    Sink = 3,
}

impl NodeKind {
    pub fn of(byte: i8) -> Option<NodeKind> {
        match byte {
            1 => Some(NodeKind::Source),
            2 => Some(NodeKind::Processor),
            3 => Some(NodeKind::Sink),
            _ => None,
        }
    }
}

/// One node of the graph. As Kafka's `StreamsGroupTopologyDescription.Node`s keep them, a
/// source has only topics, a processor only stores, a sink only its topic (all keep their
/// successors); the lists hold each name once, in the order first given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    pub source_topics: Vec<String>,
    pub sink_topic: Option<String>,
    pub stores: Vec<String>,
    pub successors: Vec<String>,
}

impl Node {
    /// The node as Kafka's converter keeps it, from what the member sent.
    pub fn new(
        name: String,
        kind: NodeKind,
        source_topics: Vec<String>,
        sink_topic: Option<String>,
        stores: Vec<String>,
        successors: Vec<String>,
    ) -> Node {
        let (source_topics, sink_topic, stores) = match kind {
            NodeKind::Source => (distinct(source_topics), None, Vec::new()),
            NodeKind::Processor => (Vec::new(), None, distinct(stores)),
            NodeKind::Sink => (Vec::new(), sink_topic, Vec::new()),
        };
        Node {
            name,
            kind,
            source_topics,
            sink_topic,
            stores,
            successors: distinct(successors),
        }
    }
}

fn distinct(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subtopology {
    pub id: String,
    pub nodes: Vec<Node>,
}

/// A global state store: the source reading its topic, the processor filling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalStore {
    pub source: Node,
    pub processor: Node,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopologyDescription {
    pub subtopologies: Vec<Subtopology>,
    pub global_stores: Vec<GlobalStore>,
}

/// The in-memory store (Kafka's `InMemoryTopologyDescriptionPlugin`): per group, the last
/// description pushed and its topology epoch. A lookup for another epoch finds nothing.
#[derive(Debug, Default)]
pub struct TopologyDescriptions {
    by_group: Mutex<HashMap<String, (i32, Arc<TopologyDescription>)>>,
    solicitations: Mutex<Solicitations>,
}

impl TopologyDescriptions {
    pub fn set(&self, group: &str, epoch: i32, description: TopologyDescription) {
        self.by_group
            .lock()
            .insert(group.to_owned(), (epoch, Arc::new(description)));
    }

    pub fn get(&self, group: &str, epoch: i32) -> Option<Arc<TopologyDescription>> {
        let by_group = self.by_group.lock();
        let (stored, description) = by_group.get(group)?;
        (*stored == epoch).then(|| description.clone())
    }

    pub fn delete(&self, group: &str) {
        self.by_group.lock().remove(group);
        self.solicitations.lock().by_group.remove(group);
    }

    /// Whether to ask a member of `group` to push epoch `epoch` now; if so, the next
    /// request for it waits out a longer back-off.
    pub fn solicit(&self, group: &str, epoch: i32, now: Instant) -> bool {
        self.solicitations
            .lock()
            .arm_if_not_active(group, epoch, now)
    }

    /// A push of `epoch` was stored: the back-off for it ends.
    pub fn stored(&self, group: &str, epoch: i32) {
        let mut solicitations = self.solicitations.lock();
        if solicitations
            .by_group
            .get(group)
            .is_some_and(|s| s.epoch == epoch)
        {
            solicitations.by_group.remove(group);
        }
    }
}

/// Kafka's back-off between two requests to push one topology epoch: 30 s, doubling up to
/// an hour, each ±20%.
const FIRST_DELAY: Duration = Duration::from_secs(30);
const MAX_DELAY: Duration = Duration::from_secs(3600);
const JITTER: f64 = 0.2;

#[derive(Debug, Clone, Copy)]
struct Solicitation {
    epoch: i32,
    attempts: u32,
    next: Instant,
}

#[derive(Debug, Default)]
pub struct Solicitations {
    by_group: HashMap<String, Solicitation>,
}

impl Solicitations {
    fn arm_if_not_active(&mut self, group: &str, epoch: i32, now: Instant) -> bool {
        let previous = self.by_group.get(group).copied();
        if previous.is_some_and(|p| p.epoch == epoch && now < p.next) {
            return false;
        }
        let attempts = match previous {
            Some(p) if p.epoch == epoch => p.attempts + 1,
            _ => 0,
        };
        let next = now + delay(attempts, jitter());
        self.by_group.insert(
            group.to_owned(),
            Solicitation {
                epoch,
                attempts,
                next,
            },
        );
        true
    }
}

/// The back-off after `attempts` earlier requests, scaled by `jitter` in [1-J, 1+J].
fn delay(attempts: u32, jitter: f64) -> Duration {
    let base = FIRST_DELAY.as_secs_f64() * 2f64.powi(attempts.min(30) as i32);
    Duration::from_secs_f64((base * jitter).min(MAX_DELAY.as_secs_f64()))
}

fn jitter() -> f64 {
    let random = getrandom::u32().unwrap_or(u32::MAX / 2);
    1.0 - JITTER + 2.0 * JITTER * (random as f64 / u32::MAX as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: NodeKind) -> Node {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Node::new(
            "n".into(),
            kind,
            names(&["a", "b", "a"]),
            Some("out".into()),
            names(&["s", "s"]),
            names(&["x", "x", "y"]),
        )
    }

    #[test]
    fn nodes_keep_what_their_kind_has_once() {
        let source = node(NodeKind::Source);
        assert_eq!(source.source_topics, ["a", "b"]);
        assert_eq!((source.sink_topic, source.stores.len()), (None, 0));
        assert_eq!(source.successors, ["x", "y"]);
        let processor = node(NodeKind::Processor);
        assert_eq!(processor.stores, ["s"]);
        assert!(processor.source_topics.is_empty() && processor.sink_topic.is_none());
        let sink = node(NodeKind::Sink);
        assert_eq!(sink.sink_topic.as_deref(), Some("out"));
        assert!(sink.source_topics.is_empty() && sink.stores.is_empty());
    }

    #[test]
    fn the_store_answers_only_for_the_epoch_it_holds() {
        let store = TopologyDescriptions::default();
        store.set("g", 3, TopologyDescription::default());
        assert!(store.get("g", 3).is_some());
        assert!(store.get("g", 2).is_none());
        store.delete("g");
        assert!(store.get("g", 3).is_none());
    }

    #[test]
    fn solicitations_back_off_per_epoch() {
        let store = TopologyDescriptions::default();
        let now = Instant::now();
        assert!(store.solicit("g", 1, now));
        assert!(!store.solicit("g", 1, now + Duration::from_secs(1)));
        // Another epoch is asked for at once; a stored push ends the back-off.
        assert!(store.solicit("g", 2, now + Duration::from_secs(1)));
        store.stored("g", 2);
        assert!(store.solicit("g", 2, now + Duration::from_secs(2)));
        // Past the longest first back-off (30 s + 20%) the same epoch is asked again.
        assert!(store.solicit("g", 2, now + Duration::from_secs(40)));
    }

    #[test]
    fn delays_double_up_to_an_hour() {
        assert_eq!(delay(0, 1.0), Duration::from_secs(30));
        assert_eq!(delay(1, 1.0), Duration::from_secs(60));
        assert_eq!(delay(20, 1.2), MAX_DELAY);
    }
}
