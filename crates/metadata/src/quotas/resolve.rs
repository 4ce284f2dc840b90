//! Which configured quota holds a connection, as Kafka's default quota callback decides
//! (`ClientQuotaManager.DefaultQuotaCallback`: `quotaMetricTags` then `quotaLimit`) and, for
//! connection creation, `ConnectionQuotas.connectionRateForIp`.

use std::net::IpAddr;

use super::{ClientQuotaType, ClientQuotas, EntityName, QuotaEntity, CONNECTION_CREATION_RATE};

/// The user name Kafka gives a connection that did not authenticate
/// (`KafkaPrincipal.ANONYMOUS`): quotas set on user `ANONYMOUS`, or on the default user,
/// apply to such connections.
pub const ANONYMOUS: &str = "ANONYMOUS";

/// The quota a connection's requests count against.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedQuota {
    /// The rate in force, in the key's unit; `None` when no configured entity applies
    /// (Kafka then enforces nothing: its default quota is unlimited).
    pub limit: Option<f64>,
    /// The configured entity `limit` comes from; `None` with it.
    pub entity: Option<QuotaEntity>,
    /// Kafka's metric tags `user` and `client-id`: the usage of every connection resolving
    /// to the same pair is measured together, by one rate sensor. Either may be empty, as
    /// in Kafka: a quota on user `alice` alone gives (`alice`, ``), so all of alice's
    /// clients share it; a default-user quota gives each user their own (`bob`, ``); a
    /// default client-id quota each client id its own (``, `app`). Names are as given,
    /// not URL-encoded as Kafka's metric tags are.
    pub user_tag: String,
    pub client_id_tag: String,
}

/// The connection-creation quota of an address.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedIpQuota {
    /// Connections per second.
    pub limit: f64,
    /// The address's own entity, or the default ip entity.
    pub entity: QuotaEntity,
}

impl ClientQuotas {
    /// The quota of type `quota` that holds a connection of `user` (the principal's name,
    /// Kafka's `KafkaPrincipal.getName()`: `alice` of `User:alice`; `None` when the
    /// connection did not authenticate, which Kafka treats as user [`ANONYMOUS`]) with
    /// client id `client_id` (the request header's, empty when the client sent none).
    ///
    /// Kafka's precedence, first configured entity wins: user + client id, user + default
    /// client id, user, default user + client id, default user + default client id,
    /// default user, client id, default client id. As in Kafka the sensor tags are chosen
    /// first and the limit looked up from them, so an empty client id never matches a
    /// client-id quota of a user (named or default), and an empty user none at all but
    /// client-id quotas.
    ///
    /// Pure and cheap enough to call when a connection's quotas are first needed; the
    /// result holds until the quotas change (see `Cluster::subscribe_client_quotas`), so
    /// callers may keep it per connection and quota type until then.
    pub fn resolve(
        &self,
        quota: ClientQuotaType,
        user: Option<&str>,
        client_id: &str,
    ) -> ResolvedQuota {
        let key = quota.key();
        let user = user.unwrap_or(ANONYMOUS);
        let has = |entity: &QuotaEntity| self.value(entity, key).is_some();
        let named = EntityName::named;
        let (user_tag, client_id_tag) =
            if has(&QuotaEntity::user_client_id(named(user), named(client_id)))
                || has(&QuotaEntity::user_client_id(
                    named(user),
                    EntityName::Default,
                ))
            {
                (user, client_id)
            } else if has(&QuotaEntity::user(named(user))) {
                (user, "")
            } else if has(&QuotaEntity::user_client_id(
                EntityName::Default,
                named(client_id),
            )) || has(&QuotaEntity::user_client_id(
                EntityName::Default,
                EntityName::Default,
            )) {
                (user, client_id)
            } else if has(&QuotaEntity::user(EntityName::Default)) {
                (user, "")
            } else {
                ("", client_id)
            };
        let (limit, entity) = match self.limit_for_tags(key, user_tag, client_id_tag) {
            Some((limit, entity)) => (Some(limit), Some(entity)),
            None => (None, None),
        };
        ResolvedQuota {
            limit,
            entity,
            user_tag: user_tag.to_owned(),
            client_id_tag: client_id_tag.to_owned(),
        }
    }

