use super::*;

const LOCK: i64 = 30_000;

fn limits() -> Limits {
    Limits {
        max_delivery_count: 5,
        record_lock_duration_ms: LOCK,
        max_in_flight_records: 2000,
    }
}

fn fresh(start: i64) -> SharePartition {
    SharePartition::new(&ShareState::default(), start, limits())
}

fn all() -> AcquireLimits {
    AcquireLimits {
        max_records: 500,
        batch_size: 500,
        record_limit: false,
    }
}

/// Log batches of `size` records from `from` to `to` inclusive.
fn log(from: i64, to: i64, size: i64) -> Vec<LogBatch> {
    (from..=to)
        .step_by(size as usize)
        .map(|b| LogBatch {
            base_offset: b,
            last_offset: (b + size - 1).min(to),
        })
        .collect()
}

fn range(first: i64, last: i64, delivery_count: i16) -> Acquired {
    Acquired {
        first_offset: first,
        last_offset: last,
        delivery_count,
    }
}

fn fetch(p: &mut SharePartition, member: &str, to: i64, now: i64) -> Vec<Acquired> {
    let from = p.next_fetch_offset();
    if from > to {
        return Vec::new();
    }
    p.acquire(member, &log(from, to, 1), all(), now)
}

#[test]
fn new_records_are_acquired_once_with_delivery_count_one() {
    let mut p = fresh(0);
    let got = p.acquire("a", &log(0, 9, 5), all(), 0);
    assert_eq!(got, vec![range(0, 9, 1)]);
    // Nothing more for another member: all ten are locked.
    assert_eq!(p.next_fetch_offset(), 10);
    assert!(p.acquire("b", &log(10, 9, 5), all(), 0).is_empty());
}

#[test]
fn max_records_ends_at_a_log_batch_boundary_and_batch_size_splits() {
    let mut p = fresh(0);
    let limits = AcquireLimits {
        max_records: 6,
        batch_size: 4,
        record_limit: false,
    };
    // Batches of 5: the 6th record is in the second batch, which is taken whole.
    let got = p.acquire("a", &log(0, 19, 5), limits, 0);
    assert_eq!(got, vec![range(0, 4, 1), range(5, 9, 1)]);
    let strict = AcquireLimits {
        record_limit: true,
        ..limits
    };
    assert_eq!(
        p.acquire("a", &log(10, 19, 5), strict, 0),
        vec![range(10, 15, 1)]
    );
}

#[test]
fn accept_moves_the_start_offset() {
    let mut p = fresh(0);
    p.acquire("a", &log(0, 9, 10), all(), 0);
    p.acknowledge("a", &[(0, 4, vec![ACCEPT])], 0).unwrap();
    assert_eq!(p.start_offset(), 5);
    p.acknowledge("a", &[(5, 9, vec![ACCEPT])], 0).unwrap();
    assert_eq!(p.start_offset(), 10);
    assert_eq!(p.state(0).batches, vec![]);
}

#[test]
fn release_makes_records_available_again_with_their_count() {
    let mut p = fresh(0);
    p.acquire("a", &log(0, 9, 10), all(), 0);
    p.acknowledge("a", &[(3, 4, vec![RELEASE])], 0).unwrap();
    assert_eq!(p.next_fetch_offset(), 3);
    // Split batch: offset by offset, counted again on acquisition.
    let got = p.acquire("b", &log(0, 9, 10), all(), 0);
    assert_eq!(got, vec![range(3, 3, 2), range(4, 4, 2)]);
}

#[test]
fn acknowledging_what_the_member_does_not_hold_fails_and_changes_nothing() {
    let mut p = fresh(0);
    p.acquire("a", &log(0, 9, 10), all(), 0);
    let err = p.acknowledge("b", &[(0, 0, vec![ACCEPT])], 0).unwrap_err();
    assert!(matches!(err, AckError::InvalidRecordState(_)));
    // Second range fails: the first is not applied either.
    let err = p
        .acknowledge("a", &[(0, 1, vec![ACCEPT]), (20, 21, vec![ACCEPT])], 0)
        .unwrap_err();
    assert!(matches!(err, AckError::InvalidRequest(_)));
    assert_eq!(p.start_offset(), 0);
    // Acknowledged but still in flight (offset 1 is not): acknowledging it again fails.
    p.acknowledge("a", &[(2, 2, vec![ACCEPT])], 0).unwrap();
    let err = p.acknowledge("a", &[(2, 2, vec![ACCEPT])], 0).unwrap_err();
    assert!(matches!(err, AckError::InvalidRecordState(_)));
}

