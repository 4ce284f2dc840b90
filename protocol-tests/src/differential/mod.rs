//! Differential testing against Apache Kafka: the same scripted requests go to a fresh
//! samsa and to a reference Kafka (`KAFKA_REF_BOOTSTRAP`, started by
//! `protocol-tests/run.sh`), in lockstep; both answers are normalised (`normalise`) and
//! compared field by field (`tree`); differences not in the allow-list fail the test.

pub mod allowlist;
pub mod normalise;
mod own_kafka;
pub mod tree;

pub use own_kafka::OwnKafka;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    ListOffsetsRequest, MetadataRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::Request;
use uuid::Uuid;

use crate::client::{str_bytes, topic_name};
use crate::sasl::{scram_user, Scram};
use crate::{BrokerProcess, Connection};
use allowlist::Allowlist;
use tree::{Difference, Node};

/// Kafka's reference broker's `node.id` (compat/reference/kafka_ref.py).
const KAFKA_NODE_ID: i32 = 1;
/// samsa is given a different node id on purpose, so node-id normalisation is exercised.
const SAMSA_NODE_ID: i32 = 7;
/// How long Kafka may take to elect leaders of a topic it just created.
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// One broker of the pair, as a request builder sees it.
pub struct Side {
    pub name: &'static str,
    pub conn: Connection,
    addr: String,
    pub node_id: i32,
    ids: HashMap<String, Uuid>,
    names: HashMap<Uuid, String>,
    /// Member ids seen in this broker's answers, for `normalise` (order of appearance).
    member_ids: RefCell<Vec<String>>,
}

impl Side {
    fn open(name: &'static str, addr: &str, node_id: i32) -> Result<Side> {
        Ok(Side {
            name,
            conn: Connection::open(addr)
                .with_context(|| format!("connecting to {name} at {addr}"))?,
            addr: addr.to_owned(),
            node_id,
            ids: HashMap::new(),
            names: HashMap::new(),
            member_ids: RefCell::new(Vec::new()),
        })
    }

    /// The id this broker gave `topic` (created through [`Differential::create_topic`]).
    pub fn id(&self, topic: &str) -> Uuid {
        *self
            .ids
            .get(topic)
            .unwrap_or_else(|| panic!("{topic} not created on {}", self.name))
    }

    fn remember(&mut self, topic: &str, id: Uuid) {
        self.ids.insert(topic.to_owned(), id);
        self.names.insert(id, topic.to_owned());
    }

    /// Sends and decodes; a closed or broken connection is an answer too (Kafka closes
    /// the connection on versions it does not serve), after which the side reconnects.
    fn exchange<R: Request + std::fmt::Debug>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Answer<R::Response> {
        match self.conn.send(request, version) {
            Ok(response) => Answer::Response(response),
            Err(e) => {
                let closed = e.downcast_ref::<std::io::Error>().is_some_and(|io| {
                    use std::io::ErrorKind::*;
                    matches!(
                        io.kind(),
                        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
                    )
                });
                let what = if closed {
                    "<connection closed>".to_owned()
                } else {
                    format!("<error: {e:#}>")
                };
                self.conn = Connection::open(&self.addr).expect("reconnecting");
                Answer::Failed(what)
            }
        }
    }
}

/// What one broker answered.
#[derive(Debug)]
pub enum Answer<T> {
    Response(T),
    /// No decodable response: the connection was closed, or the bytes did not decode.
    Failed(String),
}

impl<T> Answer<T> {
    pub fn response(&self) -> Option<&T> {
        match self {
            Answer::Response(r) => Some(r),
            Answer::Failed(_) => None,
        }
    }
}

/// A difference seen in one case.
#[derive(Debug)]
pub struct Found {
    pub case: String,
    pub diff: Difference,
    pub allowed_by: Option<usize>,
}

/// One test's pair of brokers and everything they disagreed on.
pub struct Differential {
    test: String,
    run_tag: String,
    _samsa_process: BrokerProcess,
    /// The test's own reference Kafka, if it has one ([`Differential::start_own_kafka`]).
    _own_kafka: Option<OwnKafka>,
    /// samsa's SASL_PLAINTEXT listener, when started with [`Differential::start_sasl`].
    samsa_sasl: Option<String>,
    pub samsa: Side,
    pub kafka: Side,
    allowlist: Allowlist,
    cases: Vec<String>,
    found: Vec<Found>,
}

