//! StreamsGroupDescribe (KIP-1071): a streams group's topology (as configured once every
//! topic exists, else as its members sent it), its members with their current and target
//! tasks, as Kafka's `StreamsGroup.asDescribedGroup` shows them, and from v1 on request the
//! topology description a member pushed ([`super::streams_topology`]). DESCRIBE on the
//! group; UNSUPPORTED_VERSION while the finalized `streams.version` is 0.

use kafka_protocol::messages::streams_group_describe_response as describe;
use kafka_protocol::messages::*;

use super::streams_group::{streams_enabled, unsupported};
use super::{allowed, authorized_operations, str_bytes, Session};
use crate::auth::{AuthError, Operation, ResourceType};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::group::streams::topology::{ConfiguredTopology, InternalTopic, TopicInfo, Topology};
use crate::group::streams::{DescribedDescription, StreamsGroupSummary, TaskSet, Tasks};

/// StreamsGroupDescribe v1's TopologyDescriptionStatus.
const DESCRIPTION_NOT_REQUESTED: i8 = 0;
const DESCRIPTION_NOT_STORED: i8 = 1;
const DESCRIPTION_AVAILABLE: i8 = 3;

fn describe_topic_info(t: &InternalTopic) -> describe::TopicInfo {
    describe::TopicInfo::default()
        .with_name(TopicName(str_bytes(t.name.clone())))
        .with_partitions(t.partitions)
        .with_replication_factor(t.replication_factor.unwrap_or(0))
        .with_topic_configs(
            t.configs
                .iter()
                .map(|(k, v)| {
                    describe::KeyValue::default()
                        .with_key(str_bytes(k.clone()))
                        .with_value(str_bytes(v.clone()))
                })
                .collect(),
        )
}

/// The topology as StreamsGroupDescribe shows it: configured when ready, else as sent.
fn describe_topology(
    topology: Option<&Topology>,
    configured: Option<&ConfiguredTopology>,
) -> Option<describe::Topology> {
    let sorted = |v: &[String]| {
        let mut v: Vec<String> = v.to_vec();
        v.sort();
        v.into_iter()
            .map(|n| TopicName(str_bytes(n)))
            .collect::<Vec<_>>()
    };
    let by_name = |mut v: Vec<describe::TopicInfo>| {
        v.sort_by(|a, b| a.name.0.cmp(&b.name.0));
        v
    };
    if let Some(c) = configured.filter(|c| c.is_ready()) {
        let subs = c.subtopologies.as_ref()?;
        let subtopologies = subs
            .iter()
            .map(|(id, s)| {
                describe::Subtopology::default()
                    .with_subtopology_id(str_bytes(id.clone()))
                    .with_source_topics(sorted(&s.source_topics))
                    .with_repartition_sink_topics(sorted(&s.repartition_sink_topics))
                    .with_repartition_source_topics(by_name(
                        s.repartition_source_topics
                            .iter()
                            .map(describe_topic_info)
                            .collect(),
                    ))
                    .with_state_changelog_topics(by_name(
                        s.state_changelog_topics
                            .iter()
                            .map(describe_topic_info)
                            .collect(),
                    ))
            })
            .collect();
        return Some(
            describe::Topology::default()
                .with_epoch(c.epoch)
                .with_subtopologies(Some(subtopologies)),
        );
    }
    let t = topology?;
    let info = |t: &TopicInfo| {
        describe_topic_info(&InternalTopic {
            name: t.name.clone(),
            partitions: t.partitions,
            replication_factor: (t.replication_factor > 0).then_some(t.replication_factor),
            configs: t.configs.clone(),
        })
    };
    let subtopologies = t
        .subtopologies
        .values()
        .map(|s| {
            describe::Subtopology::default()
                .with_subtopology_id(str_bytes(s.id.clone()))
                .with_source_topics(sorted(&s.source_topics))
                .with_repartition_sink_topics(sorted(&s.repartition_sink_topics))
                .with_repartition_source_topics(by_name(
                    s.repartition_source_topics.iter().map(info).collect(),
                ))
                .with_state_changelog_topics(by_name(
                    s.state_changelog_topics.iter().map(info).collect(),
                ))
        })
        .collect();
    Some(
        describe::Topology::default()
            .with_epoch(t.epoch)
            .with_subtopologies(Some(subtopologies)),
    )
}

