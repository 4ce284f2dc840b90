//! DescribeUserScramCredentials and AlterUserScramCredentials. Upsertions carry a salt and
//! a salted password computed by the client; the broker turns them into StoredKey and
//! ServerKey and keeps only those, in a cluster through the controller.

use std::collections::HashMap;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::Session;
use super::{allowed, str_bytes};
use crate::auth::credentials::CredentialChange;
use crate::auth::scram::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;

const CLUSTER: &str = crate::auth::acl::CLUSTER_NAME;

pub fn describe(
    broker: &Broker,
    session: &Session,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let response = DescribeUserScramCredentialsResponse::default();
    if !allowed(
        broker,
        session,
        Operation::Describe,
        ResourceType::Cluster,
        CLUSTER,
    ) {
        return response.with_error_code(BrokerError::from(AuthError::ClusterDenied).code());
    }
    let found = broker.credentials.describe_all();
    let info = |mechanisms: &[(ScramMechanism, u32)]| -> Vec<CredentialInfo> {
        mechanisms
            .iter()
            .map(|(m, i)| {
                CredentialInfo::default()
                    .with_mechanism(m.code())
                    .with_iterations(*i as i32)
            })
            .collect()
    };
    let results = match request.users.filter(|u| !u.is_empty()) {
        // No names, or an empty list: every user with a credential.
        None => found
            .iter()
            .map(|(user, m)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(str_bytes(user.clone()))
                    .with_credential_infos(info(m))
            })
            .collect(),
        Some(users) => {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for user in &users {
                *counts.entry(user.name.as_str()).or_default() += 1;
            }
            let mut seen = std::collections::HashSet::new();
            users
                .iter()
                .filter(|u| seen.insert(u.name.as_str()))
                .map(|u| {
                    let name = u.name.as_str();
                    let result = DescribeUserScramCredentialsResult::default().with_user(u.name.clone());
                    let err = if counts[name] > 1 {
                        AuthError::DuplicateResource(format!(
                            "Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
                        ))
                    } else if let Some((_, m)) = found.iter().find(|(user, _)| user == name) {
                        return result.with_credential_infos(info(m));
                    } else {
                        AuthError::ResourceNotFound(format!(
                            "Attempt to describe a user credential that does not exist: {name}"
                        ))
                    };
                    let err = BrokerError::from(err);
                    result.with_error_code(err.code()).with_error_message(err.message().map(str_bytes))
                })
                .collect()
        }
    };
    response.with_results(results)
}

pub async fn alter(
    broker: &Broker,
    session: &Session,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // Each user's changes in request order; the first problem found for a user is its answer.
    let mut order: Vec<String> = Vec::new();
    let mut changes: HashMap<String, Result<Vec<CredentialChange>, AuthError>> = HashMap::new();
    // Kafka (KRaft's ScramControlManager) refuses a user named twice in one request, even
    // for two different mechanisms or an upsertion beside a deletion.
    let mut touched: HashMap<String, usize> = HashMap::new();
    let requested = request
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism, None))
        .chain(
            request
                .upsertions
                .iter()
                .map(|u| (u.name.to_string(), u.mechanism, Some(u))),
        );
    for (user, code, upsertion) in requested {
        if !changes.contains_key(&user) {
            order.push(user.clone());
            changes.insert(user.clone(), Ok(Vec::new()));
        }
        *touched.entry(user.clone()).or_default() += 1;
        let change = validate(&user, code, upsertion);
        let entry = changes.get_mut(&user).expect("inserted above");
        match (entry.as_mut(), change) {
            (Ok(list), Ok(change)) => list.push(change),
            (Ok(_), Err(err)) => *entry = Err(err),
            (Err(_), _) => {}
        }
    }
    for (user, count) in touched {
        if count > 1 {
            changes.insert(
                user,
                Err(AuthError::DuplicateResource(
                    "A user credential cannot be altered twice in the same request".into(),
                )),
            );
        }
    }
    let may_alter = allowed(
        broker,
        session,
        Operation::Alter,
        ResourceType::Cluster,
        CLUSTER,
    );
    let mut outcomes: HashMap<String, Result<(), BrokerError>> = HashMap::new();
    let mut valid = Vec::new();
    for user in &order {
        match changes.remove(user).expect("every user has an entry") {
            _ if !may_alter => {
                outcomes.insert(user.clone(), Err(AuthError::ClusterDenied.into()));
            }
            Ok(list) => valid.push((user.clone(), list)),
            Err(err) => {
                outcomes.insert(user.clone(), Err(err.into()));
            }
        }
    }
    outcomes.extend(broker.cluster.alter_credentials(valid).await);
    let results = order
        .into_iter()
        .map(|user| {
            let result =
                AlterUserScramCredentialsResult::default().with_user(str_bytes(user.clone()));
            match outcomes.remove(&user).unwrap_or(Ok(())) {
                Ok(()) => result,
                Err(err) => result
                    .with_error_code(err.code())
                    .with_error_message(err.message().map(str_bytes)),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn validate(
    user: &str,
    code: i8,
    upsertion: Option<
        &kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion,
    >,
) -> Result<CredentialChange, AuthError> {
    let unacceptable = |reason: &str| Err(AuthError::UnacceptableCredential(reason.to_owned()));
    if user.is_empty() {
        return unacceptable("Username must not be empty");
    }
    let Some(mechanism) = ScramMechanism::from_code(code) else {
        return Err(AuthError::UnsupportedMechanism(
            "Unknown SCRAM mechanism".into(),
        ));
    };
    let Some(upsertion) = upsertion else {
        return Ok(CredentialChange::Delete(mechanism));
    };
    if upsertion.iterations < MIN_ITERATIONS as i32 {
        return unacceptable(&format!(
            "Too few iterations: at least {MIN_ITERATIONS} are needed"
        ));
    }
    if upsertion.iterations > MAX_ITERATIONS as i32 {
        return unacceptable(&format!(
            "Too many iterations: at most {MAX_ITERATIONS} are allowed"
        ));
    }
    if upsertion.salt.is_empty() || upsertion.salted_password.is_empty() {
        return unacceptable("Salt and salted password must not be empty");
    }
    let credential = ScramCredential::from_salted_password(
        mechanism,
        &upsertion.salt,
        upsertion.iterations as u32,
        &upsertion.salted_password,
    );
    Ok(CredentialChange::Upsert(mechanism, credential))
}
