//! DescribeClientQuotas' filters, as Kafka's `ClientQuotasImage.describe` reads them.

use std::collections::{BTreeMap, BTreeSet};

use super::{ClientQuotas, EntityQuotas, QuotaEntity, CLIENT_ID, IP, USER};

/// DescribeClientQuotas' match types.
pub struct MatchType;

impl MatchType {
    /// Entities whose component of the type has exactly this name.
    pub const EXACT: i8 = 0;
    /// Entities whose component of the type is the default entity.
    pub const DEFAULT: i8 = 1;
    /// Entities with any component of the type (Kafka's MATCH_TYPE_SPECIFIED).
    pub const SPECIFIED: i8 = 2;
}

/// One filter component, as the request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterComponent {
    pub entity_type: String,
    pub match_type: i8,
    pub name: Option<String>,
}

/// Why a filter is refused; Kafka answers the whole request with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescribeError {
    InvalidRequest(String),
    /// An entity type Kafka does not know (its UnsupportedVersionException).
    UnsupportedVersion(String),
}

/// The entities the filter selects, with their values. Without `strict` an entity may have
/// components the filter does not name; with it, exactly those the filter names.
pub fn describe<'a>(
    quotas: &'a ClientQuotas,
    filter: &[FilterComponent],
    strict: bool,
) -> Result<Vec<(&'a QuotaEntity, &'a EntityQuotas)>, DescribeError> {
    let invalid = |message: String| Err(DescribeError::InvalidRequest(message));
    // Entity type to the name it must have (`None`: the default entity).
    let mut exact: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    let mut specified: BTreeSet<&str> = BTreeSet::new();
    for component in filter {
        let kind = component.entity_type.as_str();
        if kind.is_empty() {
            return invalid("Invalid empty entity type.".into());
        }
        if exact.contains_key(kind) || specified.contains(kind) {
            return invalid(format!(
                "Entity type {kind} cannot appear more than once in the filter."
            ));
        }
        if ![IP, USER, CLIENT_ID].contains(&kind) {
            return Err(DescribeError::UnsupportedVersion(format!(
                "Unsupported entity type {kind}"
            )));
        }
        let name = component.name.as_deref();
        match component.match_type {
            MatchType::EXACT => {
                if name.is_none() {
                    return invalid(
                        "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                    );
                }
                exact.insert(kind, name);
            }
            MatchType::DEFAULT | MatchType::SPECIFIED => {
                let default = component.match_type == MatchType::DEFAULT;
                if name.is_some() {
                    let which = if default { "DEFAULT" } else { "SPECIFIED" };
                    return invalid(format!(
                        "Request specified MATCH_TYPE_{which}, but also specified a match string."
                    ));
                }
                if default {
                    exact.insert(kind, None);
                } else {
                    specified.insert(kind);
                }
            }
            other => return invalid(format!("Unknown match type {other}")),
        }
    }
    let named = |kind: &str| exact.contains_key(kind) || specified.contains(kind);
    if named(IP) && (named(USER) || named(CLIENT_ID)) {
        return invalid(
            "Invalid entity filter component combination. IP filter component should not be \
             used with user or clientId filter component."
                .into(),
        );
    }
    let matches = |entity: &QuotaEntity| {
        let components: BTreeMap<&str, Option<&str>> = entity.components().into_iter().collect();
        if strict && components.len() != exact.len() + specified.len() {
            return false;
        }
        exact
            .iter()
            .all(|(kind, name)| components.get(kind) == Some(name))
            && specified.iter().all(|kind| components.contains_key(kind))
    };
    Ok(quotas
        .iter()
        .filter(|(entity, _)| matches(entity))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quotas::{EntityName, QuotaChange, CONNECTION_CREATION_RATE, PRODUCER_BYTE_RATE};

    fn sample() -> ClientQuotas {
        let n = EntityName::named;
        let entities = [
            QuotaEntity::user(n("alice")),
            QuotaEntity::user(EntityName::Default),
            QuotaEntity::user_client_id(n("alice"), n("app")),
            QuotaEntity::user_client_id(n("alice"), EntityName::Default),
            QuotaEntity::client_id(n("app")),
        ];
        let mut quotas = ClientQuotas::default();
        for entity in entities {
            quotas.apply(&QuotaChange {
                entity,
                key: PRODUCER_BYTE_RATE.into(),
                value: Some(1.0),
            });
        }
        quotas.apply(&QuotaChange {
            entity: QuotaEntity::ip(n("10.0.0.1")),
            key: CONNECTION_CREATION_RATE.into(),
            value: Some(1.0),
        });
        quotas
    }

    fn component(kind: &str, match_type: i8, name: Option<&str>) -> FilterComponent {
        FilterComponent {
            entity_type: kind.into(),
            match_type,
            name: name.map(str::to_owned),
        }
    }

    fn shown(filter: &[FilterComponent], strict: bool) -> Vec<String> {
        let quotas = sample();
        let mut found: Vec<String> = describe(&quotas, filter, strict)
            .unwrap()
            .into_iter()
            .map(|(e, _)| e.to_string())
            .collect();
        found.sort();
        found
    }

    #[test]
    fn filters_select_as_kafkas_do() {
        assert_eq!(shown(&[], false).len(), 6, "no component: everything");
        assert!(
            shown(&[], true).is_empty(),
            "strict without components: nothing"
        );
        let alice = component(USER, MatchType::EXACT, Some("alice"));
        assert_eq!(
            shown(std::slice::from_ref(&alice), false),
            [
                "user=alice",
                "user=alice, client-id=<default>",
                "user=alice, client-id=app"
            ]
        );
        assert_eq!(shown(std::slice::from_ref(&alice), true), ["user=alice"]);
        assert_eq!(
            shown(&[component(USER, MatchType::DEFAULT, None)], false),
            ["user=<default>"]
        );
        assert_eq!(
            shown(
                &[alice, component(CLIENT_ID, MatchType::SPECIFIED, None)],
                true
            ),
            [
                "user=alice, client-id=<default>",
                "user=alice, client-id=app"
            ]
        );
        assert_eq!(
            shown(&[component(IP, MatchType::SPECIFIED, None)], false),
            ["ip=10.0.0.1"]
        );
    }

    #[test]
    fn bad_filters_are_refused_in_kafkas_words() {
        let quotas = sample();
        let refused = |filter: &[FilterComponent]| describe(&quotas, filter, false).unwrap_err();
        let invalid = |m: &str| DescribeError::InvalidRequest(m.into());
        assert_eq!(
            refused(&[component("", 0, Some("x"))]),
            invalid("Invalid empty entity type.")
        );
        assert_eq!(
            refused(&[component("group", 0, Some("x"))]),
            DescribeError::UnsupportedVersion("Unsupported entity type group".into())
        );
        assert_eq!(
            refused(&[component(USER, 2, None), component(USER, 1, None)]),
            invalid("Entity type user cannot appear more than once in the filter.")
        );
        assert_eq!(
            refused(&[component(USER, 0, None)]),
            invalid("Request specified MATCH_TYPE_EXACT, but set match string to null.")
        );
        assert_eq!(
            refused(&[component(USER, 1, Some("a"))]),
            invalid("Request specified MATCH_TYPE_DEFAULT, but also specified a match string.")
        );
        assert_eq!(
            refused(&[component(USER, 2, Some("a"))]),
            invalid("Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.")
        );
        assert_eq!(
            refused(&[component(USER, 7, None)]),
            invalid("Unknown match type 7")
        );
        assert!(matches!(
            refused(&[component(IP, 2, None), component(CLIENT_ID, 2, None)]),
            DescribeError::InvalidRequest(_)
        ));
    }
}
