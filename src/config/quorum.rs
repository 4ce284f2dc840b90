//! The cluster part of the configuration: roles, the controller quorum's voters, and the
//! cluster id every node derives from them.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Config, ConfigError};

/// What a node does in a cluster (Kafka's `process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessRole {
    Broker,
    Controller,
}

/// The quorum as this node runs it, checked and resolved.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// The static voters; empty for a controller that joins through bootstrap servers.
    pub voters: BTreeMap<u64, SocketAddr>,
    /// `controller_quorum_bootstrap_servers`, resolved; empty with static voters.
    pub bootstrap: Vec<SocketAddr>,
    /// Where this node's controller listens.
    pub listen: SocketAddr,
    pub broker: bool,
}

/// Parses Kafka's `controller.quorum.voters` form, `1@host:port,2@host:port`, resolving hosts.
pub fn parse_voters(text: &str) -> Result<BTreeMap<u64, SocketAddr>, String> {
    let mut voters = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, address) = entry
            .split_once('@')
            .ok_or_else(|| format!("'{entry}' is not ID@HOST:PORT"))?;
        let id: u64 = id
            .parse()
            .map_err(|_| format!("'{id}' in '{entry}' is not a node id"))?;
        let address = address
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| format!("cannot resolve '{address}' in '{entry}'"))?;
        if voters.insert(id, address).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if voters.is_empty() {
        return Err("no voters listed".into());
    }
    Ok(voters)
}

/// Parses Kafka's `controller.quorum.bootstrap.servers` form, `host:port,host:port`.
fn parse_servers(text: &str) -> Result<Vec<SocketAddr>, String> {
    let servers = text
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|server| {
            server
                .to_socket_addrs()
                .ok()
                .and_then(|mut addrs| addrs.next())
                .ok_or_else(|| format!("cannot resolve '{server}'"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err("no servers listed".into());
    }
    Ok(servers)
}

/// The quorum this node is part of, or `None` for a single node, which is the only voter of
/// a quorum of its own (see `samsa_metadata::MetadataNode::standalone`).
pub fn quorum_config(config: &Config) -> Result<Option<QuorumConfig>, ConfigError> {
    let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
    let (voters, bootstrap) = match (
        &config.controller_quorum_voters,
        &config.controller_quorum_bootstrap_servers,
    ) {
        (None, None) => {
            if config.node_id < 0 {
                return Err(invalid("node_id", "must not be negative".into()));
            }
            return Ok(None);
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "controller_quorum_bootstrap_servers",
                "set either it or controller_quorum_voters, not both".into(),
            ))
        }
        (Some(text), None) => (
            parse_voters(text).map_err(|r| invalid("controller_quorum_voters", r))?,
            Vec::new(),
        ),
        (None, Some(text)) => {
            if config.cluster_id.is_none() {
                return Err(invalid(
                    "cluster_id",
                    "required with controller_quorum_bootstrap_servers: set the cluster's".into(),
                ));
            }
            let servers = parse_servers(text)
                .map_err(|r| invalid("controller_quorum_bootstrap_servers", r))?;
            (BTreeMap::new(), servers)
        }
    };
    let roles = &config.process_roles;
    if roles.is_empty() {
        return Err(invalid(
            "process_roles",
            "needs \"broker\", \"controller\" or both".into(),
        ));
    }
    if !roles.contains(&ProcessRole::Controller) {
        // Broker-only nodes would follow the log as Raft learners, which the quorum lacks yet.
        return Err(invalid(
            "process_roles",
            "a node without the controller role is not supported yet".into(),
        ));
    }
    let id = u64::try_from(config.node_id)
        .map_err(|_| invalid("node_id", "must not be negative in a cluster".into()))?;
    if bootstrap.is_empty() && !voters.contains_key(&id) {
        return Err(invalid(
            "controller_quorum_voters",
            format!("node {id} has the controller role but is not among the voters"),
        ));
    }
    let listen = config.controller_listen.ok_or_else(|| {
        invalid(
            "controller_listen",
            "required for a node among the voters".into(),
        )
    })?;
    if config.broker_heartbeat_interval_ms == 0
        || config.broker_session_timeout_ms <= config.broker_heartbeat_interval_ms
    {
        return Err(invalid(
            "broker_session_timeout_ms",
            "must exceed a positive broker_heartbeat_interval_ms".into(),
        ));
    }
    Ok(Some(QuorumConfig {
        voters,
        bootstrap,
        listen,
        broker: roles.contains(&ProcessRole::Broker),
    }))
}

