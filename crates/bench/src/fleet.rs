//! The client side of the OpenMessaging-Benchmark-style workloads: a topic of many partitions
//! created up front, several producer clients at once (optionally keyed), a consumer group of
//! several members, and a transactional producer. librdkafka through the `rdkafka` crate, the
//! same for both brokers, as in `workload`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::busy::{Busy, Mark};
use crate::workload::{self, await_topic, payloads, Endpoint, Produced, Result, Tally};

/// Create `topic` with `partitions` partitions (replication 1) and wait until each has a
/// leader, so neither creation nor the first metadata round is timed.
pub fn create_topic(at: &Endpoint, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = at
        .config()
        .create()
        .map_err(|e| format!("creating admin client: {e}"))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let results = rt
        .block_on(admin.create_topics([&new], &opts))
        .map_err(|e| format!("CreateTopics {topic}: {e}"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(format!("CreateTopics {t}: {code}")),
        }
    }
    let p: BaseProducer<Tally> = at
        .config()
        .create_with_context(Tally::default())
        .map_err(|e| format!("creating producer: {e}"))?;
    await_topic(&p, topic)
}

/// Several producers at once onto one topic.
pub struct Fleet {
    pub producers: usize,
    pub size: usize,
    pub acks: &'static str,
    /// Keyed records: this many distinct keys, spread by librdkafka's default partitioner.
    /// `None`: no key (librdkafka's sticky partitioning for keyless records).
    pub keys: Option<usize>,
}

/// `keys` distinct keys `key-00000`...
fn key_pool(keys: usize) -> Vec<Vec<u8>> {
    (0..keys)
        .map(|k| format!("key-{k:05}").into_bytes())
        .collect()
}

/// Each of `f.producers` clients sends as fast as librdkafka takes records until `duration`
/// has passed (or the fleet has sent `max_records`), then waits for its delivery reports.
/// Time runs from the moment all clients are connected and start together to the last report.
pub fn produce(
    at: &Endpoint,
    topic: &str,
    f: &Fleet,
    duration: Duration,
    max_records: u64,
) -> Result<Produced> {
    let start_line = Arc::new(Barrier::new(f.producers + 1));
    let start = Arc::new(OnceLock::<Mark>::new());
    let keys = Arc::new(f.keys.map(key_pool).unwrap_or_default());
    let pool = Arc::new(payloads(f.size, 1024));
    let per_client = max_records.div_ceil(f.producers as u64);
    let clients: Vec<_> = (0..f.producers)
        .map(|n| {
            let (at, topic, acks) = (at.clone(), topic.to_owned(), f.acks);
            let (start_line, start, keys, pool) = (
                start_line.clone(),
                start.clone(),
                keys.clone(),
                pool.clone(),
            );
            thread::spawn(move || -> Result<u64> {
                let made = workload::producer_config(&at, acks, "none", 5)
                    .create_with_context(Tally::default())
                    .map_err(|e| format!("creating producer: {e}"));
                // Wait at the start line even when failing, so the others are not held.
                let p = made.and_then(|p| await_topic(&p, &topic).map(|()| p));
                start_line.wait();
                let p = p?;
                let t0 = start.get_or_init(|| at.mark()).at;
                let mut sent = 0u64;
                // Spread each client's keys differently over the pool (a prime stride).
                let mut k = n * 7919;
                while sent < per_client && t0.elapsed() < duration {
                    let payload = pool[(sent % pool.len() as u64) as usize].as_slice();
                    let mut rec = BaseRecord::<[u8], [u8]>::to(&topic).payload(payload);
                    if !keys.is_empty() {
                        k = (k + 7919) % keys.len();
                        rec = rec.key(keys[k].as_slice());
                    }
                    if workload::offer(&p, rec)? {
                        sent += 1;
                    }
                    if sent.is_multiple_of(4096) {
                        p.poll(Duration::ZERO);
                    }
                }
                workload::finish(&p, sent)
            })
        })
        .collect();
    start_line.wait();
    let mut records = 0;
    let mut first_error = None;
    for c in clients {
        match c.join() {
            Ok(Ok(n)) => records += n,
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert("producer thread panicked".into());
            }
        }
    }
    let end = at.mark();
    if let Some(e) = first_error {
        return Err(e);
    }
    let mark = start
        .get()
        .ok_or_else(|| "no producer started".to_owned())?;
    Ok(Produced {
        records,
        bytes: records * f.size as u64,
        seconds: end.at.duration_since(mark.at).as_secs_f64(),
        busy: mark.until(&end),
    })
}

/// What a consumer group read.
pub struct GroupRead {
    pub records: u64,
    pub bytes: u64,
    /// From the first record any member received to the last one needed.
    pub seconds: f64,
    /// Both sides' CPU over those `seconds`.
    pub busy: Busy,
}

