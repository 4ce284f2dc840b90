//! Kafka's rules for AlterClientQuotas (`ClientQuotaControlManager.alterClientQuotas`): which
//! entity types combine, which keys go with them, which values they take, and the texts
//! of its INVALID_REQUEST answers. Run by the proposer: the rules do not depend on the
//! current quotas, so what is proposed is already valid and applying stays trivial.

use std::collections::BTreeMap;

use super::{
    EntityName, QuotaChange, QuotaEntity, CLIENT_ID, CONNECTION_CREATION_RATE, CONSUMER_BYTE_RATE,
    CONTROLLER_MUTATION_RATE, IP, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE, USER,
};

/// An entity as a request names it: entity type to name (`None` is the default entity).
/// Kafka keys its answers by this map, so two entries naming the same map are one entity.
pub type RequestEntity = BTreeMap<String, Option<String>>;

/// One operation of a request entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub key: String,
    /// `None` removes the key (the request's `remove`, whose value is then ignored).
    pub value: Option<f64>,
}

/// One entry of an AlterClientQuotas request.
#[derive(Debug, Clone, PartialEq)]
pub struct Alteration {
    pub entity: RequestEntity,
    pub ops: Vec<Op>,
}

/// The answer for one entity: `None`, or the INVALID_REQUEST message that refused it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlterationResult {
    pub entity: RequestEntity,
    pub error: Option<String>,
}

/// What an AlterClientQuotas does: the changes to commit together, and one result per
/// distinct entity, in the order the request first names them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<QuotaChange>,
    pub results: Vec<AlterationResult>,
}

/// The value types of Kafka's quota configs (`QuotaConfig`).
#[derive(Clone, Copy)]
enum ValueType {
    Long,
    Int,
    Double,
}

/// The keys an entity type takes, with their value types.
type Keys = &'static [(&'static str, ValueType)];

/// Keys a user or client-id entity takes.
const USER_AND_CLIENT_KEYS: Keys = &[
    (PRODUCER_BYTE_RATE, ValueType::Long),
    (CONSUMER_BYTE_RATE, ValueType::Long),
    (REQUEST_PERCENTAGE, ValueType::Double),
    (CONTROLLER_MUTATION_RATE, ValueType::Double),
];

/// Keys an ip entity takes.
const IP_KEYS: Keys = &[(CONNECTION_CREATION_RATE, ValueType::Int)];

/// Checks every entry as Kafka's controller does. `resolvable` says whether an ip entity's
/// name is an address or a host name that resolves (Kafka's `InetAddress.getByName`); the
/// caller looks host names up, so that this stays free of I/O.
///
/// As in Kafka, an entity named twice is answered once, with "Ignoring duplicate entity",
/// although the changes of its first entry still go through; a key named twice in one entry
/// refuses the entry with the same words, since Kafka's second check overwrites its first.
pub fn plan(alterations: &[Alteration], resolvable: &dyn Fn(&str) -> bool) -> Plan {
    let mut plan = Plan::default();
    for alteration in alterations {
        let entity = &alteration.entity;
        let mut ops: BTreeMap<&str, Option<f64>> = BTreeMap::new();
        let mut duplicate_key = false;
        for op in &alteration.ops {
            if ops.contains_key(op.key.as_str()) {
                duplicate_key = true;
            } else {
                ops.insert(&op.key, op.value);
            }
        }
        let seen = plan.results.iter().position(|r| &r.entity == entity);
        let outcome = if seen.is_some() || duplicate_key {
            Err(format!(
                "Ignoring duplicate entity {}",
                kafka_string(entity)
            ))
        } else {
            validate(entity, &ops, resolvable)
        };
        let error = match outcome {
            Ok((quota_entity, changes)) => {
                plan.changes
                    .extend(changes.into_iter().map(|(key, value)| QuotaChange {
                        entity: quota_entity.clone(),
                        key: key.to_owned(),
                        value,
                    }));
                None
            }
            Err(message) => Some(message),
        };
        match seen {
            Some(i) => plan.results[i].error = error,
            None => plan.results.push(AlterationResult {
                entity: entity.clone(),
                error,
            }),
        }
    }
    plan
}

