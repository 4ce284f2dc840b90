//! Produce's schema id validation of one batch, for topics that ask for it (see
//! [`crate::schema_validation`]): topics that do not pay nothing past one config lookup.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use samsa_storage::{BatchHeader, Compression};

use super::off_event_loop;
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::schema_validation::{self, Refusal, Rule, SchemaIds};
use crate::topics::Topic;

/// How long a batch whose schema id is above every id this broker's registry has seen
/// waits for it to arrive (registered through another node, replicating here) before it is
/// refused as unknown. Replication of `_schemas` takes milliseconds; this only delays a
/// producer sending ids that do not exist.
const NEW_ID_WAIT: Duration = Duration::from_secs(1);

/// Checks every record of `batch` (one whole client batch) against the topic's rule.
pub async fn check(
    broker: &Broker,
    topic: &Topic,
    header: &BatchHeader,
    batch: &Bytes,
) -> Result<(), BrokerError> {
    let rule = topic.configs.schema_rule();
    // Control batches carry no client data (and clients may not send them).
    if !rule.is_on() || header.is_control() {
        return Ok(());
    }
    // The log checks framing, size and CRC again; checked first here too, so a corrupt or
    // oversized batch gets Kafka's code for that rather than a verdict on its garbage.
    let max_message_bytes = topic.configs.max_message_bytes(&broker.config);
    samsa_storage::validate_batches(batch, max_message_bytes)?;
    let registry = broker.schema_ids.get().cloned();
    let check = Check {
        topic: topic.name.clone(),
        rule,
        batch: batch.clone(),
        compressed: header.compression() != Compression::None,
        registry: registry.clone(),
    };
    let mut applied = registry.as_ref().map(|r| r.applied());
    let mut verdict = check.run(true).await?;
    let deadline = tokio::time::Instant::now() + NEW_ID_WAIT;
    while let (Err(Refusal::NotReady(_)), Some(applied)) = (&verdict, applied.as_mut()) {
        let changed = tokio::time::timeout_at(deadline, applied.changed()).await;
        let patient = matches!(changed, Ok(Ok(())));
        verdict = check.run(patient).await?;
        if !patient {
            break;
        }
    }
    match verdict {
        Ok(()) => Ok(()),
        Err(Refusal::Records(refused)) => {
            tracing::debug!(
                topic = %topic.name,
                records = refused.len(),
                "batch refused by schema id validation: {}",
                refused[0].1
            );
            broker
                .metrics
                .record_schema_rejected(&topic.name, refused.len());
            Err(BrokerError::RecordsInvalid(refused))
        }
        Err(Refusal::NotReady(why)) => Err(BrokerError::SchemaNotReady(why)),
    }
}

struct Check {
    topic: String,
    rule: Rule,
    batch: Bytes,
    compressed: bool,
    registry: Option<Arc<dyn SchemaIds>>,
}

impl Check {
    /// A compressed batch is decompressed on a blocking thread, as recompression is: it may
    /// take milliseconds the event loop must not spend.
    async fn run(&self, patient: bool) -> Result<Result<(), Refusal>, BrokerError> {
        if !self.compressed {
            return self.verdict(patient);
        }
        let check = Check {
            topic: self.topic.clone(),
            batch: self.batch.clone(),
            registry: self.registry.clone(),
            ..*self
        };
        off_event_loop(move || check.verdict(patient)).await
    }

    fn verdict(&self, patient: bool) -> Result<Result<(), Refusal>, BrokerError> {
        let records = samsa_storage::record_payloads(&self.batch)?;
        Ok(schema_validation::check(
            &self.topic,
            self.rule,
            &records,
            self.registry.as_deref(),
            patient,
        ))
    }
}