/// The Kafka reference's address; a test run without it is a mistake, not a skip.
pub fn kafka_bootstrap() -> String {
    match std::env::var("KAFKA_REF_BOOTSTRAP") {
        Ok(addr) if !addr.is_empty() => addr,
        _ => panic!(
            "KAFKA_REF_BOOTSTRAP is not set: the differential tests need a reference Kafka. \
             Run them through `bash protocol-tests/run.sh` (or `make test`), which starts one."
        ),
    }
}

/// The reference Kafka's SASL_PLAINTEXT listener (`KAFKA_REF_SASL_BOOTSTRAP`, run.sh).
pub fn kafka_sasl_bootstrap() -> String {
    match std::env::var("KAFKA_REF_SASL_BOOTSTRAP") {
        Ok(addr) if !addr.is_empty() => addr,
        _ => panic!(
            "KAFKA_REF_SASL_BOOTSTRAP is not set: run the differential tests through \
             `bash protocol-tests/run.sh`, which starts Kafka with a SASL listener."
        ),
    }
}

/// The SASL users of both brokers, PLAIN and SCRAM-SHA-256/512 alike: kafka_ref.py's
/// `SASL_USERS`. admin is a super user; alice has no ACLs.
pub const SASL_USERS: &[(&str, &str)] = &[("admin", "admin-pw"), ("alice", "alice-pw")];

impl Differential {
    /// A fresh samsa, a connection to the shared Kafka, and the allow-list.
    pub fn start(test: &str) -> Differential {
        Differential::start_with(test, "", None)
    }

    /// [`Differential::start`], samsa with `extra` lines of configuration (a setting
    /// to match the reference Kafka's, say).
    pub fn start_configured(test: &str, extra: &str) -> Differential {
        Differential::start_with(test, extra, None)
    }

    /// [`Differential::start_configured`] against a Kafka of the test's own, started with
    /// `kafka_overrides` (a setting that is not Kafka's default), instead of the shared one.
    pub fn start_own_kafka(
        test: &str,
        extra: &str,
        kafka_overrides: &[(&str, &str)],
    ) -> Differential {
        let kafka = OwnKafka::start(kafka_overrides).expect("starting the test's own Kafka");
        let mut d = Differential::start_against(test, extra, None, &kafka.bootstrap);
        d._own_kafka = Some(kafka);
        d
    }

    /// [`Differential::start`], samsa with a SASL_PLAINTEXT listener beside the plaintext
    /// one, with Kafka's users ([`SASL_USERS`]), for [`Differential::use_sasl_listeners`].
    pub fn start_sasl(test: &str) -> Differential {
        Differential::start_sasl_configured(test, "")
    }

    /// [`Differential::start_sasl`] with `extra` lines of samsa configuration.
    pub fn start_sasl_configured(test: &str, extra: &str) -> Differential {
        let addr = format!("127.0.0.1:{}", crate::free_port());
        // Kafka lists its mechanisms in this order.
        let mut sasl = format!(
            "[[listener]]\nname = \"sasl\"\naddress = \"{addr}\"\nprotocol = \"SASL_PLAINTEXT\"\n\n\
             [sasl]\nmechanisms = [\"PLAIN\", \"SCRAM-SHA-512\", \"SCRAM-SHA-256\"]\n"
        );
        for (user, password) in SASL_USERS {
            for mechanism in Scram::ALL {
                sasl.push_str(&scram_user(user, mechanism, password));
            }
        }
        // Top-level keys before the tables, or TOML puts them in the last table.
        Differential::start_with(test, &format!("{extra}{sasl}"), Some(addr))
    }

    fn start_with(test: &str, extra: &str, samsa_sasl: Option<String>) -> Differential {
        Differential::start_against(test, extra, samsa_sasl, &kafka_bootstrap())
    }

