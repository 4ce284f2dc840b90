package dev.samsa.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;

/** Producing a keyed dataset, and reading a topic back with assign + seek (no consumer group). */
final class RecordScenarios {
    private RecordScenarios() {}

    /**
     * The dataset: mostly keyed (50 keys, so each key must stick to one partition),
     * every tenth key null, a few null and empty values, headers absent, single,
     * repeated and null-valued, multi-byte UTF-8, explicit timestamps ts0 + i.
     */
    static ProducerRecord<byte[], byte[]> record(String topic, String tag, int i, long ts0) {
        byte[] key = i % 10 == 9 ? null : Json.utf8("key-" + (i % 50));
        byte[] value;
        if (i % 97 == 13) value = null;
        else if (i % 97 == 14) value = new byte[0];
        else value = Json.utf8("value-" + i + "-" + tag + " \u00fc\u20ac\ud83d\ude00 " + "x".repeat(i % 200));
        List<Header> headers = new ArrayList<>();
        if (i % 5 != 0) {
            headers.add(new RecordHeader("idx", Json.utf8(Integer.toString(i))));
            headers.add(new RecordHeader("tag", Json.utf8(tag)));
        }
        if (i % 5 == 1) {
            headers.add(new RecordHeader("dup", Json.utf8("a")));
            headers.add(new RecordHeader("dup", Json.utf8("b")));
        }
        if (i % 5 == 2) headers.add(new RecordHeader("nullhdr", (byte[]) null));
        return new ProducerRecord<>(topic, null, ts0 + i, key, value, headers);
    }

    static List<List<String>> headers(Iterable<Header> hs) {
        List<List<String>> out = new ArrayList<>();
        for (Header h : hs) out.add(java.util.Arrays.asList(h.key(), Json.b64(h.value())));
        return out;
    }

    static void createTopic(Admin admin, String topic, int partitions, Map<String, String> configs) throws Exception {
        NewTopic nt = new NewTopic(topic, partitions, (short) 1);
        if (configs != null) nt.configs(configs);
        admin.createTopics(Collections.singleton(nt)).all().get();
    }

    /** Sends the records, waits for every acknowledgement, prints one "produced" line each. */
    static List<RecordMetadata> send(KafkaProducer<byte[], byte[]> producer, List<ProducerRecord<byte[], byte[]>> records)
            throws Exception {
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        for (ProducerRecord<byte[], byte[]> r : records) futures.add(producer.send(r));
        producer.flush();
        List<RecordMetadata> acks = new ArrayList<>();
        for (int i = 0; i < records.size(); i++) {
            ProducerRecord<byte[], byte[]> r = records.get(i);
            RecordMetadata md = futures.get(i).get();
            acks.add(md);
            Json.obj("produced").put("i", i).put("p", md.partition()).put("o", md.offset())
                .put("ts", r.timestamp()).put("k", Json.b64(r.key())).put("v", Json.b64(r.value()))
                .put("h", headers(r.headers())).emit();
        }
        return acks;
    }

    /**
     * produce --topic T [--partitions N (creates T)] [--codec C] [--count N]
     *         [--idempotence false|default] [--ts0 MS] [--tag S]
     */
    static void produce(Main.Args args) throws Exception {
        String topic = args.get("topic");
        String codec = args.get("codec", "none");
        int count = args.integer("count", 1000);
        long ts0 = args.along("ts0", System.currentTimeMillis());
        String tag = args.get("tag", codec);
        int partitions = args.integer("partitions", 0);
        if (partitions > 0) {
            try (Admin admin = Clients.admin(args)) {
                createTopic(admin, topic, partitions, null);
            }
        }
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < count; i++) records.add(record(topic, tag, i, ts0));
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(args, codec)) {
            send(producer, records);
        }
    }

    /**
     * produce-keyless --topic T [--linger-ms N] : creates T compacted, sends a keyed, a keyless and a keyed
     * record in one batch, and prints each record's outcome: with KIP-467 the broker names the
     * keyless record, which alone fails as invalid.
     */
    static void produceKeyless(Main.Args args) throws Exception {
        String topic = args.get("topic");
        try (Admin admin = Clients.admin(args)) {
            createTopic(admin, topic, 1, Collections.singletonMap("cleanup.policy", "compact"));
        }
        byte[][] keys = {Json.utf8("a"), null, Json.utf8("c")};
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(args, "none")) {
            // Metadata first, so no send waits for it while an earlier record goes out alone;
            // the linger (--linger-ms) then holds the three for one batch.
            producer.partitionsFor(topic);
            for (byte[] key : keys) futures.add(producer.send(new ProducerRecord<>(topic, 0, key, Json.utf8("v"))));
            producer.flush();
            for (int i = 0; i < keys.length; i++) {
                Json.Obj line = Json.obj("outcome").put("i", i);
                try {
                    line.put("o", futures.get(i).get().offset());
                } catch (java.util.concurrent.ExecutionException e) {
                    line.put("class", e.getCause().getClass().getName())
                        .put("message", String.valueOf(e.getCause().getMessage()));
                }
                line.emit();
            }
        }
    }

    /**
     * consume --topic T --expect N [--from P:O,P:O...] : assign every partition, seek to
     * the given offsets (others to the beginning), poll until N records or the deadline,
     * print each record, then each partition's position next to its end offset.
     */
    static void consume(Main.Args args) throws Exception {
        String topic = args.get("topic");
        int expect = args.integer("expect", 0);
        Map<Integer, Long> from = new HashMap<>();
        for (String pair : args.get("from", "").split(",")) {
            if (pair.isEmpty()) continue;
            String[] po = pair.split(":");
            from.put(Integer.parseInt(po[0]), Long.parseLong(po[1]));
        }
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(args, null)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : consumer.partitionsFor(topic)) tps.add(new TopicPartition(topic, pi.partition()));
            consumer.assign(tps);
            for (TopicPartition tp : tps) {
                Long offset = from.get(tp.partition());
                if (offset == null) consumer.seekToBeginning(Collections.singleton(tp));
                else consumer.seek(tp, offset);
            }
            int got = drain(consumer, expect, Clients.WAIT);
            Map<TopicPartition, Long> ends = consumer.endOffsets(tps);
            Map<TopicPartition, Long> begins = consumer.beginningOffsets(tps);
            for (TopicPartition tp : tps) {
                Json.obj("partition").put("p", tp.partition()).put("position", consumer.position(tp))
                    .put("begin", begins.get(tp)).put("end", ends.get(tp)).emit();
            }
            Json.obj("consumed-total").put("count", got).emit();
        }
    }

    /** Polls until {@code expect} records arrived or {@code wait} passed, printing each; returns the count. */
    static int drain(KafkaConsumer<byte[], byte[]> consumer, int expect, Duration wait) {
        long deadline = System.nanoTime() + wait.toNanos();
        int got = 0;
        while (got < expect && System.nanoTime() < deadline) {
            for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                got++;
                Json.obj("consumed").put("p", r.partition()).put("o", r.offset()).put("ts", r.timestamp())
                    .put("tstype", r.timestampType().name).put("k", Json.b64(r.key()))
                    .put("v", Json.b64(r.value())).put("h", headers(r.headers())).emit();
            }
        }
        return got;
    }
}
