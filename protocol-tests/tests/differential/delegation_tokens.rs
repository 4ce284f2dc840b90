//! The delegation token APIs (KIP-48) against a Kafka 4.4 formatted with its defaults, which
//! has no token secret key: refused on a plaintext connection, disabled on a SASL one.

use kafka_protocol::messages::create_delegation_token_request::CreatableRenewers;
use kafka_protocol::messages::describe_delegation_token_request::DescribeDelegationTokenOwner;
use kafka_protocol::messages::{
    ApiKey, CreateDelegationTokenRequest, DescribeDelegationTokenRequest,
    ExpireDelegationTokenRequest, RenewDelegationTokenRequest,
};
use samsa_protocol_tests::client::str_bytes;
use samsa_protocol_tests::differential::Differential;

use crate::versions;

fn create(owner: Option<&str>) -> CreateDelegationTokenRequest {
    CreateDelegationTokenRequest::default()
        .with_owner_principal_type(owner.map(|_| str_bytes("User")))
        .with_owner_principal_name(owner.map(str_bytes))
        .with_renewers(vec![CreatableRenewers::default()
            .with_principal_type(str_bytes("User"))
            .with_principal_name(str_bytes("bob"))])
        .with_max_lifetime_ms(-1)
}

fn every_token_api(d: &mut Differential) {
    for v in versions(ApiKey::CreateDelegationToken) {
        d.compare("create", v, |_| create(None));
        if v >= 3 {
            d.compare("create-for-another-owner", v, |_| create(Some("carol")));
        }
        d.compare("create-group-renewer", v, |_| {
            let mut request = create(None);
            request.renewers[0].principal_type = str_bytes("Group");
            request
        });
    }
    for v in versions(ApiKey::RenewDelegationToken) {
        d.compare("renew", v, |_| {
            RenewDelegationTokenRequest::default()
                .with_hmac(bytes::Bytes::from_static(b"not a token"))
                .with_renew_period_ms(-1)
        });
    }
    for v in versions(ApiKey::ExpireDelegationToken) {
        d.compare("expire", v, |_| {
            ExpireDelegationTokenRequest::default()
                .with_hmac(bytes::Bytes::from_static(b"not a token"))
                .with_expiry_time_period_ms(-1)
        });
    }
    for v in versions(ApiKey::DescribeDelegationToken) {
        d.compare("describe-all", v, |_| {
            DescribeDelegationTokenRequest::default()
        });
        d.compare("describe-owner", v, |_| {
            DescribeDelegationTokenRequest::default().with_owners(Some(vec![
                DescribeDelegationTokenOwner::default()
                    .with_principal_type(str_bytes("User"))
                    .with_principal_name(str_bytes("alice")),
            ]))
        });
    }
}

#[test]
fn delegation_tokens_on_plaintext() {
    let mut d = Differential::start("delegation_tokens_plaintext");
    every_token_api(&mut d);
    d.finish();
}

#[test]
fn delegation_tokens_on_sasl() {
    let mut d = Differential::start_sasl("delegation_tokens_sasl");
    d.use_sasl_listeners();
    d.login("alice");
    every_token_api(&mut d);
    d.finish();
}