/// `members` consumers of one new group subscribe to `topic` (of `partitions` partitions,
/// `expected` records of `size` bytes, every partition from offset 0) and read until every
/// record has been seen. A record read twice (a partition moving between members in a
/// rebalance before its offset was committed) counts once: each partition's count is its
/// highest offset seen plus one. The clock starts at the first record, so the group's join
/// (samsa's `group_initial_rebalance_delay_ms` is 3 s, the reference Kafka's 0) is not in it.
pub fn group_consume(
    at: &Endpoint,
    topic: &str,
    partitions: usize,
    members: usize,
    expected: u64,
    size: usize,
    timeout: Duration,
) -> Result<GroupRead> {
    let group = format!("samsa-bench-{topic}-{}", std::process::id());
    let next: Arc<Vec<AtomicI64>> = Arc::new((0..partitions).map(|_| AtomicI64::new(0)).collect());
    let seen = Arc::new(AtomicU64::new(0));
    let first = Arc::new(OnceLock::<Mark>::new());
    let done = Arc::new(OnceLock::<Mark>::new());
    let deadline = Instant::now() + timeout;
    let readers: Vec<_> = (0..members)
        .map(|_| {
            let (at, topic, group) = (at.clone(), topic.to_owned(), group.clone());
            let (next, seen, first, done) =
                (next.clone(), seen.clone(), first.clone(), done.clone());
            thread::spawn(move || -> Result<()> {
                let c: BaseConsumer = at
                    .config()
                    .set("group.id", &group)
                    .set("auto.offset.reset", "earliest")
                    .set("enable.auto.commit", "true")
                    .set("auto.commit.interval.ms", "1000")
                    .set("fetch.wait.max.ms", "500")
                    .set("max.partition.fetch.bytes", "1048576")
                    .set("queued.max.messages.kbytes", "65536")
                    .create()
                    .map_err(|e| format!("creating consumer: {e}"))?;
                c.subscribe(&[&topic])
                    .map_err(|e| format!("subscribe: {e}"))?;
                while done.get().is_none() {
                    if Instant::now() > deadline {
                        return Err(format!(
                            "the group read {} of {expected} records within {timeout:?}",
                            seen.load(Ordering::Relaxed)
                        ));
                    }
                    match c.poll(Duration::from_millis(100)) {
                        Some(Ok(m)) => {
                            first.get_or_init(|| at.mark());
                            let slot = &next[m.partition() as usize % next.len()];
                            let before = slot.fetch_max(m.offset() + 1, Ordering::Relaxed);
                            let new = (m.offset() + 1 - before).max(0) as u64;
                            if new > 0 && seen.fetch_add(new, Ordering::Relaxed) + new >= expected {
                                done.get_or_init(|| at.mark());
                            }
                        }
                        Some(Err(e)) => return Err(format!("consume: {e}")),
                        None => {}
                    }
                }
                Ok(())
            })
        })
        .collect();
    let mut first_error = None;
    for r in readers {
        match r.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert("consumer thread panicked".into());
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let (Some(first), Some(done)) = (first.get(), done.get()) else {
        return Err("the group read nothing".into());
    };
    let records = seen.load(Ordering::Relaxed);
    Ok(GroupRead {
        records,
        bytes: records * size as u64,
        seconds: done.at.duration_since(first.at).as_secs_f64(),
        busy: first.until(done),
    })
}

/// One transactional producer: begin, `per_txn` records, commit, again, until `duration` (or
/// `max_records`). Counts committed records only; time runs from the first begin to the last
/// commit (InitProducerId is before the clock).
pub fn transactional(
    at: &Endpoint,
    topic: &str,
    size: usize,
    per_txn: u64,
    duration: Duration,
    max_records: u64,
) -> Result<Produced> {
    let p: BaseProducer<Tally> = workload::producer_config(at, "all", "none", 5)
        .set("enable.idempotence", "true")
        .set(
            "transactional.id",
            format!("samsa-bench-{}", std::process::id()),
        )
        .create_with_context(Tally::default())
        .map_err(|e| format!("creating transactional producer: {e}"))?;
    await_topic(&p, topic)?;
    let timeout = Duration::from_secs(60);
    p.init_transactions(timeout)
        .map_err(|e| format!("init_transactions: {e}"))?;
    let pool = payloads(size, 1024);
    let mark = at.mark();
    let start = mark.at;
    let mut committed = 0u64;
    while committed < max_records && start.elapsed() < duration {
        p.begin_transaction()
            .map_err(|e| format!("begin_transaction: {e}"))?;
        let mut sent = 0u64;
        while sent < per_txn {
            let payload = pool[((committed + sent) % pool.len() as u64) as usize].as_slice();
            if workload::offer(&p, BaseRecord::<(), [u8]>::to(topic).payload(payload))? {
                sent += 1;
            }
        }
        // commit_transaction flushes first, and the rdkafka crate's flush waits in polls of
        // up to 100 ms: that would time the crate (about 100 ms a transaction), not the
        // broker. Serve the delivery reports in short polls until none is outstanding.
        let deadline = Instant::now() + timeout;
        while p.in_flight_count() > 0 {
            if Instant::now() > deadline {
                return Err(format!("records not delivered within {timeout:?}"));
            }
            p.poll(Duration::from_millis(1));
        }
        p.commit_transaction(timeout)
            .map_err(|e| format!("commit_transaction: {e}"))?;
        committed += sent;
    }
    let end = at.mark();
    if let Some(e) = p.context().first_error.lock().unwrap().take() {
        return Err(format!("delivery failed: {e}"));
    }
    Ok(Produced {
        records: committed,
        bytes: committed * size as u64,
        seconds: end.at.duration_since(start).as_secs_f64(),
        busy: mark.until(&end),
    })
}
