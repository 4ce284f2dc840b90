//! Client quotas in a cluster. AlterClientQuotas is checked by the node that received it
//! and committed through the active controller, as a KRaft broker forwards it; every node
//! follows the quotas it applies, for DescribeClientQuotas and for their enforcement.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use samsa_metadata::quotas::{self, Alteration, AlterationResult, ClientQuotas, QuotaChange};
use samsa_metadata::{ClusterMetadata, Command};
use tokio::sync::watch;

use super::{wait_for, Cluster};
use crate::error::BrokerError;

/// How long a committed change may take to be applied on this node.
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the host names of a request's ip entities may take to resolve, together.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

impl Cluster {
    /// The client quotas this node applied last: shared with the metadata, so cheap to
    /// take on every request.
    pub fn client_quotas(&self) -> Arc<ClientQuotas> {
        self.node.metadata().borrow().client_quotas.clone()
    }

    /// The client quotas as this node applies them: the receiver is marked changed only
    /// when the quotas themselves change, within moments of the change's commit.
    pub fn subscribe_client_quotas(&self) -> watch::Receiver<Arc<ClientQuotas>> {
        self.client_quotas.subscribe()
    }

    /// AlterClientQuotas: every entry checked by Kafka's rules (`quotas::plan`), the valid
    /// changes committed together through the controller, unless `validate_only`. Answered
    /// once this node applied them, so that a describe sent to it next sees them. An
    /// unreachable controller fails the whole request.
    pub async fn alter_client_quotas(
        &self,
        alterations: &[Alteration],
        validate_only: bool,
    ) -> Result<Vec<AlterationResult>, BrokerError> {
        let resolvable = resolvable_hosts(alterations).await;
        let plan = quotas::plan(alterations, &|host| resolvable.contains(host));
        if validate_only || plan.results.is_empty() {
            return Ok(plan.results);
        }
        let changes = plan.changes;
        self.forward(Command::AlterClientQuotas {
            changes: changes.clone(),
        })
        .await?;
        let applied = |m: &ClusterMetadata| changes.iter().all(|c| applied(&m.client_quotas, c));
        if !wait_for(self.node.metadata(), APPLY_TIMEOUT, applied).await {
            tracing::warn!(
                "committed client quota changes were not applied here within {APPLY_TIMEOUT:?}"
            );
        }
        Ok(plan.results)
    }
}

fn applied(quotas: &ClientQuotas, change: &QuotaChange) -> bool {
    quotas.value(&change.entity, &change.key) == change.value
}

/// The names of ip entities that are addresses or resolve as host names (Kafka's
/// `InetAddress.getByName`), looked up before the rules run so that they stay free of I/O.
/// Each name is looked up once, and all within one [`LOOKUP_TIMEOUT`]: a request naming
/// many hosts cannot hold its connection for longer.
async fn resolvable_hosts(alterations: &[Alteration]) -> BTreeSet<String> {
    let names: BTreeSet<&str> = alterations
        .iter()
        .filter_map(|a| a.entity.get(quotas::IP)?.as_deref())
        .collect();
    let deadline = tokio::time::Instant::now() + LOOKUP_TIMEOUT;
    let mut resolvable = BTreeSet::new();
    for name in names {
        if name.parse::<IpAddr>().is_ok() || resolves(name, deadline).await {
            resolvable.insert(name.to_owned());
        }
    }
    resolvable
}

async fn resolves(host: &str, deadline: tokio::time::Instant) -> bool {
    let lookup = tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, 0))).await;
    match lookup {
        Ok(Ok(mut addresses)) => addresses.next().is_some(),
        _ => false,
    }
}

/// Sends the client quotas of each metadata this node applies, when they changed: the
/// metadata shares them between its versions until a change replaces them.
pub(super) async fn follow(
    mut metadata: watch::Receiver<Arc<ClusterMetadata>>,
    quotas: watch::Sender<Arc<ClientQuotas>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let current = metadata.borrow_and_update().client_quotas.clone();
        quotas.send_if_modified(|known| {
            let changed = !Arc::ptr_eq(known, &current) && **known != *current;
            if changed {
                tracing::info!(entities = current.iter().count(), "client quotas changed");
                *known = current;
            }
            changed
        });
        tokio::select! {
            changed = metadata.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use samsa_metadata::quotas::{EntityName, QuotaEntity, PRODUCER_BYTE_RATE};

    use super::*;

    fn with_rate(metadata: &ClusterMetadata, value: f64) -> Arc<ClusterMetadata> {
        let mut next = metadata.clone();
        let change = QuotaChange {
            entity: QuotaEntity::user(EntityName::named("alice")),
            key: PRODUCER_BYTE_RATE.into(),
            value: Some(value),
        };
        next.apply(&Command::AlterClientQuotas {
            changes: vec![change],
        })
        .unwrap();
        Arc::new(next)
    }

    /// The test runtime has one thread: yielding lets the follower take what was sent.
    async fn follower_ran() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn subscribers_hear_of_quota_changes_only() {
        let (metadata, applied) = watch::channel(Arc::new(ClusterMetadata::default()));
        let (quotas, mut heard) = watch::channel(Arc::new(ClientQuotas::default()));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(follow(applied, quotas, stopped));

        let first = with_rate(&metadata.borrow(), 100.0);
        metadata.send_replace(first.clone());
        heard.changed().await.unwrap();
        let alice = QuotaEntity::user(EntityName::named("alice"));
        assert_eq!(
            heard.borrow_and_update().value(&alice, PRODUCER_BYTE_RATE),
            Some(100.0)
        );

        // Other metadata changes share the quotas: nothing to hear. The same value set
        // again is no change either.
        let mut other = (*first).clone();
        other.next_producer_id += 1000;
        metadata.send_replace(Arc::new(other));
        follower_ran().await;
        metadata.send_replace(with_rate(&first, 100.0));
        follower_ran().await;
        assert!(!heard.has_changed().unwrap());
        let changed = with_rate(&first, 200.0);
        metadata.send_replace(changed);
        heard.changed().await.unwrap();
        assert_eq!(
            heard.borrow_and_update().value(&alice, PRODUCER_BYTE_RATE),
            Some(200.0)
        );

        stop.send_replace(true);
        task.await.unwrap();
    }
}
