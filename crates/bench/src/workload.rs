//! The client side: producers and consumers through librdkafka (the `rdkafka` crate), the
//! same for both brokers.
//!
//! Payloads are text-like (random words from a small vocabulary), so lz4 has something to
//! do without making every record identical; a pool of distinct payloads is cycled so no
//! two records in one batch match.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::busy::{Busy, Mark};

pub type Result<T> = std::result::Result<T, String>;

/// One produce case: record size, `acks`, `compression.type`.
#[derive(Clone, Copy, Debug)]
pub struct ProduceCase {
    pub size: usize,
    pub acks: &'static str,
    pub compression: &'static str,
}

impl ProduceCase {
    /// A stable id used in the table and the JSON: `1KiB.acks1.none`.
    pub fn id(&self) -> String {
        let size = if self.size.is_multiple_of(1024) {
            format!("{}KiB", self.size / 1024)
        } else {
            format!("{}B", self.size)
        };
        format!("{size}.acks{}.{}", self.acks, self.compression)
    }
}

/// What a bounded produce run achieved.
pub struct Produced {
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// Both sides' CPU over those `seconds`.
    pub busy: Busy,
}

/// Where clients connect: a bootstrap address and, for a TLS listener, the CA (PEM) that
/// signed the broker's certificate; and the broker process whose CPU a timed run reads.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub bootstrap: String,
    pub tls_ca: Option<PathBuf>,
    /// `None`: the run's broker busy figure is not measured.
    pub broker_pid: Option<u32>,
}

impl Endpoint {
    pub fn plain(bootstrap: &str, broker_pid: Option<u32>) -> Endpoint {
        Endpoint {
            bootstrap: bootstrap.to_owned(),
            tls_ca: None,
            broker_pid,
        }
    }

    /// Both sides' CPU now, to measure how busy they are from here (see `busy`).
    pub fn mark(&self) -> Mark {
        Mark::now(self.broker_pid)
    }

    /// A client configuration that connects here.
    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        if let Some(ca) = &self.tls_ca {
            c.set("security.protocol", "ssl")
                .set("ssl.ca.location", ca.to_string_lossy());
        }
        c
    }
}

/// Counts deliveries and keeps the first error; reports librdkafka's own errors on stderr.
#[derive(Default)]
pub struct Tally {
    pub acked: AtomicU64,
    pub failed: AtomicU64,
    pub first_error: Mutex<Option<String>>,
}

impl ClientContext for Tally {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        if (level as i32) <= RDKafkaLogLevel::Warning as i32 {
            eprintln!("    librdkafka producer {fac}: {msg}");
        }
    }
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("    librdkafka producer error: {error}: {reason}");
    }
}

impl ProducerContext for Tally {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_error
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Logs librdkafka consumer warnings and errors on stderr.
struct Quiet;
impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        if (level as i32) <= RDKafkaLogLevel::Warning as i32 {
            eprintln!("    librdkafka consumer {fac}: {msg}");
        }
    }
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("    librdkafka consumer error: {error}: {reason}");
    }
}
impl rdkafka::consumer::ConsumerContext for Quiet {}

fn producer(
    bootstrap: &str,
    acks: &str,
    compression: &str,
    linger_ms: u32,
) -> Result<BaseProducer<Tally>> {
    producer_config(
        &Endpoint::plain(bootstrap, None),
        acks,
        compression,
        linger_ms,
    )
    .create_with_context(Tally::default())
    .map_err(|e| format!("creating producer: {e}"))
}

/// The bench's producer settings: big batches and queues, no idempotence (a caller that
/// wants it, the transactional producer, sets it).
pub fn producer_config(
    at: &Endpoint,
    acks: &str,
    compression: &str,
    linger_ms: u32,
) -> ClientConfig {
    let mut c = at.config();
    c.set("acks", acks)
        .set("compression.type", compression)
        .set("enable.idempotence", "false")
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", "1000000") // the broker's message.max.bytes is 1048588
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "60000");
    c
}