    fn start_against(
        test: &str,
        extra: &str,
        samsa_sasl: Option<String>,
        kafka_addr: &str,
    ) -> Differential {
        let samsa = BrokerProcess::start(&format!(
            // What kafka_ref.py sets in server.properties, so both report them as set by the
            // operator; then the group settings Kafka has (kafka_ref.py's rebalance delay 0, and
            // Kafka's defaults for session bounds and the offsets topic's 50 partitions).
            // ACLs are enforced on both (run.sh's `--authorizer`), with the same super users.
            "node_id = {SAMSA_NODE_ID}\nnum_partitions = 1\nauto_create_topics = true\n\
             authorizer = true\nsuper_users = [\"User:ANONYMOUS\", \"User:admin\"]\n\
             group_initial_rebalance_delay_ms = 0\n\
             group_min_session_timeout_ms = 6000\ngroup_max_session_timeout_ms = 1800000\n\
             offsets_topic_num_partitions = 50\n{extra}"
        ))
        .expect("starting samsa");
        let allowlist_path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("differential-allowlist.toml");
        Differential {
            test: test.to_owned(),
            run_tag: Uuid::new_v4().simple().to_string()[..8].to_owned(),
            samsa: Side::open("samsa", &samsa.addr, SAMSA_NODE_ID).unwrap(),
            kafka: Side::open("kafka", kafka_addr, KAFKA_NODE_ID).unwrap(),
            _samsa_process: samsa,
            _own_kafka: None,
            samsa_sasl,
            allowlist: Allowlist::load(&allowlist_path).unwrap(),
            cases: Vec::new(),
            found: Vec::new(),
        }
    }

    /// From now on both sides talk to their SASL_PLAINTEXT listener (fresh connections,
    /// not yet authenticated). Needs [`Differential::start_sasl`].
    pub fn use_sasl_listeners(&mut self) {
        let samsa = self.samsa_sasl.clone().expect("started with start_sasl");
        let kafka = kafka_sasl_bootstrap();
        self.samsa.addr = samsa;
        self.kafka.addr = kafka;
        self.reconnect();
    }

    /// Setup, not compared: samsa stops (SIGTERM) and starts again on its data, and both
    /// sides reconnect. Kafka keeps running: what samsa answers after its restart must be
    /// what Kafka answers without one.
    pub fn restart_samsa(&mut self) {
        self._samsa_process.restart().expect("restarting samsa");
        self.reconnect();
    }

    /// Setup, not compared: new connections to both brokers (unauthenticated on SASL).
    pub fn reconnect(&mut self) {
        for side in [&mut self.samsa, &mut self.kafka] {
            side.conn = Connection::open(&side.addr)
                .with_context(|| format!("connecting to {} at {}", side.name, side.addr))
                .unwrap();
        }
    }

