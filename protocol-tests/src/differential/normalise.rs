//! The one place that decides what may legitimately differ between samsa's answer and
//! Kafka's. Everything not rewritten here is compared as it is; a difference that is
//! neither normalised here nor listed in `differential-allowlist.toml` fails the test.

use std::collections::HashMap;

use uuid::Uuid;

use super::tree::Node;

/// What one broker chose on its own that the other cannot know.
pub struct Facts<'a> {
    /// The broker's `node.id`.
    pub node_id: i32,
    /// Topic name by id, for topics the test created on this broker.
    pub topic_names: &'a HashMap<Uuid, String>,
    /// The random tag in this test's topic names (shared by both brokers, varies by run).
    pub run_tag: &'a str,
}

/// Fields whose values are node ids.
const NODE_ID_FIELDS: &[&str] = &[
    "node_id",
    "leader_id",
    "controller_id",
    "broker_id",
    "replica_nodes",
    "isr_nodes",
    "offline_replicas",
    "eligible_leader_replicas",
    "last_known_elr",
];

pub fn normalise(node: &mut Node, facts: &Facts) {
    match node {
        Node::Fields(fields) => {
            for (key, value) in fields.iter_mut() {
                normalise_field(key, value, facts);
            }
        }
        Node::Seq(items) => items.iter_mut().for_each(|n| normalise(n, facts)),
        Node::Leaf(text) => untag(text, facts),
    }
}

fn normalise_field(key: &str, value: &mut Node, facts: &Facts) {
    match key {
        // Quotas are not modelled; a throttle is a timing artefact, not behaviour.
        "throttle_time_ms" => *value = Node::leaf("<throttle>"),
        // Generated per cluster.
        "cluster_id" => replace_some(value, "<cluster id>"),
        // Free text for people; clients act on codes and values. Only whether there is
        // a text is compared (an empty one counts as none).
        "error_message" | "documentation" => {
            let text = value.as_leaf().unwrap_or("");
            let none = text == "None" || text == "Some(\"\")";
            *value = Node::leaf(if none { "<no message>" } else { "<message>" });
        }
        // Each broker listens on its own free port of 127.0.0.1.
        "host" => *value = Node::leaf("<host>"),
        "port" => *value = Node::leaf("<port>"),
        // Node ids are configuration: the broker's own id reads `<self>`, -1 stays -1.
        k if NODE_ID_FIELDS.contains(&k) => replace_node_ids(value, facts.node_id),
        // A broker resource of DescribeConfigs is named by node id.
        "resource_name" if value.as_leaf() == Some(&format!("\"{}\"", facts.node_id)) => {
            *value = Node::leaf("\"<self>\"")
        }
        // Topic ids are random per broker: each is replaced by the name of the topic it
        // identifies on that broker, so a wrong id still shows up as a difference.
        "topic_id" => {
            if let Some(text) = value.as_leaf() {
                *value = Node::leaf(topic_id(text, facts));
            }
        }
        // Broker clock at append; -1 (CreateTime topics) is compared.
        "log_append_time_ms" => {
            if value.as_leaf() != Some("-1") {
                *value = Node::leaf("<broker time>");
            }
        }
        // Allocated by each broker.
        "producer_id" => {
            if value.as_leaf() != Some("-1") {
                *value = Node::leaf("<producer id>");
            }
        }
        // Config listings have no defined order: keyed by config name instead.
        "configs" => {
            normalise(value, facts);
            key_by_name(value);
        }
        // Kafka implements many more APIs than samsa; the advertised ranges are compared
        // API by API in their own check (`compare_api_ranges`), not as a list.
        "api_keys" => *value = Node::leaf("<compared by range>"),
        _ => normalise(value, facts),
    }
}

/// Replaces a non-empty string, optional (`Some("..")`) or not (`".."`).
fn replace_some(value: &mut Node, with: &str) {
    match value.as_leaf() {
        Some(s) if s.starts_with("Some(\"") && s != "Some(\"\")" => {
            *value = Node::leaf(format!("Some({with})"))
        }
        Some(s) if s.starts_with('"') && s != "\"\"" => *value = Node::leaf(with),
        _ => {}
    }
}

fn replace_node_ids(value: &mut Node, own: i32) {
    match value {
        Node::Leaf(text) if text.as_str() == own.to_string() => *text = "<self>".into(),
        Node::Seq(items) => items.iter_mut().for_each(|n| replace_node_ids(n, own)),
        _ => {}
    }
}

fn topic_id(text: &str, facts: &Facts) -> String {
    match text.parse::<Uuid>() {
        Ok(id) if id.is_nil() => "<nil id>".into(),
        Ok(id) => match facts.topic_names.get(&id) {
            Some(name) => format!("<id of {}>", name.replace(facts.run_tag, "<run>")),
            None => "<other id>".into(),
        },
        Err(_) => text.to_owned(),
    }
}

fn untag(text: &mut String, facts: &Facts) {
    if !facts.run_tag.is_empty() && text.contains(facts.run_tag) {
        *text = text.replace(facts.run_tag, "<run>");
    }
}

/// `[{name: "a", ..}, {name: "b", ..}]` becomes `{[a]: {..}, [b]: {..}}`, sorted by name,
/// so paths read `configs[retention.ms].value`.
fn key_by_name(value: &mut Node) {
    let Node::Seq(items) = value else { return };
    let mut keyed = Vec::with_capacity(items.len());
    for item in items.iter() {
        let Some(name) = item.field("name").and_then(Node::as_leaf) else {
            return;
        };
        keyed.push((format!("[{}]", name.trim_matches('"')), item.clone()));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    *value = Node::Fields(keyed);
}
