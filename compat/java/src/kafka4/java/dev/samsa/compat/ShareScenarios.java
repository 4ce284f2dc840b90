package dev.samsa.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ShareGroupDescription;
import org.apache.kafka.clients.admin.ShareMemberDescription;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Share groups (KIP-932) through the Java {@code KafkaShareConsumer}, which exists only in
 * kafka-clients 4.x: this source set is compiled for the kafka-4 profile alone, and
 * {@link Main} registers it when the class is there.
 *
 * <pre>
 * share-consume --topic T --group G [--create PARTITIONS] [--consumers N] [--mode implicit|explicit]
 *               [--plan accept,release/accept,reject,release,late/accept...] [--late-ms MS] [--limit N]
 *               [--produce N] [--pre-produce N] [--expect N] [--earliest true] [--commit true]
 *               [--hold true] [--sentinel true] [--max-poll-records N] [--acquire-mode record_limit]
 *               [--process-ms MS]
 * </pre>
 *
 * Records are keyed {@code r-I} (the test's records), {@code m-P-J} (markers produced until
 * one is read from partition P, since reading starts at the end of the log when the
 * share-partition is first read: {@code share.auto.offset.reset} latest) and {@code s-P}
 * (a sentinel after the test's records: a record still available before it would be
 * delivered with or before it). Each delivery prints a {@code share-record} line with the
 * consumer, partition, offset, key, delivery count and the acknowledgement given.
 * {@code --plan} says how record I is acknowledged at each delivery (its I-th entry, one
 * acknowledgement per delivery separated by '/', the last one repeated; accept when absent;
 * {@code late} accepts after {@code --late-ms}, once the lock has expired);
 * the test's records are awaited until each one's last acknowledgement is final (a release
 * is final at the delivery-count limit, {@code --limit}). {@code --hold} leaves the test's
 * records acquired and never ends (the test kills the process).
 */
final class ShareScenarios {
    private ShareScenarios() {}

    static void register(Map<String, Main.Scenario> scenarios) {
        scenarios.put("share-consume", ShareScenarios::consume);
    }

    /** One delivery as observed by a consumer. */
    static final class Delivery {
        final int consumer;
        final int partition;
        final long offset;
        final String key;
        final int count;
        final String ack;

        Delivery(int consumer, ConsumerRecord<byte[], byte[]> r, String ack) {
            this.consumer = consumer;
            this.partition = r.partition();
            this.offset = r.offset();
            this.key = r.key() == null ? null : new String(r.key(), java.nio.charset.StandardCharsets.UTF_8);
            this.count = r.deliveryCount().map(Short::intValue).orElse(-1);
            this.ack = ack;
        }
    }

    /** What the scenario's consumers saw, shared between their threads and the main one. */
    static final class Seen {
        final List<Delivery> deliveries = Collections.synchronizedList(new ArrayList<>());

        List<Delivery> snapshot() {
            synchronized (deliveries) {
                return new ArrayList<>(deliveries);
            }
        }

        boolean has(String key) {
            for (Delivery d : snapshot()) if (key.equals(d.key)) return true;
            return false;
        }
    }

    /**
     * How a delivery is acknowledged: an AcknowledgeType's name, {@code HOLD} (left acquired)
     * or {@code LATE} (accepted once the lock has expired).
     */
    interface Decide {
        String decide(ConsumerRecord<byte[], byte[]> r, String key);
    }

    /** One consumer on a thread of its own (a KafkaShareConsumer is not thread-safe). */
    static final class Member extends Thread {
        final int idx;
        final Properties props;
        final String topic;
        final Decide decide;
        final boolean commit;
        final Seen seen;
        volatile boolean stop;
        volatile Throwable failure;

        final long processMs;
        final long lateMs;

        Member(int idx, Properties props, String topic, Decide decide, boolean commit, Seen seen, long processMs,
               long lateMs) {
            super("share-member-" + idx);
            setDaemon(true);
            this.idx = idx;
            this.props = props;
            this.topic = topic;
            this.decide = decide;
            this.commit = commit;
            this.seen = seen;
            this.processMs = processMs;
            this.lateMs = lateMs;
        }