    /// Kafka's `quotaLimit`: the entities a pair of sensor tags may take its limit from.
    fn limit_for_tags(&self, key: &str, user: &str, client_id: &str) -> Option<(f64, QuotaEntity)> {
        let named = EntityName::named;
        let candidates: Vec<QuotaEntity> = match (user.is_empty(), client_id.is_empty()) {
            (false, false) => vec![
                QuotaEntity::user_client_id(named(user), named(client_id)),
                QuotaEntity::user_client_id(named(user), EntityName::Default),
                QuotaEntity::user_client_id(EntityName::Default, named(client_id)),
                QuotaEntity::user_client_id(EntityName::Default, EntityName::Default),
            ],
            (false, true) => vec![
                QuotaEntity::user(named(user)),
                QuotaEntity::user(EntityName::Default),
            ],
            (true, false) => vec![
                QuotaEntity::client_id(named(client_id)),
                QuotaEntity::client_id(EntityName::Default),
            ],
            (true, true) => Vec::new(),
        };
        candidates
            .into_iter()
            .find_map(|entity| Some((self.value(&entity, key)?, entity)))
    }

    /// The `connection_creation_rate` that holds new connections from `ip`: its own
    /// entity's, else the default ip entity's; `None` when neither is set (unlimited by
    /// quota; Kafka's broker-wide `max.connection.creation.rate` is a separate limit).
    /// An entity named by a host name rather than an address is not matched: Kafka resolves
    /// it once when the quota is set, which a function of the metadata alone cannot.
    pub fn connection_creation_rate(&self, ip: IpAddr) -> Option<ResolvedIpQuota> {
        let ip = ip.to_canonical();
        let own = self.iter().find_map(|(entity, values)| {
            let Some(EntityName::Named(name)) = &entity.ip else {
                return None;
            };
            let address: IpAddr = name.parse().ok()?;
            let limit = values.get(CONNECTION_CREATION_RATE)?;
            (address.to_canonical() == ip).then(|| (*limit, entity.clone()))
        });
        let default = || {
            let entity = QuotaEntity::ip(EntityName::Default);
            Some((self.value(&entity, CONNECTION_CREATION_RATE)?, entity))
        };
        let (limit, entity) = own.or_else(default)?;
        Some(ResolvedIpQuota { limit, entity })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quotas::{QuotaChange, PRODUCER_BYTE_RATE};

    const USER: ClientQuotaType = ClientQuotaType::Produce;

    fn quotas(entities: &[(QuotaEntity, f64)]) -> ClientQuotas {
        let mut quotas = ClientQuotas::default();
        for (entity, value) in entities {
            quotas.apply(&QuotaChange {
                entity: entity.clone(),
                key: PRODUCER_BYTE_RATE.into(),
                value: Some(*value),
            });
        }
        quotas
    }

    fn n(name: &str) -> EntityName {
        EntityName::named(name)
    }
    const D: EntityName = EntityName::Default;

    /// (limit, user tag, client-id tag)
    fn resolved(
        q: &ClientQuotas,
        user: Option<&str>,
        client: &str,
    ) -> (Option<f64>, String, String) {
        let r = q.resolve(USER, user, client);
        assert_eq!(r.limit.is_some(), r.entity.is_some());
        if let Some(entity) = &r.entity {
            assert_eq!(q.value(entity, PRODUCER_BYTE_RATE), r.limit);
        }
        (r.limit, r.user_tag, r.client_id_tag)
    }

    fn t(limit: Option<f64>, user: &str, client: &str) -> (Option<f64>, String, String) {
        (limit, user.into(), client.into())
    }

    #[test]
    fn precedence_is_kafkas_eight_levels() {
        // Every level configured, each with its own value; removing the winner each time
        // must hand over to the next, in Kafka's order.
        let levels = [
            (QuotaEntity::user_client_id(n("alice"), n("app")), 1.0),
            (QuotaEntity::user_client_id(n("alice"), D), 2.0),
            (QuotaEntity::user(n("alice")), 3.0),
            (QuotaEntity::user_client_id(D, n("app")), 4.0),
            (QuotaEntity::user_client_id(D, D), 5.0),
            (QuotaEntity::user(D), 6.0),
            (QuotaEntity::client_id(n("app")), 7.0),
            (QuotaEntity::client_id(D), 8.0),
        ];
        for first in 0..levels.len() {
            let q = quotas(&levels[first..]);
            let r = q.resolve(USER, Some("alice"), "app");
            assert_eq!(r.limit, Some(levels[first].1));
            assert_eq!(r.entity.as_ref(), Some(&levels[first].0));
        }
        assert_eq!(quotas(&[]).resolve(USER, Some("alice"), "app").limit, None);
    }

    #[test]
    fn sensors_are_shared_as_kafkas_metric_tags_say() {
        let user_only = quotas(&[(QuotaEntity::user(n("alice")), 10.0)]);
        assert_eq!(
            resolved(&user_only, Some("alice"), "app"),
            t(Some(10.0), "alice", "")
        );
        assert_eq!(resolved(&user_only, Some("bob"), "app"), t(None, "", "app"));

        let default_user = quotas(&[(QuotaEntity::user(D), 10.0)]);
        assert_eq!(
            resolved(&default_user, Some("bob"), "app"),
            t(Some(10.0), "bob", "")
        );
        assert_eq!(
            resolved(&default_user, Some("carol"), "x"),
            t(Some(10.0), "carol", "")
        );

        let default_client = quotas(&[(QuotaEntity::client_id(D), 10.0)]);
        assert_eq!(
            resolved(&default_client, Some("bob"), "app"),
            t(Some(10.0), "", "app")
        );

        let per_pair = quotas(&[(QuotaEntity::user_client_id(D, D), 10.0)]);
        assert_eq!(
            resolved(&per_pair, Some("bob"), "app"),
            t(Some(10.0), "bob", "app")
        );
    }

    #[test]
    fn unauthenticated_connections_are_user_anonymous() {
        let q = quotas(&[(QuotaEntity::user(n(ANONYMOUS)), 3.0)]);
        assert_eq!(resolved(&q, None, "app"), t(Some(3.0), ANONYMOUS, ""));
        let q = quotas(&[(QuotaEntity::user(D), 4.0)]);
        assert_eq!(resolved(&q, None, ""), t(Some(4.0), ANONYMOUS, ""));
    }

    #[test]
    fn an_empty_client_id_takes_no_client_id_quota() {
        // Kafka picks the tags (user, "") once a user's client-id quota exists, then finds
        // no user quota under them.
        let q = quotas(&[(QuotaEntity::user_client_id(n("alice"), D), 5.0)]);
        assert_eq!(resolved(&q, Some("alice"), ""), t(None, "alice", ""));
        let q = quotas(&[(QuotaEntity::client_id(D), 5.0)]);
        assert_eq!(resolved(&q, Some("alice"), ""), t(None, "", ""));
        // An empty user name (a principal without one) takes client-id quotas only, and
        // none at all once a default user quota makes Kafka's tags ("", "").
        let mut q = quotas(&[(QuotaEntity::client_id(n("app")), 2.0)]);
        assert_eq!(resolved(&q, Some(""), "app"), t(Some(2.0), "", "app"));
        q.apply(&QuotaChange {
            entity: QuotaEntity::user(D),
            key: PRODUCER_BYTE_RATE.into(),
            value: Some(1.0),
        });
        assert_eq!(resolved(&q, Some(""), "app"), t(None, "", ""));
    }

    #[test]
    fn quota_types_are_resolved_separately() {
        let mut q = quotas(&[(QuotaEntity::user(n("alice")), 100.0)]);
        q.apply(&QuotaChange {
            entity: QuotaEntity::client_id(D),
            key: crate::quotas::REQUEST_PERCENTAGE.into(),
            value: Some(50.0),
        });
        let request = q.resolve(ClientQuotaType::Request, Some("alice"), "app");
        assert_eq!(request.limit, Some(50.0));
        assert_eq!(request.entity, Some(QuotaEntity::client_id(D)));
        assert_eq!(
            q.resolve(ClientQuotaType::Fetch, Some("alice"), "app")
                .limit,
            None
        );
    }

    #[test]
    fn an_ip_takes_its_own_rate_or_the_default() {
        let mut q = ClientQuotas::default();
        let set = |q: &mut ClientQuotas, entity: QuotaEntity, value: f64| {
            q.apply(&QuotaChange {
                entity,
                key: CONNECTION_CREATION_RATE.into(),
                value: Some(value),
            })
        };
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(q.connection_creation_rate(local), None);
        set(&mut q, QuotaEntity::ip(D), 20.0);
        set(&mut q, QuotaEntity::ip(n("127.0.0.1")), 5.0);
        set(&mut q, QuotaEntity::ip(n("::1")), 7.0);
        assert_eq!(q.connection_creation_rate(local).unwrap().limit, 5.0);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(q.connection_creation_rate(mapped).unwrap().limit, 5.0);
        assert_eq!(
            q.connection_creation_rate("0:0:0:0:0:0:0:1".parse().unwrap())
                .unwrap()
                .limit,
            7.0
        );
        let other = q
            .connection_creation_rate("10.0.0.9".parse().unwrap())
            .unwrap();
        assert_eq!((other.limit, other.entity), (20.0, QuotaEntity::ip(D)));
    }
}
