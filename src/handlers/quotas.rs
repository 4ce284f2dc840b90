//! DescribeClientQuotas and AlterClientQuotas (`kafka-configs --entity-type
//! users|clients|ips`): the client quotas kept in the metadata log (see
//! `samsa_metadata::quotas`), described from what this node applied and altered through the
//! controller, as Kafka's broker answers the one from its metadata image and forwards the
//! other.

use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlteredEntity, EntryData as AlteredEntry,
};
use kafka_protocol::messages::describe_client_quotas_response::{
    EntityData as DescribedEntity, EntryData as DescribedEntry, ValueData,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use samsa_metadata::quotas::{self, Alteration, DescribeError, FilterComponent, Op};

use super::{allowed_on_cluster, str_bytes, Session};
use crate::auth::{AuthError, Operation};
use crate::broker::Broker;
use crate::error::BrokerError;

/// Takes DESCRIBE_CONFIGS on the cluster, as in Kafka; a refused filter refuses the whole
/// request, without entries.
pub fn describe(
    broker: &Broker,
    session: &Session,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let refused = |err: BrokerError| {
        DescribeClientQuotasResponse::default()
            .with_error_code(err.code())
            .with_error_message(err.message().map(str_bytes))
            .with_entries(None)
    };
    if !allowed_on_cluster(broker, session, Operation::DescribeConfigs) {
        return refused(AuthError::ClusterDenied.into());
    }
    let filter: Vec<FilterComponent> = request
        .components
        .iter()
        .map(|c| FilterComponent {
            entity_type: c.entity_type.to_string(),
            match_type: c.match_type,
            name: c._match.as_ref().map(|m| m.to_string()),
        })
        .collect();
    let configured = broker.cluster.client_quotas();
    let found = match quotas::describe(&configured, &filter, request.strict) {
        Ok(found) => found,
        Err(DescribeError::InvalidRequest(message)) => {
            return refused(BrokerError::InvalidRequest(message))
        }
        Err(DescribeError::UnsupportedVersion(message)) => {
            return refused(BrokerError::UnsupportedVersion(message))
        }
    };
    let entries = found
        .into_iter()
        .map(|(entity, values)| {
            DescribedEntry::default()
                .with_entity(
                    entity
                        .components()
                        .into_iter()
                        .map(|(kind, name)| {
                            DescribedEntity::default()
                                .with_entity_type(str_bytes(kind))
                                .with_entity_name(name.map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(key, value)| {
                            ValueData::default()
                                .with_key(str_bytes(key.clone()))
                                .with_value(*value)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

/// Takes ALTER_CONFIGS on the cluster, as Kafka's controller does. Answers one entry per
/// distinct entity; a request refused as a whole (not authorized, no controller) answers
/// every entry as sent with the error and its standard text, as Kafka's `getErrorResponse`.
pub async fn alter(
    broker: &Broker,
    session: &Session,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let alterations: Vec<Alteration> = request
        .entries
        .iter()
        .map(|entry| Alteration {
            // A type named twice in one entry keeps its last name, as Kafka's map does.
            entity: entry
                .entity
                .iter()
                .map(|e| {
                    (
                        e.entity_type.to_string(),
                        e.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect(),
            ops: entry
                .ops
                .iter()
                .map(|op| Op {
                    key: op.key.to_string(),
                    value: (!op.remove).then_some(op.value),
                })
                .collect(),
        })
        .collect();
    let outcome = if allowed_on_cluster(broker, session, Operation::AlterConfigs) {
        broker
            .cluster
            .alter_client_quotas(&alterations, request.validate_only)
            .await
    } else {
        Err(AuthError::ClusterDenied.into())
    };
    let entity = |components: Vec<(StrBytes, Option<StrBytes>)>| -> Vec<AlteredEntity> {
        components
            .into_iter()
            .map(|(kind, name)| {
                AlteredEntity::default()
                    .with_entity_type(kind)
                    .with_entity_name(name)
            })
            .collect()
    };
    let entries = match outcome {
        Ok(results) => results
            .into_iter()
            .map(|result| {
                let components = result
                    .entity
                    .into_iter()
                    .map(|(kind, name)| (str_bytes(kind), name.map(str_bytes)))
                    .collect();
                let refused = result.error.map(BrokerError::InvalidRequest);
                AlteredEntry::default()
                    .with_entity(entity(components))
                    .with_error_code(refused.as_ref().map_or(0, BrokerError::code))
                    .with_error_message(refused.map(|err| str_bytes(err.to_string())))
            })
            .collect(),
        Err(err) => {
            let text = str_bytes(err.response_error().to_string());
            request
                .entries
                .into_iter()
                .map(|entry| {
                    let components = entry
                        .entity
                        .into_iter()
                        .map(|e| (e.entity_type, e.entity_name))
                        .collect();
                    AlteredEntry::default()
                        .with_entity(entity(components))
                        .with_error_code(err.code())
                        .with_error_message(Some(text.clone()))
                })
                .collect()
        }
    };
    AlterClientQuotasResponse::default().with_entries(entries)
}
