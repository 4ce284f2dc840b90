//! The codec against records Kafka 4.4 itself wrote
//! (protocol-tests/fixtures/internal-records/make.py says how), and round trips of what
//! samsa writes.

use super::*;
use crate::topics::schema::kafka_records;

#[test]
fn kafkas_own_records_decode_and_encode_to_the_same_bytes() {
    let records = kafka_records("__transaction_state");
    let mut states = Vec::new();
    for (key, value) in &records {
        let id = decode_key(key).unwrap();
        assert_eq!(&encode_key(&id), key);
        let value_bytes = value.as_ref().expect("no id expired");
        let value = decode_value(value_bytes).unwrap();
        assert_eq!(&encode_value(&value), value_bytes, "{value:?}");
        let metadata = metadata_of(&value).unwrap();
        states.push((id, metadata.state));
        // What samsa keeps of it is what it writes again, but for the partitions' order
        // (Kafka's follows a hash map).
        let again = value_of(&metadata);
        let sorted = |v: &TxnLogValue| {
            let mut v = v.clone();
            if let Some(p) = v.partitions.as_mut() {
                p.sort();
            }
            v
        };
        assert_eq!(sorted(&again), sorted(&value));
    }
    use TxnState::*;
    let ids = |id: &str| -> Vec<TxnState> {
        states
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, s)| *s)
            .collect()
    };
    assert_eq!(
        ids("tx-1"),
        [Empty, Ongoing, Ongoing, PrepareCommit, CompleteCommit]
    );
    assert_eq!(ids("tx-2"), [Empty, Ongoing, PrepareAbort, CompleteAbort]);
}

#[test]
fn kafkas_records_mean_what_the_client_did() {
    let records = kafka_records("__transaction_state");
    let prepare = records
        .iter()
        .map(|(_, v)| decode_value(v.as_ref().unwrap()).unwrap())
        .find(|v| v.state == 2)
        .unwrap();
    let metadata = metadata_of(&prepare).unwrap();
    assert_eq!(metadata.state, TxnState::PrepareCommit);
    assert_eq!(
        metadata.partitions,
        BTreeSet::from([("__consumer_offsets".into(), 44), ("orders".into(), 0)])
    );
    assert_eq!((metadata.producer_epoch, metadata.timeout_ms), (0, 60_000));
    // Kafka 4.4 at transaction.version 1 keeps the id before the bump: its own.
    assert_eq!(prepare.previous_producer_id, prepare.producer_id);
    assert_eq!(prepare.client_transaction_version, 0);
}

#[test]
fn what_samsa_writes_round_trips() {
    let mut m = TxnMetadata::new(5, 60_000, 1_000);
    assert_eq!(value_of(&m).partitions, None, "Empty has no partitions");
    assert_eq!(
        metadata_of(&decode_value(&encode_value(&value_of(&m))).unwrap()).unwrap(),
        m
    );
    m.state = TxnState::Ongoing;
    m.last_producer_id = 5;
    m.producer_epoch = 3;
    m.start_ms = 2_000;
    m.partitions = BTreeSet::from([("a".into(), 1), ("a".into(), 2), ("b".into(), 0)]);
    let value = value_of(&m);
    assert_eq!(
        value.partitions,
        Some(vec![("a".into(), vec![1, 2]), ("b".into(), vec![0])])
    );
    let full = TxnLogValue {
        next_producer_id: 9,
        next_producer_epoch: 4,
        client_transaction_version: 2,
        ..value.clone()
    };
    for v in [value, full] {
        let bytes = encode_value(&v);
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(decode_value(&bytes).unwrap(), v);
    }
    assert_eq!(metadata_of(&value_of(&m)).unwrap(), m);
}

#[test]
fn bad_records_are_refused() {
    // samsa's earlier key: type 1, then the id's bytes.
    assert!(decode_key(&Bytes::from_static(b"\x00\x01tx-1")).is_err());
    assert!(decode_key(&Bytes::from_static(b"\x00\x00\x00\x09tx")).is_err());
    assert!(decode_value(&Bytes::from_static(b"\x00\x01{\"producer_id\":1}")).is_err());
    assert!(decode_value(&Bytes::from_static(&[0, 7])).is_err());
    let mut bad_state = value_of(&TxnMetadata::new(1, 1, 1));
    bad_state.state = 42;
    assert!(metadata_of(&bad_state).is_err());
}
