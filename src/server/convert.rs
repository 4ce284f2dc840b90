//! The one-time move of a single node's metadata into the metadata log. Before a single node
//! was the only voter of its own quorum it kept its metadata in files of the data directory:
//! the topics in `catalogue.json` (see `topics::catalogue`), the ACLs in `acls.json`, the
//! SCRAM credentials in `credentials.json`, and how far its producer ids went in
//! `producer_ids.json`. On the first start that finds them, each becomes what the log would
//! hold had it been made through the API: the same topics, with the same ids, hosted and led
//! by this broker (their logs stay where they are), the same ACLs and credentials, and no
//! producer id handed out twice.
//!
//! The files are renamed with [`DONE_SUFFIX`] (and the catalogue keeps only the cluster id) once
//! everything is committed. A start that stops half-way finds the files again and makes the
//! same commands, which the log takes as already done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use samsa_metadata::{Command, CommandError, Error as MetadataError};

use crate::auth::acl::{self, AclBinding};
use crate::auth::credentials::{self, CredentialChange, Users};
use crate::broker::Broker;
use crate::handlers::is_internal_topic;
use crate::topics::catalogue::{self, CatalogueFile, TopicRecord};
use crate::txn::producer_ids;

/// Appended to each converted file's name: kept, never read again.
pub const DONE_SUFFIX: &str = ".before-quorum";
/// How long the conversion waits for this broker to be registered and unfenced.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// What a data directory kept outside the log.
#[derive(Debug, Default)]
pub struct Earlier {
    data_dir: PathBuf,
    cluster_id: String,
    topics: Vec<TopicRecord>,
    acls: Vec<AclBinding>,
    users: Users,
    producer_ids_reserved: i64,
}

impl Earlier {
    /// The metadata the data directory keeps in files, or `None` if it keeps none (a new
    /// directory, or one converted already).
    pub fn read(data_dir: &Path) -> anyhow::Result<Option<Earlier>> {
        let catalogue = catalogue::load(data_dir)?;
        let (cluster_id, topics) = match catalogue {
            Some(CatalogueFile { cluster_id, topics }) => (cluster_id, topics),
            None => (String::new(), Vec::new()),
        };
        let earlier = Earlier {
            data_dir: data_dir.to_owned(),
            cluster_id,
            topics,
            acls: acl::load_file(data_dir)?,
            users: credentials::load_file(data_dir)?,
            producer_ids_reserved: producer_ids::load_file(data_dir)?,
        };
        let files = [
            acl::FILE_NAME,
            credentials::FILE_NAME,
            producer_ids::FILE_NAME,
        ];
        let any_file = files.iter().any(|f| data_dir.join(f).exists());
        Ok((any_file || !earlier.topics.is_empty()).then_some(earlier))
    }
}

/// Commits `earlier` into the log, then retires its files. Needs the broker started (see
/// `server::start`): the ACLs and credentials are committed once installed.
pub async fn into_the_log(broker: &Arc<Broker>, earlier: Earlier) -> anyhow::Result<()> {
    let cluster = &broker.cluster;
    // A topic's replicas must be registered brokers, and one unfenced to lead.
    tokio::time::timeout(REGISTRATION_TIMEOUT, cluster.unfenced())
        .await
        .context("this broker was not registered and unfenced")?;
    let me = broker.node_id();
    for topic in &earlier.topics {
        create_topic(broker, topic, me).await?;
    }
    if !earlier.acls.is_empty() {
        cluster
            .create_acls(&earlier.acls, None)
            .await
            .context("cannot move the ACLs into the metadata log")?;
    }
    let changes = earlier
        .users
        .iter()
        .map(|(user, credentials)| {
            let upserts = credentials
                .iter()
                .map(|(mechanism, credential)| {
                    CredentialChange::Upsert(*mechanism, credential.clone())
                })
                .collect();
            (user.clone(), upserts)
        })
        .collect();
    for (user, outcome) in cluster.alter_credentials(changes).await {
        outcome.with_context(|| format!("cannot move the credentials of {user} into the log"))?;
    }
    let next = cluster.metadata().next_producer_id;
    if earlier.producer_ids_reserved > next {
        let count = u32::try_from(earlier.producer_ids_reserved - next)
            .context("too many producer ids to reserve")?;
        cluster
            .propose(Command::AllocateProducerIds { broker: me, count })
            .await
            .context("cannot reserve the producer ids handed out before")?;
    }
    // The broker starts answering clients once it is unfenced, which it already is: wait
    // until it lists the topics it just moved into the log, or its first answers would
    // leave them out (the coordinators' topics among them).
    let published = cluster
        .await_metadata(REGISTRATION_TIMEOUT, |m| {
            earlier.topics.iter().all(|t| {
                m.topics
                    .get(&t.name)
                    .is_some_and(|p| p.id == t.id.into_bytes())
            })
        })
        .await;
    anyhow::ensure!(
        published,
        "the topics moved into the metadata log were not published"
    );
    retire_files(&earlier)?;
    tracing::info!(
        topics = earlier.topics.len(),
        acls = earlier.acls.len(),
        users = earlier.users.len(),
        producer_ids = earlier.producer_ids_reserved,
        "moved this data directory's metadata into the metadata log"
    );
    Ok(())
}

/// Creates `topic` as it was, hosted and led by this broker alone. The coordinators' topics
/// are compacted, as they are created now (an offsets topic from before samsa compacted it
/// kept everything).
async fn create_topic(broker: &Broker, topic: &TopicRecord, me: i32) -> anyhow::Result<()> {
    let mut configs: BTreeMap<String, String> = topic.configs.0.clone();
    if is_internal_topic(&topic.name) {
        configs.insert("cleanup.policy".into(), "compact".into());
    }
    let command = Command::CreateTopic {
        name: topic.name.clone(),
        id: topic.id.into_bytes(),
        configs,
        assignment: vec![vec![me]; topic.partitions.max(0) as usize],
    };
    match broker.cluster.propose(command).await {
        Ok(_) => Ok(()),
        // Committed by an earlier start that stopped before retiring the files.
        Err(MetadataError::Command(CommandError::TopicExists(_)))
            if broker
                .cluster
                .metadata()
                .topics
                .get(&topic.name)
                .is_some_and(|t| t.id == topic.id.into_bytes()) =>
        {
            Ok(())
        }
        Err(err) => bail!(
            "cannot move topic {} into the metadata log: {err}",
            topic.name
        ),
    }
}

/// The catalogue keeps only the cluster id; the other files get [`DONE_SUFFIX`].
fn retire_files(earlier: &Earlier) -> anyhow::Result<()> {
    let dir = &earlier.data_dir;
    let catalogue_path = catalogue::path_in(dir);
    if !earlier.topics.is_empty() {
        let kept = catalogue_path.with_file_name(format!(
            "{}{DONE_SUFFIX}",
            catalogue_path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        ));
        std::fs::copy(&catalogue_path, &kept)
            .with_context(|| format!("cannot keep {}", catalogue_path.display()))?;
        let file = CatalogueFile {
            cluster_id: earlier.cluster_id.clone(),
            topics: Vec::new(),
        };
        catalogue::store(dir, &file)
            .with_context(|| format!("cannot rewrite {}", catalogue_path.display()))?;
    }
    for name in [
        acl::FILE_NAME,
        credentials::FILE_NAME,
        producer_ids::FILE_NAME,
    ] {
        let path = dir.join(name);
        if path.exists() {
            let retired = dir.join(format!("{name}{DONE_SUFFIX}"));
            std::fs::rename(&path, &retired)
                .with_context(|| format!("cannot retire {}", path.display()))?;
        }
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}
