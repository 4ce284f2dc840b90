//! CreateAcls, DescribeAcls and DeleteAcls over the authorizer's [`AclStore`], whose changes
//! go through the controller in a cluster. As in Kafka they need ALTER (create, delete) or
//! DESCRIBE (describe) on the cluster, and answer SECURITY_DISABLED when no authorizer is
//! configured.
//!
//! [`AclStore`]: crate::auth::acl::AclStore

use std::collections::BTreeMap;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Session;
use super::{allowed, str_bytes};
use crate::auth::acl::CLUSTER_NAME;
use crate::auth::{
    AclBinding, AclFilter, AuthError, Operation, PatternType, Permission, ResourceType,
};
use crate::broker::Broker;
use crate::error::BrokerError;

/// Why a request as a whole is refused, before looking at its entries.
fn refused(broker: &Broker, session: &Session, op: Operation) -> Option<BrokerError> {
    if !broker.authorizer.is_enabled() {
        return Some(AuthError::SecurityDisabled.into());
    }
    if !allowed(broker, session, op, ResourceType::Cluster, CLUSTER_NAME) {
        return Some(AuthError::ClusterDenied.into());
    }
    None
}

pub async fn create(
    broker: &Broker,
    session: &Session,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let failed = |err: &BrokerError| {
        AclCreationResult::default()
            .with_error_code(err.code())
            .with_error_message(err.message().map(str_bytes))
    };
    if let Some(err) = refused(broker, session, Operation::Alter) {
        return CreateAclsResponse::default()
            .with_results(request.creations.iter().map(|_| failed(&err)).collect());
    }
    let parsed: Vec<Result<AclBinding, AuthError>> =
        request.creations.iter().map(binding).collect();
    let valid: Vec<AclBinding> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let stored = broker.cluster.create_acls(&valid, None).await;
    let results = parsed
        .into_iter()
        .map(|p| match (p, &stored) {
            (Ok(_), Ok(())) => AclCreationResult::default(),
            (Ok(_), Err(err)) => failed(err),
            (Err(err), _) => failed(&err.into()),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn binding(c: &AclCreation) -> Result<AclBinding, AuthError> {
    let binding = AclBinding {
        resource_type: code(
            ResourceType::from_code(c.resource_type),
            "resource type",
            c.resource_type,
        )?,
        name: c.resource_name.to_string(),
        pattern_type: code(
            PatternType::from_code(c.resource_pattern_type),
            "pattern type",
            c.resource_pattern_type,
        )?,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: code(Operation::from_code(c.operation), "operation", c.operation)?,
        permission: code(
            Permission::from_code(c.permission_type),
            "permission type",
            c.permission_type,
        )?,
    };
    binding.validate()?;
    Ok(binding)
}

fn code<T>(value: Option<T>, what: &str, raw: i8) -> Result<T, AuthError> {
    value.ok_or_else(|| AuthError::InvalidAcl(format!("Unknown {what} {raw}")))
}

/// The fields every ACL filter has, in DescribeAcls and in each DeleteAcls filter.
struct FilterFields<'a> {
    resource_type: i8,
    name: &'a Option<StrBytes>,
    pattern_type: i8,
    principal: &'a Option<StrBytes>,
    host: &'a Option<StrBytes>,
    operation: i8,
    permission: i8,
}

fn filter(f: FilterFields<'_>) -> Result<AclFilter, AuthError> {
    Ok(AclFilter {
        resource_type: code(
            ResourceType::from_code(f.resource_type),
            "resource type",
            f.resource_type,
        )?,
        name: f.name.as_ref().map(|s| s.to_string()),
        pattern_type: code(
            PatternType::from_code(f.pattern_type),
            "pattern type",
            f.pattern_type,
        )?,
        principal: f.principal.as_ref().map(|s| s.to_string()),
        host: f.host.as_ref().map(|s| s.to_string()),
        operation: code(Operation::from_code(f.operation), "operation", f.operation)?,
        permission: code(
            Permission::from_code(f.permission),
            "permission type",
            f.permission,
        )?,
    })
}

pub fn describe(
    broker: &Broker,
    session: &Session,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let failed = |err: BrokerError| {
        DescribeAclsResponse::default()
            .with_error_code(err.code())
            .with_error_message(err.message().map(str_bytes))
    };
    if let Some(err) = refused(broker, session, Operation::Describe) {
        return failed(err);
    }
    let parsed = filter(FilterFields {
        resource_type: request.resource_type_filter,
        name: &request.resource_name_filter,
        pattern_type: request.pattern_type_filter,
        principal: &request.principal_filter,
        host: &request.host_filter,
        operation: request.operation,
        permission: request.permission_type,
    });
    let acls = match parsed {
        Ok(f) => broker.authorizer.acls.matching(&f),
        Err(err) => return failed(err.into()),
    };
    // One entry per resource pattern, as Kafka groups them.
    let mut resources: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for acl in acls {
        resources
            .entry((
                acl.resource_type.code(),
                acl.name.clone(),
                acl.pattern_type.code(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(acl.principal))
                    .with_host(str_bytes(acl.host))
                    .with_operation(acl.operation.code())
                    .with_permission_type(acl.permission.code()),
            );
    }
    let resources = resources
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(name))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

pub async fn delete(
    broker: &Broker,
    session: &Session,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let failed = |err: &BrokerError| {
        DeleteAclsFilterResult::default()
            .with_error_code(err.code())
            .with_error_message(err.message().map(str_bytes))
    };
    if let Some(err) = refused(broker, session, Operation::Alter) {
        return DeleteAclsResponse::default()
            .with_filter_results(request.filters.iter().map(|_| failed(&err)).collect());
    }
    let parsed: Vec<Result<AclFilter, AuthError>> = request
        .filters
        .iter()
        .map(|f| {
            filter(FilterFields {
                resource_type: f.resource_type_filter,
                name: &f.resource_name_filter,
                pattern_type: f.pattern_type_filter,
                principal: &f.principal_filter,
                host: &f.host_filter,
                operation: f.operation,
                permission: f.permission_type,
            })
        })
        .collect();
    let valid: Vec<AclFilter> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let removed = broker.cluster.delete_acls(&valid).await;
    let mut removed = match removed {
        Ok(removed) => removed.into_iter(),
        Err(err) => {
            let results = parsed.iter().map(|_| failed(&err)).collect();
            return DeleteAclsResponse::default().with_filter_results(results);
        }
    };
    let results = parsed
        .into_iter()
        .map(|p| match p {
            Err(err) => failed(&err.into()),
            Ok(_) => {
                let matching: Vec<AclBinding> = removed.next().unwrap_or_default();
                DeleteAclsFilterResult::default()
                    .with_matching_acls(matching.into_iter().map(matching_acl).collect())
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

fn matching_acl(acl: AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(acl.resource_type.code())
        .with_resource_name(str_bytes(acl.name))
        .with_pattern_type(acl.pattern_type.code())
        .with_principal(str_bytes(acl.principal))
        .with_host(str_bytes(acl.host))
        .with_operation(acl.operation.code())
        .with_permission_type(acl.permission.code())
}
