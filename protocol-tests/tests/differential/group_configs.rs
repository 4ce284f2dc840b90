//! Group configs (ConfigResource type 32): DescribeConfigs of a group with and without
//! overrides, IncrementalAlterConfigs' operations, good and bad values and validate_only,
//! legacy AlterConfigs, and ListConfigResources listing the configured groups. The
//! reference Kafka runs with share.version 2; samsa is brought to it first.

use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, IncrementalAlterConfigsRequest, ListConfigResourcesRequest,
    ListConfigResourcesResponse,
};
use samsa_protocol_tests::differential::Differential;

use crate::alter_configs::{incremental as alter, legacy};
use crate::{ends, share_groups_on};

const GROUP: i8 = 32;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

fn describe(
    group: &str,
    keys: Option<&[&str]>,
    synonyms: bool,
    docs: bool,
) -> DescribeConfigsRequest {
    crate::configs::describe(GROUP, group, keys, synonyms, docs)
}

fn incremental(
    group: &str,
    changes: &[(i8, &str, Option<&str>)],
    validate_only: bool,
) -> IncrementalAlterConfigsRequest {
    alter(GROUP, group, changes, validate_only)
}

fn set(group: &str, key: &str, value: &str) -> IncrementalAlterConfigsRequest {
    incremental(group, &[(SET, key, Some(value))], false)
}

#[test]
fn group_configs() {
    let mut d = Differential::start("group_configs");
    share_groups_on(&mut d);
    let shown = ["share.auto.offset.reset", "share.record.lock.duration.ms"];
    for v in ends(ApiKey::DescribeConfigs) {
        let group = d.topic(&format!("d{v}"));
        let g = group.as_str();
        d.compare("no-overrides", v, |_| describe(g, None, false, false));
        d.compare("no-overrides-synonyms", v, |_| {
            describe(g, Some(&shown), true, false)
        });
        d.compare("empty-name", v, |_| describe("", None, false, false));
        d.compare("unknown-key", v, |_| {
            describe(g, Some(&["no.such.config"]), false, false)
        });
        d.compare("set", 1, |_| set(g, "share.auto.offset.reset", "earliest"));
        d.compare_settled("overridden", v, |_| describe(g, None, true, false), |_| {});
        if v >= 3 {
            d.compare("documentation", v, |_| {
                describe(g, Some(&shown), false, true)
            });
        }
    }
    for v in ends(ApiKey::IncrementalAlterConfigs) {
        let group = d.topic(&format!("i{v}"));
        let g = group.as_str();
        d.compare("set", v, |_| {
            set(g, "share.auto.offset.reset", "by_duration:PT1H")
        });
        d.compare("set-two", v, |_| {
            let changes = [
                (SET, "share.delivery.count.limit", Some("3")),
                (SET, "share.isolation.level", Some("read_committed")),
            ];
            incremental(g, &changes, false)
        });
        d.compare_settled("after-set", 4, |_| describe(g, None, true, false), |_| {});
        d.compare("delete", v, |_| {
            incremental(g, &[(DELETE, "share.delivery.count.limit", None)], false)
        });
        d.compare("delete-unset", v, |_| {
            incremental(g, &[(DELETE, "consumer.session.timeout.ms", None)], false)
        });
        d.compare("validate-only", v, |_| {
            incremental(
                g,
                &[(SET, "share.record.lock.duration.ms", Some("20000"))],
                true,
            )
        });
        d.compare_settled(
            "after-delete",
            4,
            |_| describe(g, None, true, false),
            |_| {},
        );
        d.compare("append", v, |_| {
            incremental(
                g,
                &[(APPEND, "share.delivery.count.limit", Some("3"))],
                false,
            )
        });
        d.compare("subtract-list", v, |_| {
            incremental(
                g,
                &[(SUBTRACT, "streams.rack.aware.assignment.tags", Some("a"))],
                false,
            )
        });
        d.compare("null-value", v, |_| {
            incremental(g, &[(SET, "share.delivery.count.limit", None)], false)
        });
        d.compare("empty-name", v, |_| {
            set("", "share.delivery.count.limit", "3")
        });
        for (case, key, value) in [
            ("unknown-key", "no.such.config", "1"),
            ("not-a-number", "share.session.timeout.ms", "abc"),
            ("below-minimum", "share.delivery.count.limit", "1"),
            ("out-of-range", "share.delivery.count.limit", "11"),
            ("session-out-of-range", "share.session.timeout.ms", "10000"),
            ("bad-reset", "share.auto.offset.reset", "EARLIEST"),
            (
                "negative-duration",
                "share.auto.offset.reset",
                "by_duration:-PT1H",
            ),
            ("bad-isolation", "share.isolation.level", "foo"),
            ("bad-boolean", "share.renew.acknowledge.enable", "maybe"),
            ("too-many-standbys", "streams.num.standby.replicas", "3"),
            ("unknown-assignor", "streams.assignor.name", "foo"),
            ("dlq-internal", "errors.deadletterqueue.topic.name", "__x"),
            ("consumer-session", "consumer.session.timeout.ms", "50000"),
            ("streams-heartbeat", "streams.heartbeat.interval.ms", "6000"),
        ] {
            d.compare(case, v, |_| {
                incremental(g, &[(SET, key, Some(value))], true)
            });
        }
    }
    for v in ends(ApiKey::AlterConfigs) {
        let group = d.topic(&format!("a{v}"));
        let g = group.as_str();
        let configs = [("share.delivery.count.limit", "4")];
        d.compare("legacy", v, |_| legacy(GROUP, g, &configs, false));
    }
    // Of the groups with configs, only this test's are compared: Kafka is shared.
    let own_name = d.topic("");
    let run = own_name.rsplit('-').next().unwrap_or_default().to_owned();
    let own = |r: &mut ListConfigResourcesResponse| {
        r.config_resources.retain(|c| {
            c.resource_type == GROUP && c.resource_name.as_str().ends_with(&format!("-{run}"))
        });
        r.config_resources
            .sort_by(|a, b| a.resource_name.cmp(&b.resource_name));
    };
    let list =
        |types: &[i8]| ListConfigResourcesRequest::default().with_resource_types(types.to_vec());
    d.compare_settled("listed", 1, |_| list(&[GROUP]), own);
    d.compare_settled("listed-among-all", 1, |_| list(&[]), own);
    d.finish();
}
