//! KIP-853's quorum membership APIs, as `kafka-metadata-quorum add-controller` and
//! `remove-controller` use them: AddRaftVoter and RemoveRaftVoter change the metadata
//! quorum's voters, UnregisterController drops a controller's registration. Any broker
//! answers, through the active controller (Kafka's brokers forward them); ALTER on the
//! cluster, as Kafka's ControllerApis require.

use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
    UnregisterControllerRequest, UnregisterControllerResponse,
};
use kafka_protocol::protocol::StrBytes;
use samsa_metadata::voters::{VoterChange, VoterChangeReason, VoterChangeRefused};
use uuid::Uuid;

use super::{allowed_on_cluster, str_bytes, Session};
use crate::auth::{AuthError, Operation};
use crate::broker::Broker;
use crate::error::BrokerError;

/// The listener Kafka's controllers talk to each other on by default, which a new voter
/// must name (KafkaRaftClient checks the request has an endpoint for it).
const CONTROLLER_LISTENER: &str = "CONTROLLER";

/// Kafka's code and message for an answer (none on success).
type Answer = (i16, Option<StrBytes>);

fn answer(outcome: Result<(), BrokerError>) -> Answer {
    match outcome {
        Ok(()) => (0, None),
        Err(err) => (err.code(), err.message().map(str_bytes)),
    }
}

fn invalid(message: &str) -> BrokerError {
    BrokerError::Metadata(
        VoterChangeRefused {
            reason: VoterChangeReason::InvalidRequest,
            message: message.into(),
        }
        .into(),
    )
}

/// Kafka's first checks on the controller: authorization, then the cluster id (a missing
/// one is accepted).
fn precheck(
    broker: &Broker,
    session: &Session,
    cluster_id: Option<&StrBytes>,
) -> Result<(), BrokerError> {
    if !allowed_on_cluster(broker, session, Operation::Alter) {
        return Err(AuthError::ClusterDenied.into());
    }
    let ours = broker.topics.cluster_id();
    match cluster_id {
        Some(given) if given.as_str() != ours => Err(BrokerError::InconsistentClusterId {
            given: given.to_string(),
            ours: ours.to_string(),
        }),
        _ => Ok(()),
    }
}

pub async fn add(
    broker: &Broker,
    session: &Session,
    request: AddRaftVoterRequest,
) -> AddRaftVoterResponse {
    let (code, message) = answer(add_voter(broker, session, &request).await);
    AddRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}

async fn add_voter(
    broker: &Broker,
    session: &Session,
    request: &AddRaftVoterRequest,
) -> Result<(), BrokerError> {
    precheck(broker, session, request.cluster_id.as_ref())?;
    let id = u64::try_from(request.voter_id);
    let (Ok(id), false) = (id, request.voter_directory_id.is_nil()) else {
        return Err(invalid("Add voter request didn't include a valid voter"));
    };
    let listener = request
        .listeners
        .iter()
        .find(|l| l.name.as_str() == CONTROLLER_LISTENER);
    let Some(listener) = listener else {
        let given: Vec<String> = request
            .listeners
            .iter()
            .map(|l| {
                // Java's unresolved InetSocketAddress, as Kafka prints it.
                let (name, host) = (l.name.as_str(), l.host.as_str());
                format!("ListenerName({name})={host}/<unresolved>:{}", l.port)
            })
            .collect();
        return Err(invalid(&format!(
            "Add voter request didn't include the endpoint (Endpoints(endpoints={{{}}})) for the \
             default listener ListenerName({CONTROLLER_LISTENER})",
            given.join(", ")
        )));
    };
    let change = VoterChange::Add {
        id,
        directory_id: request.voter_directory_id,
        addr: format!("{}:{}", listener.host.as_str(), listener.port),
    };
    broker.cluster.change_voters(change).await
}

pub async fn remove(
    broker: &Broker,
    session: &Session,
    request: RemoveRaftVoterRequest,
) -> RemoveRaftVoterResponse {
    let outcome = async {
        precheck(broker, session, request.cluster_id.as_ref())?;
        let id = u64::try_from(request.voter_id);
        let (Ok(id), false) = (id, request.voter_directory_id.is_nil()) else {
            return Err(invalid("Remove voter request didn't include a valid voter"));
        };
        let directory_id: Uuid = request.voter_directory_id;
        let change = VoterChange::Remove { id, directory_id };
        broker.cluster.change_voters(change).await
    };
    let (code, message) = answer(outcome.await);
    RemoveRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}

pub async fn unregister_controller(
    broker: &Broker,
    session: &Session,
    request: UnregisterControllerRequest,
) -> UnregisterControllerResponse {
    let outcome = async {
        if !allowed_on_cluster(broker, session, Operation::Alter) {
            return Err(AuthError::ClusterDenied.into());
        }
        let id = request.controller_id;
        match broker.cluster.unregister_controller(id).await {
            Err(BrokerError::Metadata(samsa_metadata::Error::VoterChange(refused)))
                if refused.reason == VoterChangeReason::NotRegistered =>
            {
                Err(BrokerError::ControllerIdNotRegistered(id))
            }
            other => other,
        }
    };
    let (code, message) = answer(outcome.await);
    UnregisterControllerResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}
