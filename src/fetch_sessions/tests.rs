use super::*;

fn key(p: i32) -> PartitionKey {
    PartitionKey {
        topic: TopicKey::Name("t".into()),
        partition: p,
    }
}

fn params() -> FetchParams {
    FetchParams {
        fetch_offset: 0,
        max_bytes: 1024,
        current_leader_epoch: -1,
        log_start_offset: -1,
        last_fetched_epoch: -1,
    }
}

fn found(n: i32) -> Vec<(PartitionKey, FetchParams, Outcome)> {
    (0..n)
        .map(|p| {
            let outcome = Outcome {
                has_records: false,
                high_watermark: 0,
                log_start_offset: 0,
                has_error: false,
                has_preferred_replica: false,
                has_diverging_epoch: false,
            };
            (key(p), params(), outcome)
        })
        .collect()
}

/// A cache of one session per shard, so every new session meets a full shard.
fn full_cache(eviction_ms: i64) -> (FetchSessionCache, Vec<i32>) {
    let cache = FetchSessionCache::new(SHARDS, eviction_ms, 1000);
    let ids: Vec<i32> = (0..SHARDS)
        .map(|_| cache.create(0, false, false, found(2)))
        .collect();
    assert!(ids.iter().all(|&id| id != NO_SESSION));
    (cache, ids)
}

#[test]
fn ids_fall_in_their_shards_range() {
    let (cache, ids) = full_cache(1000);
    for (n, id) in ids.iter().enumerate() {
        assert_eq!((*id / ID_RANGE) as usize, n);
    }
    assert_eq!(cache.stats().sessions, SHARDS);
    assert_eq!(cache.stats().partitions, 2 * SHARDS);
}

#[test]
fn a_full_shard_refuses_an_equal_or_young_session() {
    let (cache, _) = full_cache(1000);
    // Not stale, and the sessions are too young for a consumer's session to evict, even
    // a larger one.
    assert_eq!(cache.create(10, false, false, found(5)), NO_SESSION);
    assert_eq!(cache.stats().evictions, 0);
}

#[test]
fn a_stale_session_is_evicted() {
    let (cache, ids) = full_cache(1000);
    let id = cache.create(1001, false, false, found(1));
    assert_ne!(id, NO_SESSION);
    assert_eq!(cache.stats().evictions, 1);
    assert_eq!(cache.stats().sessions, SHARDS);
    let gone = ids.iter().filter(|&&old| !cache_has(&cache, old)).count();
    assert_eq!(gone, 1);
}

#[test]
fn a_larger_session_evicts_an_old_smaller_one() {
    let (cache, ids) = full_cache(1000);
    // Used recently (not stale) but created long ago.
    for &id in &ids {
        cache.update(1500, id, 1, false, Vec::new(), &[]).unwrap();
    }
    // Old enough to be evictable, but an equal one does not evict it; a larger one does.
    assert_eq!(cache.create(1600, false, false, found(2)), NO_SESSION);
    assert_ne!(cache.create(1600, false, false, found(3)), NO_SESSION);
    assert_eq!(cache.stats().evictions, 1);
}

#[test]
fn a_followers_session_evicts_a_young_consumers_session() {
    let (cache, _) = full_cache(1000);
    assert_ne!(cache.create(10, true, false, found(1)), NO_SESSION);
    assert_eq!(cache.stats().evictions, 1);
}

#[test]
fn incremental_errors_and_closing() {
    let cache = FetchSessionCache::new(1000, 1000, 1000);
    let id = cache.create(0, false, false, found(2));
    let update = |epoch, topic_ids, forgotten: &[PartitionKey]| {
        cache.update(1, id, epoch, topic_ids, Vec::new(), forgotten)
    };
    assert_eq!(
        cache
            .update(1, id + 1, 1, false, Vec::new(), &[])
            .unwrap_err(),
        FetchSessionError::NotFound
    );
    assert_eq!(
        update(2, false, &[]).unwrap_err(),
        FetchSessionError::InvalidEpoch
    );
    assert_eq!(
        update(1, true, &[]).unwrap_err(),
        FetchSessionError::TopicIdMismatch
    );
    match update(1, false, &[key(0)]).unwrap() {
        Continued::Incremental { epoch, partitions } => {
            assert_eq!(epoch, 2);
            assert_eq!(partitions.len(), 1);
        }
        Continued::Closed => panic!("one partition is left"),
    }
    assert_eq!(cache.stats().partitions, 1);
    assert!(matches!(
        update(2, false, &[key(1)]).unwrap(),
        Continued::Closed
    ));
    assert_eq!(cache.stats(), FetchSessionStats::default());
}

#[test]
fn the_partition_budget_bounds_sessions() {
    // 16 partitions over 8 shards: 2 each.
    let cache = FetchSessionCache::new(1000, 1000, 16);
    assert_eq!(cache.create(0, false, false, found(3)), NO_SESSION);
    let id = cache.create(0, false, false, found(2));
    assert_ne!(id, NO_SESSION);
    let more = vec![(key(7), params())];
    assert!(matches!(
        cache.update(1, id, 1, false, more, &[]).unwrap(),
        Continued::Closed
    ));
    assert_eq!(cache.stats().partitions, 0);
}

fn cache_has(cache: &FetchSessionCache, id: i32) -> bool {
    cache
        .shard_of(id)
        .is_some_and(|s| s.lock().sessions.contains_key(&id))
}