fn consumer(bootstrap: &str, topic: &str, wait_ms: u32) -> Result<BaseConsumer<Quiet>> {
    // assign() only, no group (samsa has no group coordinator yet). librdkafka 2.12 refuses
    // assign() without a group.id, so one is set as a label; it is never joined.
    let c: BaseConsumer<Quiet> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "samsa-bench-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", wait_ms.to_string())
        .set("fetch.min.bytes", "1")
        .set("max.partition.fetch.bytes", "8388608")
        .set("fetch.max.bytes", "52428800")
        .set("queued.max.messages.kbytes", "262144")
        .create_with_context(Quiet)
        .map_err(|e| format!("creating consumer: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(|e| e.to_string())?;
    c.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
    Ok(c)
}

/// `count` distinct text-like payloads of `size` bytes (xorshift, fixed seed).
pub fn payloads(size: usize, count: usize) -> Vec<Vec<u8>> {
    const WORDS: [&str; 16] = [
        "user", "event", "click", "view", "cart", "order", "id", "time", "page", "home", "search",
        "item", "price", "eur", "session", "true",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let mut p = Vec::with_capacity(size + 16);
            while p.len() < size {
                let r = next();
                p.extend_from_slice(WORDS[(r & 15) as usize].as_bytes());
                p.push(b'=');
                p.extend_from_slice(format!("{}", (r >> 8) % 100_000).as_bytes());
                p.push(b' ');
            }
            p.truncate(size);
            p
        })
        .collect()
}

/// Produce as fast as librdkafka will take records for `duration` (or `max_records`), then
/// wait for every delivery report. Time runs from the first send to the last report.
pub fn produce(
    at: &Endpoint,
    topic: &str,
    case: ProduceCase,
    duration: Duration,
    max_records: u64,
) -> Result<Produced> {
    let p: BaseProducer<Tally> = producer_config(at, case.acks, case.compression, 5)
        .create_with_context(Tally::default())
        .map_err(|e| format!("creating producer: {e}"))?;
    await_topic(&p, topic)?;
    let pool = payloads(case.size, 1024);
    let mark = at.mark();
    let start = mark.at;
    let mut sent = 0u64;
    while sent < max_records && start.elapsed() < duration {
        let payload = &pool[(sent % pool.len() as u64) as usize];
        if offer(
            &p,
            BaseRecord::<(), [u8]>::to(topic).payload(payload.as_slice()),
        )? {
            sent += 1;
        }
        if sent.is_multiple_of(4096) {
            p.poll(Duration::ZERO);
        }
    }
    let records = finish(&p, sent)?;
    let end = at.mark();
    Ok(Produced {
        records,
        bytes: records * case.size as u64,
        seconds: end.at.duration_since(start).as_secs_f64(),
        busy: mark.until(&end),
    })
}

/// Offer one record to librdkafka: `Ok(true)` if it took it, `Ok(false)` if its queue was
/// full (delivery reports are then served for a millisecond; offer the record again).
pub fn offer<K: ToBytes + ?Sized>(
    p: &BaseProducer<Tally>,
    record: BaseRecord<'_, K, [u8]>,
) -> Result<bool> {
    match p.send(record) {
        Ok(()) => Ok(true),
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
            p.poll(Duration::from_millis(1));
            Ok(false)
        }
        Err((e, _)) => Err(format!("send: {e}")),
    }
}

/// Wait for every delivery report of the `sent` records: how many were acknowledged, or the
/// first failure.
pub fn finish(p: &BaseProducer<Tally>, sent: u64) -> Result<u64> {
    p.flush(Duration::from_secs(120))
        .map_err(|e| format!("flush: {e}"))?;
    let tally = p.context();
    if let Some(e) = tally.first_error.lock().unwrap().take() {
        return Err(format!(
            "{} of {sent} records failed, first: {e}",
            tally.failed.load(Ordering::Relaxed)
        ));
    }
    Ok(tally.acked.load(Ordering::Relaxed))
}

/// Have the broker auto-create `topic` (a Metadata request for it) and wait until its
/// partitions have a leader, so topic creation is not part of a timed run.
pub fn await_topic(p: &BaseProducer<Tally>, topic: &str) -> Result<()> {
    let start = Instant::now();
    loop {
        if let Ok(md) = p
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
        {
            let ready = md.topics().iter().any(|t| {
                t.name() == topic
                    && t.error().is_none()
                    && !t.partitions().is_empty()
                    && t.partitions().iter().all(|pt| pt.leader() >= 0)
            });
            if ready {
                return Ok(());
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("topic {topic} has no leader after 60 s"));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// What a consume run read.
pub struct Consumed {
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// Both sides' CPU over those `seconds`.
    pub busy: Busy,
}

/// Read `expected` records of partition 0 of `topic` from the beginning. Time runs from
/// assign() (connection and metadata included) to the last record.
pub fn consume(at: &Endpoint, topic: &str, expected: u64, timeout: Duration) -> Result<Consumed> {
    let mark = at.mark();
    let start = mark.at;
    let c = consumer(&at.bootstrap, topic, 500)?;
    let (mut records, mut bytes) = (0u64, 0u64);
    while records < expected {
        if start.elapsed() > timeout {
            return Err(format!(
                "read {records} of {expected} records within {timeout:?}"
            ));
        }
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(e)) => return Err(format!("consume: {e}")),
            None => {}
        }
    }
    let end = at.mark();
    Ok(Consumed {
        records,
        bytes,
        seconds: end.at.duration_since(start).as_secs_f64(),
        busy: mark.until(&end),
    })
}

/// End-to-end latencies of a fixed-rate run.
pub struct Latencies {
    /// Sorted, nanoseconds.
    pub ns: Vec<u64>,
    pub rate: f64,
    pub sent: u64,
}

impl Latencies {
    /// The `q` quantile (0..1) in milliseconds, nearest rank.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.ns.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.ns.len() as f64).ceil() as usize).clamp(1, self.ns.len());
        self.ns[rank - 1] as f64 / 1e6
    }
}