type Changes<'a> = Vec<(&'a str, Option<f64>)>;

fn validate<'a>(
    entity: &RequestEntity,
    ops: &BTreeMap<&'a str, Option<f64>>,
    resolvable: &dyn Fn(&str) -> bool,
) -> Result<(QuotaEntity, Changes<'a>), String> {
    let (quota_entity, keys) = entity_and_keys(entity, resolvable)?;
    let mut changes = Vec::with_capacity(ops.len());
    for (&key, &value) in ops {
        if let Some(value) = value {
            check_value(keys, key, value)?;
        }
        changes.push((key, value));
    }
    Ok((quota_entity, changes))
}

/// Kafka's `validateEntity` then `configKeysForEntityType`.
fn entity_and_keys(
    entity: &RequestEntity,
    resolvable: &dyn Fn(&str) -> bool,
) -> Result<(QuotaEntity, Keys), String> {
    if entity.is_empty() {
        return Err("Invalid empty client quota entity".into());
    }
    let mut quota_entity = QuotaEntity::default();
    for (kind, name) in entity {
        let slot = match kind.as_str() {
            USER => &mut quota_entity.user,
            CLIENT_ID => &mut quota_entity.client_id,
            IP => &mut quota_entity.ip,
            other => return Err(format!("Unhandled client quota entity type: {other}")),
        };
        if name.as_deref() == Some("") {
            return Err(format!("Empty {kind} not supported"));
        }
        *slot = Some(EntityName::from_wire(name.as_deref()));
    }
    match &quota_entity {
        QuotaEntity {
            ip: Some(_),
            user,
            client_id,
        } if user.is_some() || client_id.is_some() => {
            // Kafka's text, its missing space included.
            Err(
                "Invalid quota entity combination, IP entity shouldnot be combined with User \
                 or ClientId"
                    .into(),
            )
        }
        QuotaEntity {
            ip: Some(EntityName::Named(ip)),
            ..
        } if !resolvable(ip) => Err(format!("{ip} is not a valid IP or resolvable host.")),
        QuotaEntity { ip: Some(_), .. } => Ok((quota_entity, IP_KEYS)),
        _ => Ok((quota_entity, USER_AND_CLIENT_KEYS)),
    }
}

/// Kafka's `validateQuotaKeyValue`.
fn check_value(keys: Keys, key: &str, value: f64) -> Result<(), String> {
    let Some(&(_, value_type)) = keys.iter().find(|(k, _)| *k == key) else {
        return Err(format!("Invalid configuration key {key}"));
    };
    if !value.is_finite() {
        return Err(format!("Quota {key} must be a finite number"));
    }
    if value <= 0.0 {
        return Err(format!("Quota {key} must be greater than 0"));
    }
    let (max, name) = match value_type {
        ValueType::Double => return Ok(()),
        ValueType::Int => (i32::MAX as f64, "an INT"),
        ValueType::Long => (i64::MAX as f64, "a LONG"),
    };
    if value > max {
        return Err(format!("Proposed value for {key} is too large for {name}."));
    }
    if (value % 1.0).abs() > 1e-6 {
        return Err(format!("{key} cannot be a fractional value."));
    }
    Ok(())
}