#[test]
fn acknowledgements_before_the_start_offset_are_skipped() {
    // Kafka's SharePartition.acknowledge skips a range wholly before the start offset and,
    // in a range that straddles it, the offsets before it: they answer success.
    let mut p = fresh(0);
    p.acquire("a", &log(0, 9, 10), all(), 0);
    p.acknowledge("a", &[(0, 3, vec![ACCEPT])], 0).unwrap();
    assert_eq!(p.start_offset(), 4);
    p.acknowledge("a", &[(0, 0, vec![ACCEPT])], 0).unwrap();
    p.acknowledge("a", &[(2, 5, vec![REJECT])], 0).unwrap();
    assert_eq!(p.start_offset(), 6);
    p.acknowledge("a", &[(6, 9, vec![ACCEPT])], 0).unwrap();
    assert_eq!(p.state(0).batches, vec![]);
    // The batch is gone once the start offset passes it: skipped all the same.
    p.acknowledge("a", &[(0, 9, vec![ACCEPT])], 0).unwrap();
}

#[test]
fn a_late_acknowledgement_of_a_record_archived_at_the_limit_succeeds() {
    let mut p = fresh(0);
    let mut now = 0;
    for delivery in 1..=5 {
        assert_eq!(fetch(&mut p, "a", 0, now), vec![range(0, 0, delivery)]);
        now += LOCK;
        p.expire_locks(now);
        let late = p.acknowledge("a", &[(0, 0, vec![ACCEPT])], now);
        // Available again until the fifth expiry archives it: then it is past the start
        // offset and Kafka lets the acknowledgement through (the Java client's commitSync
        // reports no error).
        assert_eq!(late.is_ok(), delivery == 5, "delivery {delivery}: {late:?}");
    }
    assert_eq!(p.start_offset(), 1);
}

#[test]
fn per_offset_types_and_gaps() {
    let mut p = fresh(0);
    p.acquire("a", &log(0, 3, 4), all(), 0);
    p.acknowledge("a", &[(0, 3, vec![ACCEPT, GAP, REJECT, RELEASE])], 0)
        .unwrap();
    assert_eq!(p.start_offset(), 3);
    let state = p.state(0);
    assert_eq!(
        state.batches,
        vec![StateBatch {
            first_offset: 3,
            last_offset: 3,
            delivery_state: 0,
            delivery_count: 1
        }]
    );
}

#[test]
fn an_expired_lock_returns_the_records_and_the_next_delivery_counts_two() {
    let mut p = fresh(0);
    p.acquire("a", &log(0, 4, 5), all(), 0);
    assert_eq!(p.next_lock_expiry(), Some(LOCK));
    assert!(!p.expire_locks(LOCK - 1));
    assert!(p.expire_locks(LOCK));
    // Still a whole batch: one range, delivered a second time.
    assert_eq!(fetch(&mut p, "b", 4, LOCK), vec![range(0, 4, 2)]);
    // The first member's late acknowledgement is refused.
    assert!(p.acknowledge("a", &[(0, 4, vec![ACCEPT])], LOCK).is_err());
}

#[test]
fn renew_extends_the_lock() {
    let mut p = fresh(0);
    p.acquire("a", &log(0, 0, 1), all(), 0);
    p.acknowledge("a", &[(0, 0, vec![RENEW])], 20_000).unwrap();
    assert!(!p.expire_locks(LOCK));
    assert_eq!(p.next_lock_expiry(), Some(20_000 + LOCK));
}

#[test]
fn a_record_released_at_the_delivery_limit_is_archived() {
    let mut p = fresh(0);
    for delivery in 1..=5 {
        let got = fetch(&mut p, "a", 0, 0);
        assert_eq!(got, vec![range(0, 0, delivery)]);
        p.acknowledge("a", &[(0, 0, vec![RELEASE])], 0).unwrap();
    }
    // Archived after its fifth delivery: the start offset passes it, nothing to acquire.
    assert_eq!(p.start_offset(), 1);
    assert!(fetch(&mut p, "a", 0, 0).is_empty());
}

