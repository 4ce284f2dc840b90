//! Hostile input for the decoder: whatever bytes arrive, decoding returns a frame or an
//! error and never panics. Bounded property tests, so they run in every `make test`.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::Encodable;
use proptest::prelude::*;

use super::{decode_frame, versions};

/// A valid header for a supported API and version, followed by arbitrary body bytes:
/// this reaches deep into every body decoder instead of stopping at the header.
fn header_then_noise() -> impl Strategy<Value = Bytes> {
    let versions: Vec<(i16, i16)> = versions::SUPPORTED
        .iter()
        .flat_map(|&(key, min, max)| (min..=max).map(move |v| (key as i16, v)))
        .collect();
    (
        proptest::sample::select(versions),
        proptest::collection::vec(any::<u8>(), 0..256),
    )
        .prop_map(|((key, version), noise)| {
            let api = kafka_protocol::messages::ApiKey::try_from(key).expect("supported key");
            let mut buf = BytesMut::new();
            RequestHeader::default()
                .with_request_api_key(key)
                .with_request_api_version(version)
                .with_correlation_id(1)
                .encode(&mut buf, api.request_header_version(version))
                .expect("header encodes");
            buf.put_slice(&noise);
            buf.freeze()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_frame(Bytes::from(frame));
    }

    #[test]
    fn random_bodies_of_every_served_api_never_panic(frame in header_then_noise()) {
        let _ = decode_frame(frame);
    }
}
