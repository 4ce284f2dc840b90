//! What members subscribe to: topic names, or a regular expression (KIP-848's
//! `SubscribedTopicRegex`), resolved against the cluster's topics.
//!
//! Kafka evaluates the expression with re2j, the RE2 syntax in Java. The `regex` crate
//! implements the same RE2 syntax (no backreferences or lookaround, linear-time matching)
//! and differs only in corners clients do not use for topic names (Unicode classes such as
//! `\pN` are matched by Unicode tables of different versions); as re2j's `matches()`, the
//! expression must match the whole topic name.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use super::TopicId;
use crate::error::BrokerError;

/// Kafka's `Topic.isInternal` names.
const INTERNAL_TOPICS: &[&str] = &[
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
];

/// A topic as consumer groups see it: its id and partition count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicMeta {
    pub id: TopicId,
    pub partitions: i32,
}

/// The cluster's topics by name, as the coordinator last saw them.
pub type TopicImage = BTreeMap<String, TopicMeta>;

/// A subscription expression compiled once, kept with its source text.
#[derive(Debug, Clone)]
pub struct TopicRegex {
    source: String,
    compiled: Regex,
}

impl TopicRegex {
    /// Compiles `source`; INVALID_REGULAR_EXPRESSION as Kafka words it when it does not.
    pub fn new(source: &str) -> Result<TopicRegex, BrokerError> {
        let anchored = format!("^(?:{source})$");
        Regex::new(&anchored)
            .map(|compiled| TopicRegex {
                source: source.to_owned(),
                compiled,
            })
            .map_err(|err| {
                BrokerError::InvalidRegularExpression(format!(
                    "SubscribedTopicRegex `{source}` is not a valid regular expression: {err}."
                ))
            })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the topic name matches. Kafka's internal topics are never matched.
    pub fn matches(&self, topic: &str) -> bool {
        !INTERNAL_TOPICS.contains(&topic) && self.compiled.is_match(topic)
    }
}

impl PartialEq for TopicRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// The existing topics a member subscribes to, by name.
pub fn resolve<'a>(
    names: &'a [String],
    regex: Option<&'a TopicRegex>,
    topics: &'a TopicImage,
) -> impl Iterator<Item = &'a str> + 'a {
    let by_name = names
        .iter()
        .filter(|n| topics.contains_key(n.as_str()))
        .map(|n| n.as_str());
    let by_regex = topics
        .keys()
        .filter(move |t| regex.is_some_and(|r| r.matches(t)))
        .map(|t| t.as_str());
    by_name.chain(by_regex)
}

/// The ids of the existing topics a member subscribes to.
pub fn resolve_ids(
    names: &[String],
    regex: Option<&TopicRegex>,
    topics: &TopicImage,
) -> BTreeSet<TopicId> {
    resolve(names, regex, topics)
        .map(|t| topics[t].id)
        .collect()
}