/// A cluster id every node computes alike from the voters, in Kafka's form (22 characters of
/// URL-safe base64 over 16 bytes). Deriving it avoids an extra step to agree on one.
pub fn derived_cluster_id(voters: &BTreeMap<u64, SocketAddr>) -> String {
    let mut hash = Sha256::new();
    for (id, address) in voters {
        hash.update(format!("{id}@{address},"));
    }
    URL_SAFE_NO_PAD.encode(&hash.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::from_toml(text).unwrap()
    }

    const VOTERS: &str =
        "controller_quorum_voters = \"1@127.0.0.1:9093, 2@127.0.0.1:9094,3@localhost:9095\"\n";

    #[test]
    fn single_node_without_voters() {
        let c = config("");
        assert_eq!(
            c.process_roles,
            [ProcessRole::Broker, ProcessRole::Controller]
        );
        assert_eq!(c.broker_heartbeat_interval_ms, 2000);
        assert_eq!(c.broker_session_timeout_ms, 9000);
        assert!(quorum_config(&c).unwrap().is_none());
    }

    #[test]
    fn voters_parse_and_resolve() {
        let c = config(&format!(
            "{VOTERS}controller_listen = \"127.0.0.1:9093\"\nrack = \"r1\""
        ));
        let quorum = quorum_config(&c).unwrap().unwrap();
        assert_eq!(quorum.voters.len(), 3);
        assert_eq!(quorum.voters[&2], "127.0.0.1:9094".parse().unwrap());
        assert_eq!(quorum.voters[&3].port(), 9095);
        assert_eq!(quorum.listen.port(), 9093);
        assert!(quorum.broker);
        assert_eq!(c.rack.as_deref(), Some("r1"));
        c.validate().unwrap();
    }

    #[test]
    fn bad_voters_are_config_errors() {
        for voters in [
            "",
            "1@",
            "x@127.0.0.1:1",
            "1@127.0.0.1:1,1@127.0.0.1:2",
            "127.0.0.1:1",
        ] {
            assert!(parse_voters(voters).is_err(), "{voters}");
        }
    }

    #[test]
    fn a_controller_must_be_a_voter_with_a_listener() {
        let not_voter = config(&format!(
            "{VOTERS}node_id = 4\ncontroller_listen = \"127.0.0.1:9093\""
        ));
        let err = not_voter.validate().unwrap_err().to_string();
        assert!(err.contains("not among the voters"), "{err}");
        let no_listener = config(VOTERS);
        assert!(no_listener
            .validate()
            .unwrap_err()
            .to_string()
            .contains("controller_listen"));
        let broker_only = config(&format!(
            "{VOTERS}process_roles = [\"broker\"]\ncontroller_listen = \"127.0.0.1:9093\""
        ));
        assert!(broker_only.validate().is_err());
        assert!(Config::from_toml("process_roles = [\"observer\"]").is_err());
        let bad_timing = config(&format!(
            "{VOTERS}controller_listen = \"127.0.0.1:9093\"\nbroker_session_timeout_ms = 100\nbroker_heartbeat_interval_ms = 200"
        ));
        assert!(bad_timing.validate().is_err());
    }

    #[test]
    fn a_joining_controller_names_bootstrap_servers_and_the_cluster() {
        let servers = "controller_quorum_bootstrap_servers = \"127.0.0.1:9093,localhost:9094\"\n";
        let listen = "controller_listen = \"127.0.0.1:9095\"\nnode_id = 4\n";
        let joining = config(&format!("{servers}{listen}cluster_id = \"c1\""));
        let quorum = quorum_config(&joining).unwrap().unwrap();
        assert!(quorum.voters.is_empty());
        assert_eq!(quorum.bootstrap.len(), 2);
        let err = quorum_config(&config(&format!("{servers}{listen}")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster_id"), "{err}");
        let both = config(&format!("{servers}{VOTERS}{listen}cluster_id = \"c1\""));
        assert!(quorum_config(&both).is_err());
    }

    #[test]
    fn every_node_derives_the_same_cluster_id() {
        let a = parse_voters("1@127.0.0.1:1,2@127.0.0.1:2").unwrap();
        let b = parse_voters("2@127.0.0.1:2,1@127.0.0.1:1").unwrap();
        let id = derived_cluster_id(&a);
        assert_eq!(id, derived_cluster_id(&b));
        assert_eq!(id.len(), 22);
        assert_ne!(
            id,
            derived_cluster_id(&parse_voters("1@127.0.0.1:1").unwrap())
        );
    }
}
