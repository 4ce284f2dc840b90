//! The delegation token APIs (KIP-48): CreateDelegationToken, RenewDelegationToken,
//! ExpireDelegationToken and DescribeDelegationToken, answered as a Kafka 4.4 broker
//! formatted with its defaults answers them. Such a broker has no
//! `delegation.token.secret.key`, so tokens are disabled: a request on a connection that
//! may ask for tokens (authenticated by SASL) gets DELEGATION_TOKEN_AUTH_DISABLED; any other
//! connection gets DELEGATION_TOKEN_REQUEST_NOT_ALLOWED first, as Kafka checks that first.
//! samsa has no secret key setting, so this is every answer it gives.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    CreateDelegationTokenRequest, CreateDelegationTokenResponse, DescribeDelegationTokenRequest,
    DescribeDelegationTokenResponse, ExpireDelegationTokenRequest, ExpireDelegationTokenResponse,
    RenewDelegationTokenRequest, RenewDelegationTokenResponse,
};

use super::{str_bytes, Session};

/// Kafka allows token requests only on connections authenticated by SASL (and not by a
/// token, which samsa never issues).
fn refusal(session: &Session) -> i16 {
    if may_ask_for_tokens(session) {
        ResponseError::DelegationTokenAuthDisabled.code()
    } else {
        ResponseError::DelegationTokenRequestNotAllowed.code()
    }
}

fn may_ask_for_tokens(session: &Session) -> bool {
    session.listener.protocol.uses_sasl()
}

/// The timestamps of a refusal: Kafka's broker refuses a connection that may not ask with
/// -1 (CreateDelegationToken from v3, where the requester is named, and Renew/Expire at every
/// version), while its controller's "disabled" leaves them 0.
fn refused_timestamp(session: &Session, applies: bool) -> i64 {
    if applies && !may_ask_for_tokens(session) {
        -1
    } else {
        0
    }
}

/// v3 names the token's requester besides its owner (KIP-373).
const FIRST_VERSION_WITH_REQUESTER: i16 = 3;

pub fn create(
    session: &Session,
    request: &CreateDelegationTokenRequest,
    version: i16,
) -> CreateDelegationTokenResponse {
    let at = refused_timestamp(session, version >= FIRST_VERSION_WITH_REQUESTER);
    let requester = session.principal.as_str();
    let (requester_type, requester_name) = requester.split_once(':').unwrap_or(("User", requester));
    // Kafka names the token's owner in its refusal: the one asked for (v3), or the
    // requester.
    let (owner_type, owner_name) =
        match (&request.owner_principal_type, &request.owner_principal_name) {
            (Some(t), Some(n)) if !n.is_empty() => (t.to_string(), n.to_string()),
            _ => (requester_type.to_string(), requester_name.to_string()),
        };
    CreateDelegationTokenResponse::default()
        .with_error_code(refusal(session))
        .with_principal_type(str_bytes(owner_type))
        .with_principal_name(str_bytes(owner_name))
        .with_token_requester_principal_type(str_bytes(requester_type))
        .with_token_requester_principal_name(str_bytes(requester_name))
        .with_issue_timestamp_ms(at)
        .with_expiry_timestamp_ms(at)
        .with_max_timestamp_ms(at)
}

pub fn renew(
    session: &Session,
    _request: &RenewDelegationTokenRequest,
) -> RenewDelegationTokenResponse {
    RenewDelegationTokenResponse::default()
        .with_error_code(refusal(session))
        .with_expiry_timestamp_ms(refused_timestamp(session, true))
}

pub fn expire(
    session: &Session,
    _request: &ExpireDelegationTokenRequest,
) -> ExpireDelegationTokenResponse {
    ExpireDelegationTokenResponse::default()
        .with_error_code(refusal(session))
        .with_expiry_timestamp_ms(refused_timestamp(session, true))
}

pub fn describe(
    session: &Session,
    _request: &DescribeDelegationTokenRequest,
) -> DescribeDelegationTokenResponse {
    DescribeDelegationTokenResponse::default().with_error_code(refusal(session))
}