fn describe_tasks(t: Tasks) -> describe::Assignment {
    let ids = |set: TaskSet| -> Vec<describe::TaskIds> {
        set.into_iter()
            .map(|(sub, ps)| {
                describe::TaskIds::default()
                    .with_subtopology_id(str_bytes(sub))
                    .with_partitions(ps.into_iter().collect())
            })
            .collect()
    };
    describe::Assignment::default()
        .with_active_tasks(ids(t.active))
        .with_standby_tasks(ids(t.standby))
        .with_warmup_tasks(ids(t.warmup))
}

fn described(summary: StreamsGroupSummary) -> describe::DescribedGroup {
    let (status, description) = match &summary.description {
        DescribedDescription::NotRequested => (DESCRIPTION_NOT_REQUESTED, None),
        DescribedDescription::NotStored => (DESCRIPTION_NOT_STORED, None),
        DescribedDescription::Available(d) => (
            DESCRIPTION_AVAILABLE,
            Some(super::streams_topology::described(d)),
        ),
    };
    let members = summary
        .members
        .into_iter()
        .map(|m| {
            describe::Member::default()
                .with_member_id(str_bytes(m.member_id))
                .with_member_epoch(m.member_epoch)
                .with_instance_id(m.instance_id.map(str_bytes))
                .with_rack_id(m.rack_id.map(str_bytes))
                .with_client_id(str_bytes(m.client_id))
                .with_client_host(str_bytes(m.client_host))
                .with_topology_epoch(m.topology_epoch)
                .with_process_id(str_bytes(m.process_id))
                .with_user_endpoint(m.user_endpoint.map(|e| {
                    describe::Endpoint::default()
                        .with_host(str_bytes(e.host))
                        .with_port(e.port)
                }))
                .with_client_tags(
                    m.client_tags
                        .into_iter()
                        .map(|(k, v)| {
                            describe::KeyValue::default()
                                .with_key(str_bytes(k))
                                .with_value(str_bytes(v))
                        })
                        .collect(),
                )
                .with_assignment(describe_tasks(m.assignment))
                .with_target_assignment(describe_tasks(m.target_assignment))
        })
        .collect();
    describe::DescribedGroup::default()
        .with_group_state(str_bytes(summary.state.name()))
        .with_group_epoch(summary.group_epoch)
        .with_assignment_epoch(summary.assignment_epoch)
        .with_topology(describe_topology(
            summary.topology.as_ref(),
            summary.configured.as_ref(),
        ))
        .with_members(members)
        .with_topology_description_status(status)
        .with_topology_description(description)
        .with_assignor_name(Some(str_bytes(crate::group::streams::assignor::STICKY)))
}

pub fn describe(
    broker: &Broker,
    session: &Session,
    req: StreamsGroupDescribeRequest,
) -> StreamsGroupDescribeResponse {
    if !streams_enabled(broker) {
        let err = unsupported();
        let groups = req
            .group_ids
            .into_iter()
            .map(|g| {
                describe::DescribedGroup::default()
                    .with_group_id(g)
                    .with_error_code(err.code())
            })
            .collect();
        return StreamsGroupDescribeResponse::default().with_groups(groups);
    }
    let groups = req
        .group_ids
        .into_iter()
        .map(|group_id| {
            let base = describe::DescribedGroup::default().with_group_id(group_id.clone());
            if !allowed(
                broker,
                session,
                Operation::Describe,
                ResourceType::Group,
                &group_id,
            ) {
                return base.with_error_code(BrokerError::from(AuthError::GroupDenied).code());
            }
            match broker
                .groups
                .streams_describe(&group_id, req.include_topology_description)
            {
                Ok(summary) => described(summary)
                    .with_group_id(group_id.clone())
                    .with_authorized_operations(authorized_operations(
                        broker,
                        session,
                        req.include_authorized_operations,
                        ResourceType::Group,
                        &group_id,
                    )),
                Err(err) => base
                    .with_error_code(err.code())
                    .with_error_message(err.message().map(str_bytes)),
            }
        })
        .collect();
    StreamsGroupDescribeResponse::default().with_groups(groups)
}