#[test]
fn lock_expiry_at_the_limit_archives_too() {
    let mut p = fresh(0);
    let mut now = 0;
    for delivery in 1..=5 {
        assert_eq!(fetch(&mut p, "a", 0, now), vec![range(0, 0, delivery)]);
        now += LOCK;
        p.expire_locks(now);
    }
    assert_eq!(p.start_offset(), 1);
}

#[test]
fn redeliveries_are_throttled_and_the_last_attempt_goes_alone() {
    let mut p = fresh(0);
    let mut now = 0;
    // Ten records delivered three times as a whole batch: the check comes before counting.
    for count in 1..=3 {
        assert_eq!(fetch(&mut p, "a", 9, now), vec![range(0, 9, count)]);
        now += LOCK;
        p.expire_locks(now);
    }
    // At the throttle limit (3 of 5) half the batch, offset by offset.
    let fourth = fetch(&mut p, "a", 9, now);
    assert_eq!(fourth.len(), 5);
    assert!(fourth.iter().all(|r| r.delivery_count == 4));
    now += LOCK;
    p.expire_locks(now);
    // A record on its last delivery goes alone.
    assert_eq!(fetch(&mut p, "a", 9, now), vec![range(0, 0, 5)]);
    assert_eq!(fetch(&mut p, "b", 9, now), vec![range(1, 1, 5)]);
}

#[test]
fn a_member_leaving_releases_its_records_only() {
    let mut p = fresh(0);
    p.acquire("a", &log(0, 4, 5), all(), 0);
    p.acquire("b", &log(5, 9, 5), all(), 0);
    assert!(p.release_member("a"));
    assert_eq!(p.next_fetch_offset(), 0);
    assert_eq!(p.counts().0, 5);
}

#[test]
fn the_in_flight_cap_stops_new_acquisition() {
    let mut p = SharePartition::new(
        &ShareState::default(),
        0,
        Limits {
            max_in_flight_records: 10,
            ..limits()
        },
    );
    assert_eq!(
        p.acquire("a", &log(0, 19, 4), all(), 0),
        vec![range(0, 11, 1)]
    );
    assert!(!p.can_acquire());
    p.acknowledge("a", &[(0, 11, vec![ACCEPT])], 0).unwrap();
    assert!(p.can_acquire());
}

#[test]
fn a_new_leader_continues_from_the_written_state() {
    let mut p = fresh(0);
    p.acquire("a", &log(0, 9, 10), all(), 0);
    p.acknowledge(
        "a",
        &[
            (0, 2, vec![ACCEPT]),
            (3, 3, vec![RELEASE]),
            (5, 5, vec![REJECT]),
        ],
        0,
    )
    .unwrap();
    let written = p.state(3);
    assert_eq!(written.start_offset, 3);
    let mut q = SharePartition::new(&written, written.start_offset, limits());
    assert_eq!(q.start_offset(), 3);
    // 3 (released) and 4, 6..9 (acquired by a, its lock gone with the old leader) again.
    let got = q.acquire("b", &log(3, 9, 7), all(), 0);
    let offsets: Vec<i64> = got
        .iter()
        .flat_map(|r| r.first_offset..=r.last_offset)
        .collect();
    assert_eq!(offsets, vec![3, 4, 6, 7, 8, 9]);
    assert!(got.iter().all(|r| r.delivery_count == 2));
}

#[test]
fn the_log_start_moving_past_records_drops_them() {
    let mut p = fresh(0);
    p.acquire("a", &log(0, 9, 10), all(), 0);
    p.log_start_moved(4);
    assert_eq!(p.start_offset(), 4);
    // Before the start offset: skipped, as Kafka does, and nothing changes.
    p.acknowledge("a", &[(2, 2, vec![ACCEPT])], 0).unwrap();
    assert_eq!(p.start_offset(), 4);
    p.acknowledge("a", &[(4, 9, vec![ACCEPT])], 0).unwrap();
    assert_eq!(p.start_offset(), 10);
}