    /// Setup, not compared: both connections authenticate as `user` with PLAIN.
    pub fn login(&mut self, user: &str) {
        let password = SASL_USERS
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, p)| *p)
            .expect("a SASL user");
        for side in [&mut self.samsa, &mut self.kafka] {
            let answer = side.conn.login_plain(user, password, 2).unwrap();
            assert_eq!(answer.error_code, 0, "{user} on {}: {answer:?}", side.name);
        }
    }

    /// A topic name unique to this test and run (Kafka is shared by the whole suite);
    /// the run tag is normalised away in answers.
    pub fn topic(&self, base: &str) -> String {
        format!("{}-{base}-{}", self.test.replace('_', "-"), self.run_tag)
    }

    /// Sends the request `build` makes for each broker, samsa first, and records how the
    /// normalised answers differ under `case@v{version}`. Returns both answers.
    pub fn compare<R, F>(
        &mut self,
        case: &str,
        version: i16,
        build: F,
    ) -> (Answer<R::Response>, Answer<R::Response>)
    where
        R: Request + std::fmt::Debug,
        R::Response: std::fmt::Debug,
        F: Fn(&Side) -> R,
    {
        self.compare_part(case, version, build, |_| {})
    }

    /// [`Differential::compare`], comparing only what `keep` leaves of each answer: for
    /// broker-wide listings (ListGroups) on the Kafka the whole suite shares, where other
    /// tests' entries must be dropped. The answers returned are the trimmed ones.
    pub fn compare_part<R, F, K>(
        &mut self,
        case: &str,
        version: i16,
        build: F,
        keep: K,
    ) -> (Answer<R::Response>, Answer<R::Response>)
    where
        R: Request + std::fmt::Debug,
        R::Response: std::fmt::Debug,
        F: Fn(&Side) -> R,
        K: Fn(&mut R::Response),
    {
        let (samsa, kafka) = self.exchange_both(version, &build, &keep);
        let case = format!("{}.{case}@v{version}", self.test);
        let s = self.tree(&samsa, &self.samsa);
        let k = self.tree(&kafka, &self.kafka);
        for diff in tree::diff(&s, &k) {
            let allowed_by = self.allowlist.allows(&case, &diff);
            self.found.push(Found {
                case: case.clone(),
                diff,
                allowed_by,
            });
        }
        self.cases.push(case);
        (samsa, kafka)
    }

    /// [`Differential::compare_part`] for a read of state Kafka applies asynchronously
    /// (configs, ACLs, credentials: its controller commits a change, then the serving broker
    /// picks the metadata up a moment later). The read is repeated on both brokers for up to
    /// ten seconds while the answers still differ in ways the allow-list does not cover, so a
    /// difference that is only Kafka catching up is not reported, and one that lasts is.
    pub fn compare_settled<R, F, K>(
        &mut self,
        case: &str,
        version: i16,
        build: F,
        keep: K,
    ) -> (Answer<R::Response>, Answer<R::Response>)
    where
        R: Request + std::fmt::Debug,
        R::Response: std::fmt::Debug,
        F: Fn(&Side) -> R,
        K: Fn(&mut R::Response),
    {
        let full_case = format!("{}.{case}@v{version}", self.test);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (samsa, kafka) = self.exchange_both(version, &build, &keep);
            let s = self.tree(&samsa, &self.samsa);
            let k = self.tree(&kafka, &self.kafka);
            let settled = tree::diff(&s, &k)
                .iter()
                .all(|diff| self.allowlist.allows(&full_case, diff).is_some());
            if settled || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.compare_part(case, version, build, keep)
    }

    /// The request `build` makes for each broker, samsa first, with `keep` applied to each answer.
    fn exchange_both<R, F, K>(
        &mut self,
        version: i16,
        build: &F,
        keep: &K,
    ) -> (Answer<R::Response>, Answer<R::Response>)
    where
        R: Request + std::fmt::Debug,
        R::Response: std::fmt::Debug,
        F: Fn(&Side) -> R,
        K: Fn(&mut R::Response),
    {
        let mut samsa = self.samsa.exchange(&build(&self.samsa), version);
        let mut kafka = self.kafka.exchange(&build(&self.kafka), version);
        for answer in [&mut samsa, &mut kafka] {
            if let Answer::Response(r) = answer {
                keep(r);
            }
        }
        (samsa, kafka)
    }

    fn tree<T: std::fmt::Debug>(&self, answer: &Answer<T>, side: &Side) -> Node {
        let mut node = match answer {
            Answer::Response(r) => Node::of(r),
            Answer::Failed(what) => Node::leaf(what.clone()),
        };
        let facts = normalise::Facts {
            node_id: side.node_id,
            topic_names: &side.names,
            run_tag: &self.run_tag,
            member_ids: &side.member_ids,
        };
        normalise::normalise(&mut node, &facts);
        node
    }

    /// Setup, not compared: creates `name` on both brokers (CreateTopics v7), remembers
    /// each broker's id for it, and waits until Kafka, which creates topics
    /// asynchronously, reports a leader for every partition.
    pub fn create_topic(&mut self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(str_bytes(k))
                                .with_value(Some(str_bytes(v)))
                        })
                        .collect(),
                )]);
        for side in [&mut self.samsa, &mut self.kafka] {
            let response = side.conn.send(&request, 7).unwrap();
            let result = &response.topics[0];
            assert_eq!(
                result.error_code, 0,
                "creating {name} on {}: {:?}",
                side.name, result.error_message
            );
            side.remember(name, result.topic_id);
        }
        self.await_leaders(name, partitions).unwrap();
    }

    /// Waits until Kafka's Metadata shows `partitions` partitions of `name`, each with a
    /// leader, and the broker itself serves them: its metadata cache can name the leader
    /// a moment before the partition is open, and a Produce then gets NOT_LEADER_OR_FOLLOWER.
    pub fn await_leaders(&mut self, name: &str, partitions: i32) -> Result<()> {
        let deadline = Instant::now() + LEADER_TIMEOUT;
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(name)))
            ]))
            .with_allow_auto_topic_creation(false);
        loop {
            let response = self.kafka.conn.send(&request, 12)?;
            if let Some(topic) = response.topics.first() {
                if topic.error_code == 0
                    && topic.partitions.len() == partitions as usize
                    && topic
                        .partitions
                        .iter()
                        .all(|p| p.error_code == 0 && p.leader_id.0 >= 0)
                    && self.kafka_serves(name, partitions)?
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("Kafka shows no leaders for {name} after {LEADER_TIMEOUT:?}: {response:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether Kafka answers ListOffsets for every partition of `name` without error.
    fn kafka_serves(&mut self, name: &str, partitions: i32) -> Result<bool> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(name))
                .with_partitions(
                    (0..partitions)
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(-1)
                        })
                        .collect(),
                )]);
        let response = self.kafka.conn.send(&request, 7)?;
        Ok(response
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .all(|p| p.error_code == 0))
    }

    /// Setup, not compared: waits until both brokers coordinate `group`. samsa answers
    /// COORDINATOR_LOAD_IN_PROGRESS until it has replayed its offsets topic; Kafka creates
    /// `__consumer_offsets` on the first FindCoordinator and loads each partition after.
    pub fn await_group_coordinator(&mut self, group: &str) -> Result<()> {
        let deadline = Instant::now() + LEADER_TIMEOUT;
        let samsa_probe = ListGroupsRequest::default();
        let kafka_lookup = FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![str_bytes(group)]);
        let kafka_probe =
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(str_bytes(group)))
                .with_topics(None)]);
        loop {
            let samsa = self.samsa.conn.send(&samsa_probe, 4)?.error_code;
            let found = self.kafka.conn.send(&kafka_lookup, 4)?.coordinators[0].error_code;
            let loaded =
                found == 0 && self.kafka.conn.send(&kafka_probe, 8)?.groups[0].error_code == 0;
            if samsa == 0 && loaded {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("group coordinators not ready after {LEADER_TIMEOUT:?}: samsa {samsa}, kafka {found}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Setup, not compared: waits until Kafka names a coordinator for transactional id
    /// `key` (it creates `__transaction_state` on the first lookup). samsa has none.
    pub fn await_transaction_coordinator(&mut self, key: &str) -> Result<()> {
        let deadline = Instant::now() + LEADER_TIMEOUT;
        let lookup = FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![str_bytes(key)]);
        loop {
            let found = self.kafka.conn.send(&lookup, 4)?.coordinators[0].error_code;
            if found == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "Kafka has no transaction coordinator after {LEADER_TIMEOUT:?}: error {found}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Setup, not compared: learns each broker's id of an existing topic the test did not
    /// create (`__consumer_offsets`), so requests can name it by id and answers show its name.
    pub fn learn_topic_id(&mut self, name: &str) -> Result<()> {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(name)))
            ]))
            .with_allow_auto_topic_creation(false);
        for side in [&mut self.samsa, &mut self.kafka] {
            let response = side.conn.send(&request, 12)?;
            let topic = response.topics.first().context("no topic in Metadata")?;
            ensure!(
                topic.error_code == 0,
                "{name} on {}: error {}",
                side.name,
                topic.error_code
            );
            side.remember(name, topic.topic_id);
        }
        Ok(())
    }

    /// Records a difference found by a check of the test's own (not a request pair).
    pub fn record(&mut self, case: &str, diff: Difference) {
        let case = format!("{}.{case}", self.test);
        let allowed_by = self.allowlist.allows(&case, &diff);
        self.found.push(Found {
            case: case.clone(),
            diff,
            allowed_by,
        });
        self.cases.push(case);
    }

    /// Marks `case` as run even when it found nothing (so stale allow-list entries show).
    pub fn ran(&mut self, case: &str) {
        self.cases.push(format!("{}.{case}", self.test));
    }

    /// Fails, with a readable report, on any difference not allowed and on any allow-list
    /// entry for a case that ran here that no longer matches anything.
    pub fn finish(self) {
        if let Err(report) = self.verdict() {
            panic!("{report}");
        }
    }

    fn verdict(&self) -> Result<()> {
        let mut report = String::new();
        let unexpected: Vec<&Found> = self
            .found
            .iter()
            .filter(|f| f.allowed_by.is_none())
            .collect();
        if !unexpected.is_empty() {
            report.push_str(&format!(
                "{} difference(s) from Kafka not in protocol-tests/differential-allowlist.toml:\n\n",
                unexpected.len()
            ));
            for f in &unexpected {
                report.push_str(&allowlist::entry_text(&f.case, &f.diff));
                report.push('\n');
            }
        }
        for (i, entry) in self.allowlist.entries.iter().enumerate() {
            let in_scope = self.cases.iter().any(|c| self.allowlist.covers(i, c));
            let used = self.found.iter().any(|f| f.allowed_by == Some(i));
            if in_scope && !used {
                report.push_str(&format!(
                    "allow-list entry no longer occurs, remove it: case {:?} path {:?} (samsa {:?}, kafka {:?})\n",
                    entry.case, entry.path, entry.samsa, entry.kafka
                ));
            }
        }
        let allowed = self.found.len() - unexpected.len();
        eprintln!(
            "{}: {} case(s), {} allowed difference(s)",
            self.test,
            self.cases.len(),
            allowed
        );
        ensure!(report.is_empty(), "{report}");
        Ok(())
    }
}
