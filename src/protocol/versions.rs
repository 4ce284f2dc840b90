//! Lookups in the table of APIs and versions samsa serves, which is declared once with the
//! handlers ([`crate::handlers::APIS`]): ApiVersions reports exactly it, and the decoder
//! refuses anything outside it.

use kafka_protocol::messages::ApiKey;

pub use crate::handlers::APIS as SUPPORTED;

/// The served version range of `key`, if samsa implements it.
pub fn supported(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

pub fn is_supported(key: ApiKey, version: i16) -> bool {
    supported(key).is_some_and(|(min, max)| (min..=max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_range_is_one_the_crate_can_decode() {
        for &(key, min, max) in SUPPORTED.iter() {
            let known = key.valid_versions();
            assert!(min <= max, "{key:?}");
            assert!(
                known.min <= min && max <= known.max,
                "{key:?} {min}..{max} outside {known}"
            );
        }
    }

    #[test]
    fn every_api_is_declared_once() {
        let all = SUPPORTED.iter();
        let mut keys: Vec<i16> = all.map(|&(key, _, _)| key as i16).collect();
        keys.sort();
        let count = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), count, "an API declared twice");
    }
}