        @Override
        public void run() {
            try (KafkaShareConsumer<byte[], byte[]> consumer = new KafkaShareConsumer<>(props)) {
                consumer.subscribe(Collections.singleton(topic));
                boolean holding = false;
                boolean implicit = props.getProperty("share.acknowledgement.mode").equals("implicit");
                boolean lockReported = false;
                while (!stop) {
                    if (holding) {
                        // Another poll would acknowledge nothing and fail: records are left acquired.
                        Thread.sleep(50);
                        continue;
                    }
                    int n = 0;
                    for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                        n++;
                        String key = r.key() == null ? null : new String(r.key(), java.nio.charset.StandardCharsets.UTF_8);
                        String given;
                        if (implicit) {
                            given = "implicit";
                        } else {
                            given = decide.decide(r, key);
                            if (given.equals("HOLD")) {
                                holding = true;
                            } else if (given.equals("LATE")) {
                                Thread.sleep(lateMs);
                                consumer.acknowledge(r, AcknowledgeType.ACCEPT);
                            } else {
                                consumer.acknowledge(r, AcknowledgeType.valueOf(given));
                            }
                        }
                        Delivery d = new Delivery(idx, r, given);
                        Json.obj("share-record").put("c", idx).put("p", d.partition).put("o", d.offset)
                            .put("k", d.key).put("dc", d.count).put("ack", d.ack).emit();
                        seen.deliveries.add(d);
                    }
                    if (n > 0 && !lockReported) {
                        lockReported = true;
                        Json.obj("lock-timeout").put("c", idx)
                            .put("ms", consumer.acquisitionLockTimeoutMs().orElse(null)).emit();
                    }
                    // --process-ms: hold what this poll acquired a while, as an application working on it.
                    if (n > 0 && processMs > 0) Thread.sleep(processMs);
                    if (commit && n > 0 && !holding) {
                        Map<String, String> results = new java.util.TreeMap<>();
                        for (Map.Entry<TopicIdPartition, Optional<KafkaException>> e : consumer.commitSync().entrySet()) {
                            results.put(Integer.toString(e.getKey().partition()),
                                e.getValue().map(x -> x.getClass().getName()).orElse(null));
                        }
                        Json.obj("commit").put("c", idx).put("results", results).emit();
                    }
                }
            } catch (Throwable t) {
                failure = t;
            }
        }
    }

    static Properties consumerProps(Main.Args args, int idx) {
        Properties p = Clients.common(args);
        p.put("client.id", "samsa-compat-share-" + idx);
        p.put("group.id", args.get("group"));
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        p.put("share.acknowledgement.mode", args.get("mode", "explicit"));
        // record_limit: each fetch acquires at most max.poll.records records (ShareFetch v2),
        // so that several consumers of one partition each get some.
        p.put("share.acquire.mode", args.get("acquire-mode", "batch_optimized"));
        p.put("max.poll.records", args.get("max-poll-records", "500"));
        return p;
    }

    static void send(KafkaProducer<byte[], byte[]> producer, String topic, int partition, String key) throws Exception {
        producer.send(new ProducerRecord<>(topic, partition, Json.utf8(key), Json.utf8("value-" + key))).get();
    }

    static void consume(Main.Args args) throws Exception {
        String topic = args.get("topic");
        String group = args.get("group");
        int create = args.integer("create", 0);
        int consumers = args.integer("consumers", 1);
        int produce = args.integer("produce", 0);
        int preProduce = args.integer("pre-produce", 0);
        int expect = args.integer("expect", Math.max(produce, preProduce));
        int limit = args.integer("limit", Integer.MAX_VALUE);
        boolean hold = Boolean.parseBoolean(args.get("hold", "false"));
        boolean commit = Boolean.parseBoolean(args.get("commit", "false"));
        String[] plan = args.get("plan", "").isEmpty() ? new String[0] : args.get("plan").split(",");
        long lateMs = args.along("late-ms", 0);
        int partitions;

        try (Admin admin = Clients.admin(args);
             KafkaProducer<byte[], byte[]> producer = Clients.producer(args, "none")) {
            if (create > 0) RecordScenarios.createTopic(admin, topic, create, null);
            partitions = Clients.describeTopics(admin, Collections.singleton(topic)).get(topic).partitions().size();
            if (Boolean.parseBoolean(args.get("earliest", "false"))) {
                ConfigResource res = new ConfigResource(ConfigResource.Type.GROUP, group);
                AlterConfigOp op = new AlterConfigOp(new ConfigEntry("share.auto.offset.reset", "earliest"),
                    AlterConfigOp.OpType.SET);
                admin.incrementalAlterConfigs(Map.of(res, List.of(op))).all().get();
                Json.obj("group-config").put("share.auto.offset.reset", "earliest").emit();
            }
            for (int i = 0; i < preProduce; i++) send(producer, topic, i % partitions, "r-" + i);

            Seen seen = new Seen();
            // How many times each test record was delivered, to pick the acknowledgement.
            Map<String, Integer> deliveries = new ConcurrentHashMap<>();
            Decide decide = (r, key) -> {
                if (key == null || !key.startsWith("r-")) return "ACCEPT";
                if (hold) return "HOLD";
                int n = deliveries.merge(key, 1, Integer::sum);
                int i = Integer.parseInt(key.substring(2));
                if (i >= plan.length) return "ACCEPT";
                String[] acks = plan[i].split("/");
                return acks[Math.min(n, acks.length) - 1].toUpperCase();
            };
            List<Member> members = new ArrayList<>();
            for (int c = 0; c < consumers; c++) {
                Member m = new Member(c, consumerProps(args, c), topic, decide, commit, seen,
                    args.along("process-ms", 0), lateMs);
                members.add(m);
                m.start();
            }
            try {
                if (consumers > 1) awaitAssignment(admin, group, consumers, partitions);
                if (produce > 0) warmUp(producer, topic, partitions, seen, members);
                // In one batch per partition, so that one fetch acquires them all (--hold).
                List<java.util.concurrent.Future<?>> sent = new ArrayList<>();
                for (int i = 0; i < produce; i++) {
                    String key = "r-" + i;
                    sent.add(producer.send(new ProducerRecord<>(topic, i % partitions, Json.utf8(key), Json.utf8("value-" + key))));
                }
                producer.flush();
                for (java.util.concurrent.Future<?> f : sent) f.get();
                // Every test record delivered, and each one's last delivery final.
                await(members, () -> {
                    Map<String, Delivery> last = new HashMap<>();
                    for (Delivery d : seen.snapshot()) if (d.key != null && d.key.startsWith("r-")) last.put(d.key, d);
                    if (last.size() < expect) return false;
                    for (Delivery d : last.values()) {
                        // Released, or left to time out: it comes back until the limit.
                        if ((d.ack.equals("RELEASE") || d.ack.equals("LATE")) && d.count < limit) return false;
                    }
                    return true;
                }, "every record delivered");
                if (hold) {
                    Json.obj("held").emit();
                    Thread.sleep(Long.MAX_VALUE);
                }
                if (Boolean.parseBoolean(args.get("sentinel", "false"))) {
                    for (int p = 0; p < partitions; p++) send(producer, topic, p, "s-" + p);
                    await(members, () -> {
                        for (int p = 0; p < partitions; p++) if (!seen.has("s-" + p)) return false;
                        return true;
                    }, "the sentinels delivered");
                }
            } finally {
                for (Member m : members) m.stop = true;
                for (Member m : members) m.join(30_000);
            }
            for (Member m : members) if (m.failure != null) throw new RuntimeException("consumer " + m.idx, m.failure);
        }
    }

    /**
     * Markers into each partition until one from each has been read: reading has started
     * there. Then the last marker sent to each is awaited too, so that none arrives later
     * among the test's records.
     */
    static void warmUp(KafkaProducer<byte[], byte[]> producer, String topic, int partitions, Seen seen,
                       List<Member> members) throws Exception {
        long deadline = System.nanoTime() + Clients.WAIT.toNanos();
        Map<Integer, String> lastSent = new HashMap<>();
        for (int j = 0; ; j++) {
            Set<Integer> read = new TreeSet<>();
            Set<String> keys = new java.util.HashSet<>();
            for (Delivery d : seen.snapshot()) {
                if (d.key != null && d.key.startsWith("m-")) {
                    read.add(d.partition);
                    keys.add(d.key);
                }
            }
            if (read.size() == partitions && keys.containsAll(lastSent.values())) return;
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("markers not read from all " + partitions + " partitions: " + keys);
            }
            checkMembers(members);
            for (int p = 0; p < partitions; p++) {
                if (read.contains(p)) continue;
                String key = "m-" + p + "-" + j;
                send(producer, topic, p, key);
                lastSent.put(p, key);
            }
            Thread.sleep(300);
        }
    }

    /** Waits until the group has n members, each assigned at least one partition, all of them covered. */
    static void awaitAssignment(Admin admin, String group, int n, int partitions) throws Exception {
        List<List<Integer>> last = null;
        long deadline = System.nanoTime() + Clients.WAIT.toNanos();
        while (System.nanoTime() < deadline) {
            ShareGroupDescription g;
            try {
                g = admin.describeShareGroups(List.of(group)).describedGroups().get(group).get();
            } catch (java.util.concurrent.ExecutionException e) {
                // Kafka: GROUP_ID_NOT_FOUND until the first member has joined.
                if (!(e.getCause() instanceof org.apache.kafka.common.errors.GroupIdNotFoundException)) throw e;
                Thread.sleep(200);
                continue;
            }
            List<List<Integer>> assignment = new ArrayList<>();
            Set<Integer> covered = new TreeSet<>();
            boolean reconciled = true;
            for (ShareMemberDescription m : g.members()) {
                List<Integer> ps = new ArrayList<>();
                for (TopicPartition tp : m.assignment().topicPartitions()) ps.add(tp.partition());
                Collections.sort(ps);
                assignment.add(ps);
                covered.addAll(ps);
                reconciled &= m.memberEpoch() == g.targetAssignmentEpoch() && !ps.isEmpty();
            }
            assignment.sort((a, b) -> a.toString().compareTo(b.toString()));
            last = assignment;
            if (assignment.size() == n && reconciled && covered.size() == partitions) {
                Json.obj("assignment").put("members", assignment).emit();
                return;
            }
            Thread.sleep(200);
        }
        throw new IllegalStateException("group " + group + " not assigned among " + n + " members: " + last);
    }

    static void checkMembers(List<Member> members) {
        for (Member m : members) if (m.failure != null) throw new RuntimeException("consumer " + m.idx, m.failure);
    }

    static void await(List<Member> members, java.util.function.BooleanSupplier cond, String what) throws Exception {
        long deadline = System.nanoTime() + Clients.WAIT.toNanos();
        while (!cond.getAsBoolean()) {
            checkMembers(members);
            if (System.nanoTime() > deadline) throw new IllegalStateException("timed out waiting for " + what);
            Thread.sleep(50);
        }
    }
}
