//! DescribeClientQuotas and AlterClientQuotas (`kafka-configs --entity-type
//! users|clients|ips`): quotas set on every kind of entity, the filters that find them, the
//! refusals of bad entities, keys and values, and what an unauthorized principal gets.
//!
//! Named entities carry the run tag; the default entities and the ip are shared by the
//! whole Kafka, so their values are far above anything a test sends, and every case
//! removes what it set before the next version runs.

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use samsa_protocol_tests::client::{str_bytes, versions};
use samsa_protocol_tests::differential::Differential;

const EXACT: i8 = 0;
const DEFAULT: i8 = 1;
const SPECIFIED: i8 = 2;

/// An address no test connects from.
const IP: &str = "192.0.2.7";

/// (entity type, name; `None` for the default entity)
type Components<'a> = &'a [(&'a str, Option<&'a str>)];

fn entry(components: Components, ops: Vec<OpData>) -> EntryData {
    EntryData::default()
        .with_entity(
            components
                .iter()
                .map(|(kind, name)| {
                    EntityData::default()
                        .with_entity_type(str_bytes(kind))
                        .with_entity_name(name.map(str_bytes))
                })
                .collect(),
        )
        .with_ops(ops)
}

fn set(key: &str, value: f64) -> OpData {
    OpData::default().with_key(str_bytes(key)).with_value(value)
}

fn remove(key: &str) -> OpData {
    OpData::default().with_key(str_bytes(key)).with_remove(true)
}

fn alter(entries: Vec<EntryData>, validate_only: bool) -> AlterClientQuotasRequest {
    AlterClientQuotasRequest::default()
        .with_entries(entries)
        .with_validate_only(validate_only)
}

fn filter(components: &[(&str, i8, Option<&str>)], strict: bool) -> DescribeClientQuotasRequest {
    DescribeClientQuotasRequest::default()
        .with_components(
            components
                .iter()
                .map(|(kind, match_type, name)| {
                    ComponentData::default()
                        .with_entity_type(str_bytes(kind))
                        .with_match_type(*match_type)
                        .with_match(name.map(str_bytes))
                })
                .collect(),
        )
        .with_strict(strict)
}

/// An entity and the values set on it.
type Shape<'a> = (Vec<(&'a str, Option<&'a str>)>, Vec<(&'a str, f64)>);

/// (case, filter components (type, match type, name), strict)
type FilterCase<'a> = (&'a str, Vec<(&'a str, i8, Option<&'a str>)>, bool);

/// The quotas every version sets, then removes: one entity of each shape.
fn entities<'a>(user: &'a str, client: &'a str) -> Vec<Shape<'a>> {
    vec![
        (
            vec![("user", Some(user))],
            vec![
                ("producer_byte_rate", 1048576.0),
                ("consumer_byte_rate", 2097152.0),
            ],
        ),
        (
            vec![("user", Some(user)), ("client-id", Some(client))],
            vec![("request_percentage", 50.5)],
        ),
        (
            vec![("user", Some(user)), ("client-id", None)],
            vec![("controller_mutation_rate", 7.25)],
        ),
        (
            vec![("client-id", Some(client))],
            vec![("controller_mutation_rate", 10.5)],
        ),
        (vec![("user", None)], vec![("consumer_byte_rate", 1e12)]),
        (
            vec![("ip", Some(IP))],
            vec![("connection_creation_rate", 30.0)],
        ),
        (
            vec![("ip", None)],
            vec![("connection_creation_rate", 1000000.0)],
        ),
    ]
}