/// Java's `ClientQuotaEntity.toString()`, as Kafka's messages quote an entity.
fn kafka_string(entity: &RequestEntity) -> String {
    let entries: Vec<String> = entity
        .iter()
        .map(|(kind, name)| format!("{kind}={}", name.as_deref().unwrap_or("null")))
        .collect();
    format!("ClientQuotaEntity(entries={{{}}})", entries.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entity's components: (entity type, name).
    type Components<'a> = &'a [(&'a str, Option<&'a str>)];

    fn entity(components: Components) -> RequestEntity {
        components
            .iter()
            .map(|(k, n)| (k.to_string(), n.map(str::to_string)))
            .collect()
    }

    fn set(key: &str, value: f64) -> Op {
        Op {
            key: key.into(),
            value: Some(value),
        }
    }

    fn remove(key: &str) -> Op {
        Op {
            key: key.into(),
            value: None,
        }
    }

    fn one(components: Components, ops: Vec<Op>) -> Plan {
        let alteration = Alteration {
            entity: entity(components),
            ops,
        };
        plan(&[alteration], &|host| host != "no.such.host")
    }

    fn error_of(components: Components, ops: Vec<Op>) -> Option<String> {
        let planned = one(components, ops);
        assert_eq!(planned.results.len(), 1);
        if planned.results[0].error.is_some() {
            assert!(
                planned.changes.is_empty(),
                "a refused entity changes nothing"
            );
        }
        planned.results[0].error.clone()
    }

    #[test]
    fn valid_entries_become_changes() {
        let planned = one(
            &[("user", Some("alice")), ("client-id", None)],
            vec![set(PRODUCER_BYTE_RATE, 1024.0), remove(REQUEST_PERCENTAGE)],
        );
        assert_eq!(planned.results[0].error, None);
        let target = QuotaEntity::user_client_id(EntityName::named("alice"), EntityName::Default);
        assert_eq!(
            planned.changes,
            [
                QuotaChange {
                    entity: target.clone(),
                    key: PRODUCER_BYTE_RATE.into(),
                    value: Some(1024.0)
                },
                QuotaChange {
                    entity: target,
                    key: REQUEST_PERCENTAGE.into(),
                    value: None
                },
            ]
        );
        // Doubles take fractions; removing an unknown key is no error, as in Kafka.
        assert_eq!(
            error_of(
                &[("client-id", Some("app"))],
                vec![set(REQUEST_PERCENTAGE, 12.5)]
            ),
            None
        );
        assert_eq!(
            error_of(&[("user", None)], vec![remove("no_such_key")]),
            None
        );
        assert_eq!(
            error_of(
                &[("ip", Some("10.1.2.3"))],
                vec![set(CONNECTION_CREATION_RATE, 10.0)]
            ),
            None
        );
        assert_eq!(
            error_of(&[("ip", None)], vec![set(CONNECTION_CREATION_RATE, 10.0)]),
            None
        );
    }

    #[test]
    fn entities_are_refused_in_kafkas_words() {
        let rate = || vec![set(PRODUCER_BYTE_RATE, 10.0)];
        let cases: &[(Components, &str)] = &[
            (&[], "Invalid empty client quota entity"),
            (
                &[("group", Some("g"))],
                "Unhandled client quota entity type: group",
            ),
            (&[("user", Some(""))], "Empty user not supported"),
            (
                &[("ip", Some("10.0.0.1")), ("user", Some("alice"))],
                "Invalid quota entity combination, IP entity shouldnot be combined with User or \
                 ClientId",
            ),
            (
                &[("ip", Some("no.such.host"))],
                "no.such.host is not a valid IP or resolvable host.",
            ),
        ];
        for (components, message) in cases {
            assert_eq!(
                error_of(components, rate()).as_deref(),
                Some(*message),
                "{components:?}"
            );
        }
    }

    #[test]
    fn keys_and_values_are_checked_by_entity_type() {
        let user = &[("user", Some("alice"))][..];
        let ip = &[("ip", Some("10.0.0.1"))][..];
        let cases: Vec<(Components, &str, f64, &str)> = vec![
            (
                user,
                CONNECTION_CREATION_RATE,
                5.0,
                "Invalid configuration key connection_creation_rate",
            ),
            (
                ip,
                PRODUCER_BYTE_RATE,
                5.0,
                "Invalid configuration key producer_byte_rate",
            ),
            (
                user,
                "no_such_key",
                5.0,
                "Invalid configuration key no_such_key",
            ),
            (
                user,
                PRODUCER_BYTE_RATE,
                0.0,
                "Quota producer_byte_rate must be greater than 0",
            ),
            (
                user,
                REQUEST_PERCENTAGE,
                -1.0,
                "Quota request_percentage must be greater than 0",
            ),
            (
                user,
                CONSUMER_BYTE_RATE,
                f64::INFINITY,
                "Quota consumer_byte_rate must be a finite number",
            ),
            (
                user,
                CONSUMER_BYTE_RATE,
                f64::NAN,
                "Quota consumer_byte_rate must be a finite number",
            ),
            (
                user,
                PRODUCER_BYTE_RATE,
                1.5,
                "producer_byte_rate cannot be a fractional value.",
            ),
            (
                user,
                PRODUCER_BYTE_RATE,
                1e19,
                "Proposed value for producer_byte_rate is too large for a LONG.",
            ),
            (
                ip,
                CONNECTION_CREATION_RATE,
                2.5,
                "connection_creation_rate cannot be a fractional value.",
            ),
            (
                ip,
                CONNECTION_CREATION_RATE,
                3e9,
                "Proposed value for connection_creation_rate is too large for an INT.",
            ),
        ];
        for (components, key, value, message) in cases {
            assert_eq!(
                error_of(components, vec![set(key, value)]).as_deref(),
                Some(message),
                "{key}={value}"
            );
        }
        // Within a millionth of a whole number counts as whole, as in Kafka.
        assert_eq!(
            error_of(user, vec![set(PRODUCER_BYTE_RATE, 100.0000001)]),
            None
        );
    }

    #[test]
    fn one_bad_key_refuses_its_entity_only() {
        let alterations = [
            Alteration {
                entity: entity(&[("user", Some("alice"))]),
                ops: vec![set(PRODUCER_BYTE_RATE, 100.0), set("bogus", 1.0)],
            },
            Alteration {
                entity: entity(&[("user", Some("bob"))]),
                ops: vec![set(PRODUCER_BYTE_RATE, 100.0)],
            },
        ];
        let planned = plan(&alterations, &|_| true);
        assert!(planned.results[0].error.is_some());
        assert_eq!(planned.results[1].error, None);
        assert_eq!(planned.changes.len(), 1);
        assert_eq!(
            planned.changes[0].entity,
            QuotaEntity::user(EntityName::named("bob"))
        );
    }

    #[test]
    fn duplicates_are_answered_as_kafka_does() {
        let alice = entity(&[("user", Some("alice"))]);
        let twice = [
            Alteration {
                entity: alice.clone(),
                ops: vec![set(PRODUCER_BYTE_RATE, 100.0)],
            },
            Alteration {
                entity: alice.clone(),
                ops: vec![set(CONSUMER_BYTE_RATE, 100.0)],
            },
        ];
        let planned = plan(&twice, &|_| true);
        assert_eq!(planned.results.len(), 1, "one answer per entity");
        assert_eq!(
            planned.results[0].error.as_deref(),
            Some("Ignoring duplicate entity ClientQuotaEntity(entries={user=alice})")
        );
        // The first entry's change still goes through, as Kafka's record does.
        assert_eq!(planned.changes.len(), 1);
        assert_eq!(planned.changes[0].key, PRODUCER_BYTE_RATE);

        let key_twice = one(
            &[("user", None), ("client-id", Some("app"))],
            vec![set(PRODUCER_BYTE_RATE, 1.0), remove(PRODUCER_BYTE_RATE)],
        );
        assert_eq!(
            key_twice.results[0].error.as_deref(),
            Some("Ignoring duplicate entity ClientQuotaEntity(entries={client-id=app, user=null})")
        );
        assert!(key_twice.changes.is_empty());
    }
}