/// A marker record that makes the topic exist; the consumer skips it.
const MARKER: u64 = u64::MAX;

/// Produce `size`-byte records at `rate` per second for `duration` with acks=all and
/// consume them with assign(). Each payload starts with the time it was *due* to be sent
/// (not when it was), so a producer that falls behind shows as latency rather than hiding it.
pub fn latency(
    bootstrap: &str,
    topic: &str,
    size: usize,
    rate: f64,
    duration: Duration,
) -> Result<Latencies> {
    let p = producer(bootstrap, "all", "none", 1)?;
    p.send(BaseRecord::<(), [u8]>::to(topic).payload(&MARKER.to_be_bytes()[..]))
        .map_err(|(e, _)| format!("send: {e}"))?;
    p.flush(Duration::from_secs(30))
        .map_err(|e| format!("flush: {e}"))?;

    let total = (rate * duration.as_secs_f64()) as u64;
    let clock = Instant::now();
    let consumed = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let reader = {
        let (bootstrap, topic, out) = (bootstrap.to_owned(), topic.to_owned(), consumed.clone());
        thread::spawn(move || -> Result<()> {
            let c = consumer(&bootstrap, &topic, 100)?;
            let deadline = Instant::now() + duration + Duration::from_secs(30);
            let mut got = Vec::with_capacity(total as usize);
            while (got.len() as u64) < total && Instant::now() < deadline {
                match c.poll(Duration::from_millis(50)) {
                    Some(Ok(m)) => {
                        let now = clock.elapsed().as_nanos() as u64;
                        let due = m
                            .payload()
                            .and_then(|b| b.get(..8))
                            .map(|b| u64::from_be_bytes(b.try_into().unwrap()));
                        match due {
                            Some(MARKER) | None => {}
                            Some(due) => got.push(now.saturating_sub(due)),
                        }
                    }
                    Some(Err(e)) => return Err(format!("consume: {e}")),
                    None => {}
                }
            }
            *out.lock().unwrap() = got;
            Ok(())
        })
    };
    // Let the consumer connect and issue its first fetch before the clock starts.
    thread::sleep(Duration::from_millis(1500));

    let pool = payloads(size, 1024);
    let mut buf = vec![0u8; size.max(8)];
    let interval_ns = 1e9 / rate;
    let start_ns = clock.elapsed().as_nanos() as f64;
    let mut sent = 0u64;
    while sent < total {
        let now = clock.elapsed().as_nanos() as f64;
        let due_count = (((now - start_ns) / interval_ns) as u64 + 1).min(total);
        while sent < due_count {
            let due = (start_ns + sent as f64 * interval_ns) as u64;
            let n = buf.len();
            buf.copy_from_slice(&pool[(sent % 1024) as usize][..n]);
            buf[..8].copy_from_slice(&due.to_be_bytes());
            if offer(
                &p,
                BaseRecord::<(), [u8]>::to(topic).payload(buf.as_slice()),
            )? {
                sent += 1;
            }
        }
        p.poll(Duration::ZERO);
        thread::sleep(Duration::from_micros(100));
    }
    p.flush(Duration::from_secs(60))
        .map_err(|e| format!("flush: {e}"))?;
    if let Some(e) = p.context().first_error.lock().unwrap().take() {
        return Err(format!("delivery failed: {e}"));
    }
    reader
        .join()
        .map_err(|_| "consumer thread panicked".to_owned())??;
    let mut ns = std::mem::take(&mut *consumed.lock().unwrap());
    if (ns.len() as u64) < total {
        return Err(format!("consumer saw {} of {total} records", ns.len()));
    }
    ns.sort_unstable();
    Ok(Latencies { ns, rate, sent })
}