#[test]
fn client_quotas() {
    let mut d = Differential::start("client_quotas");
    for v in versions(ApiKey::AlterClientQuotas) {
        let user = d.topic(&format!("alice-v{v}"));
        let client = d.topic(&format!("app-v{v}"));
        let shapes = entities(&user, &client);
        let sets: Vec<EntryData> = shapes
            .iter()
            .map(|(components, values)| {
                entry(components, values.iter().map(|(k, x)| set(k, *x)).collect())
            })
            .collect();
        let removals: Vec<EntryData> = shapes
            .iter()
            .map(|(components, values)| {
                entry(components, values.iter().map(|(k, _)| remove(k)).collect())
            })
            .collect();

        d.compare_part(
            "validate-only",
            v,
            |_| alter(sets.clone(), true),
            sort_altered,
        );
        d.compare_settled("nothing-set", 1, |_| filter(&[], false), sort_described);
        d.compare_part("set", v, |_| alter(sets.clone(), false), sort_altered);
        for dv in versions(ApiKey::DescribeClientQuotas) {
            let u = Some(user.as_str());
            let c = Some(client.as_str());
            d.compare_settled("all", dv, |_| filter(&[], false), sort_described);
            let cases: Vec<FilterCase> = vec![
                ("all-strict", vec![], true),
                ("user", vec![("user", EXACT, u)], false),
                ("user-strict", vec![("user", EXACT, u)], true),
                (
                    "user-and-any-client",
                    vec![("user", EXACT, u), ("client-id", SPECIFIED, None)],
                    true,
                ),
                (
                    "user-and-default-client",
                    vec![("user", EXACT, u), ("client-id", DEFAULT, None)],
                    false,
                ),
                ("default-user", vec![("user", DEFAULT, None)], false),
                ("any-user-strict", vec![("user", SPECIFIED, None)], true),
                ("client", vec![("client-id", EXACT, c)], false),
                ("client-strict", vec![("client-id", EXACT, c)], true),
                ("any-client", vec![("client-id", SPECIFIED, None)], false),
                (
                    "unknown-user",
                    vec![("user", EXACT, Some("nobody-here"))],
                    false,
                ),
                ("ip", vec![("ip", EXACT, Some(IP))], false),
                ("default-ip", vec![("ip", DEFAULT, None)], false),
                ("any-ip", vec![("ip", SPECIFIED, None)], true),
                // Refused filters: the whole request, without entries.
                ("empty-type", vec![("", EXACT, u)], false),
                ("unknown-type", vec![("group", EXACT, u)], false),
                (
                    "type-twice",
                    vec![("user", SPECIFIED, None), ("user", EXACT, u)],
                    false,
                ),
                ("exact-without-name", vec![("user", EXACT, None)], false),
                ("default-with-name", vec![("user", DEFAULT, u)], false),
                (
                    "specified-with-name",
                    vec![("client-id", SPECIFIED, c)],
                    false,
                ),
                ("unknown-match-type", vec![("user", 9, None)], false),
                (
                    "ip-with-user",
                    vec![("ip", SPECIFIED, None), ("user", SPECIFIED, None)],
                    false,
                ),
            ];
            for (case, components, strict) in &cases {
                d.compare_part(case, dv, |_| filter(components, *strict), sort_described);
            }
        }
        // Setting what is set changes nothing; removing twice is no error.
        d.compare_part("set-again", v, |_| alter(sets.clone(), false), sort_altered);
        d.compare_part(
            "remove",
            v,
            |_| alter(removals.clone(), false),
            sort_altered,
        );
        d.compare_settled("all-removed", 1, |_| filter(&[], false), sort_described);
        d.compare_part(
            "remove-again",
            v,
            |_| alter(removals.clone(), false),
            sort_altered,
        );
        refusals(&mut d, v);
    }
    d.finish();
}

/// Every way an entry is refused, one entity each (Kafka answers per distinct entity), in
/// one request: the valid entry beside them goes through.
fn refusals(d: &mut Differential, v: i16) {
    let names: Vec<String> = (0..16).map(|i| d.topic(&format!("bad{i}-v{v}"))).collect();
    let n = |i: usize| Some(names[i].as_str());
    let good = d.topic(&format!("good-v{v}"));
    let request = vec![
        entry(&[], vec![set("producer_byte_rate", 1.0)]),
        entry(&[("group", n(0))], vec![set("producer_byte_rate", 1.0)]),
        entry(&[("user", Some(""))], vec![set("producer_byte_rate", 1.0)]),
        entry(
            &[("ip", Some(IP)), ("user", n(1))],
            vec![set("connection_creation_rate", 1.0)],
        ),
        entry(&[("user", n(2))], vec![set("no_such_quota", 1.0)]),
        entry(
            &[("user", n(3))],
            vec![set("connection_creation_rate", 1.0)],
        ),
        entry(
            &[("ip", Some("192.0.2.8"))],
            vec![set("producer_byte_rate", 1.0)],
        ),
        entry(&[("user", n(4))], vec![set("producer_byte_rate", 0.0)]),
        entry(&[("user", n(5))], vec![set("request_percentage", -3.0)]),
        entry(&[("user", n(6))], vec![set("consumer_byte_rate", 1.5)]),
        entry(&[("user", n(7))], vec![set("producer_byte_rate", 1e19)]),
        entry(
            &[("ip", Some("192.0.2.9"))],
            vec![set("connection_creation_rate", 2.5)],
        ),
        entry(
            &[("ip", Some("192.0.2.10"))],
            vec![set("connection_creation_rate", 3e9)],
        ),
        entry(
            &[("client-id", n(8))],
            vec![set("controller_mutation_rate", f64::INFINITY)],
        ),
        // A key twice in one entry, and one entity in two entries.
        entry(
            &[("user", n(9))],
            vec![set("producer_byte_rate", 1.0), remove("producer_byte_rate")],
        ),
        entry(&[("user", n(10))], vec![remove("producer_byte_rate")]),
        entry(&[("user", n(10))], vec![remove("consumer_byte_rate")]),
        // An ip entity may be a host name that resolves, not one that does not.
        entry(
            &[("ip", Some("no-such-host.invalid"))],
            vec![set("connection_creation_rate", 1.0)],
        ),
        entry(
            &[("ip", Some("localhost"))],
            vec![set("connection_creation_rate", 123.0)],
        ),
        // Removing a key nobody knows is no error.
        entry(&[("client-id", n(11))], vec![remove("no_such_quota")]),
        entry(
            &[("user", Some(good.as_str()))],
            vec![set("producer_byte_rate", 4096.0)],
        ),
    ];
    d.compare_part(
        "refusals",
        v,
        |_| alter(request.clone(), false),
        sort_altered,
    );
    let g = Some(good.as_str());
    d.compare_settled("refusals-left", 1, |_| filter(&[], false), sort_described);
    d.compare_part(
        "good-removed",
        v,
        |_| {
            alter(
                vec![
                    entry(&[("user", g)], vec![remove("producer_byte_rate")]),
                    entry(
                        &[("ip", Some("localhost"))],
                        vec![remove("connection_creation_rate")],
                    ),
                ],
                false,
            )
        },
        sort_altered,
    );
    d.compare_settled(
        "refusals-all-removed",
        1,
        |_| filter(&[], false),
        sort_described,
    );
}

/// Both take the quota APIs as altering and describing the cluster's configs.
#[test]
fn client_quotas_unauthorized() {
    let mut d = Differential::start_sasl("client_quotas_unauthorized");
    d.use_sasl_listeners();
    d.login("alice");
    let user = d.topic("bob");
    for v in versions(ApiKey::AlterClientQuotas) {
        d.compare_part(
            "alter",
            v,
            |_| {
                alter(
                    vec![
                        entry(
                            &[("user", Some(user.as_str()))],
                            vec![set("producer_byte_rate", 1.0)],
                        ),
                        entry(&[], vec![]),
                    ],
                    false,
                )
            },
            sort_altered,
        );
    }
    for v in versions(ApiKey::DescribeClientQuotas) {
        d.compare("describe", v, |_| filter(&[], false));
    }
    d.finish();
}

// Kafka keeps entities and their components in hash maps: both answers are compared sorted.

fn sort_described(r: &mut DescribeClientQuotasResponse) {
    if let Some(entries) = &mut r.entries {
        for entry in entries.iter_mut() {
            entry.entity.sort_by_key(|e| e.entity_type.to_string());
            entry.values.sort_by_key(|x| x.key.to_string());
        }
        entries
            .sort_by_key(|e| entity_key(e.entity.iter().map(|c| (&c.entity_type, &c.entity_name))));
    }
}

fn sort_altered(r: &mut AlterClientQuotasResponse) {
    for entry in &mut r.entries {
        entry.entity.sort_by_key(|e| e.entity_type.to_string());
    }
    r.entries
        .sort_by_key(|e| entity_key(e.entity.iter().map(|c| (&c.entity_type, &c.entity_name))));
}

/// An entity's (type, name) components, as a sort key.
fn entity_key<'a>(
    components: impl Iterator<Item = (&'a StrBytes, &'a Option<StrBytes>)>,
) -> Vec<(String, Option<String>)> {
    components
        .map(|(kind, name)| (kind.to_string(), name.as_deref().map(str::to_owned)))
        .collect()
}
