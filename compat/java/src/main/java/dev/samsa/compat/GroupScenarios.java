package dev.samsa.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

/** Consumer-group scenarios: subscribe + commit, and the AdminClient's group operations. */
final class GroupScenarios {
    private GroupScenarios() {}

    static void produce(Main.Args args, String topic, int from, int to, Integer partition) throws Exception {
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        long ts = System.currentTimeMillis();
        for (int i = from; i < to; i++) {
            ProducerRecord<byte[], byte[]> r = RecordScenarios.record(topic, "group", i, ts);
            Integer p = partition == null ? null : (partition < 0 ? i % -partition : partition);
            records.add(new ProducerRecord<>(topic, p, r.timestamp(), r.key(), r.value(), r.headers()));
        }
        try (KafkaProducer<byte[], byte[]> producer = Clients.producer(args, "none")) {
            RecordScenarios.send(producer, records);
        }
    }

    static Map<String, Long> committed(KafkaConsumer<byte[], byte[]> consumer, String topic, int partitions) {
        Set<TopicPartition> tps = new HashSet<>();
        for (int p = 0; p < partitions; p++) tps.add(new TopicPartition(topic, p));
        return offsets(consumer.committed(tps));
    }

    static Map<String, Long> offsets(Map<TopicPartition, OffsetAndMetadata> m) {
        Map<String, Long> out = new LinkedHashMap<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : m.entrySet()) {
            if (e.getValue() != null) out.put(Integer.toString(e.getKey().partition()), e.getValue().offset());
        }
        return out;
    }

    /**
     * group-consume --topic T --group G [--count N]: N records into 3 partitions, one
     * subscribed consumer reads them all and commits; 3 more records; a second consumer
     * in the same group must start from the commit and read exactly those 3.
     */
    static void groupConsume(Main.Args args) throws Exception {
        String topic = args.get("topic");
        String group = args.get("group");
        int count = args.integer("count", 300);
        try (Admin admin = Clients.admin(args)) {
            RecordScenarios.createTopic(admin, topic, 3, null);
        }
        produce(args, topic, 0, count, null);
        for (int phase = 1; phase <= 2; phase++) {
            int expect = phase == 1 ? count : 3;
            if (phase == 2) produce(args, topic, count, count + 3, null);
            Json.obj("phase").put("n", phase).emit();
            try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(args, group)) {
                consumer.subscribe(Collections.singleton(topic));
                int got = RecordScenarios.drain(consumer, expect, Clients.WAIT);
                // Nothing beyond what is expected may arrive.
                got += RecordScenarios.drain(consumer, Integer.MAX_VALUE, Duration.ofSeconds(1));
                consumer.commitSync();
                Json.obj("committed").put("phase", phase).put("count", got)
                    .put("offsets", committed(consumer, topic, 3)).emit();
            }
        }
    }

    /**
     * group-member --topic T --group G [--group-protocol P]: one member that runs until its
     * stdin closes. Each poll's records are committed before the next poll; it reports
     * {"ev":"member","epoch":E,"partitions":[...]} whenever its generation (the member epoch
     * under the consumer protocol) or its assignment changes, and {"ev":"records","r":[[p,o],...]}
     * for what each poll read.
     */
    static void groupMember(Main.Args args) throws Exception {
        String topic = args.get("topic");
        String group = args.get("group");
        Thread stdin = new Thread(() -> {
            try {
                while (System.in.read() >= 0) { }
            } catch (java.io.IOException e) {
                // closed either way
            }
        });
        stdin.setDaemon(true);
        stdin.start();
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(args, group)) {
            consumer.subscribe(Collections.singleton(topic));
            int lastEpoch = Integer.MIN_VALUE;
            Set<Integer> lastParts = null;
            while (stdin.isAlive()) {
                org.apache.kafka.clients.consumer.ConsumerRecords<byte[], byte[]> polled =
                    consumer.poll(Duration.ofMillis(200));
                if (!polled.isEmpty()) {
                    List<Object> read = new ArrayList<>();
                    for (org.apache.kafka.clients.consumer.ConsumerRecord<byte[], byte[]> r : polled) {
                        read.add(List.of(r.partition(), r.offset()));
                    }
                    consumer.commitSync();
                    Json.obj("records").put("r", read).emit();
                }
                int epoch = consumer.groupMetadata().generationId();
                Set<Integer> parts = new java.util.TreeSet<>();
                for (TopicPartition tp : consumer.assignment()) parts.add(tp.partition());
                if (epoch != lastEpoch || !parts.equals(lastParts)) {
                    Json.obj("member").put("epoch", epoch).put("partitions", new ArrayList<>(parts)).emit();
                    lastEpoch = epoch;
                    lastParts = parts;
                }
            }
        }
    }

    /**
     * group-admin --topic T --group G: a group commits 5 records of each of 2 partitions,
     * then list, describe (with and without its member), list/alter/delete its offsets,
     * delete it.
     */
    static void groupAdmin(Main.Args args) throws Exception {
        String topic = args.get("topic");
        String group = args.get("group");
        try (Admin admin = Clients.admin(args)) {
            RecordScenarios.createTopic(admin, topic, 2, null);
            produce(args, topic, 0, 10, -2);
            try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(args, group)) {
                consumer.subscribe(Collections.singleton(topic));
                int got = RecordScenarios.drain(consumer, 10, Clients.WAIT);
                consumer.commitSync();
                Json.obj("consumed-total").put("count", got).emit();
                Json.obj("described-active").put("group", describe(admin, group)).emit();
            }
            Json.obj("listed").put("present", Clients.waitFor(() -> listGroups(admin).contains(group))).emit();
            Clients.waitFor(() -> {
                Map<String, Object> d = describe(admin, group);
                return d != null && ((List<?>) d.get("members")).isEmpty();
            });
            Json.obj("described-empty").put("group", describe(admin, group)).emit();
            Json.obj("offsets").put("offsets", groupOffsets(admin, group)).emit();

            TopicPartition p0 = new TopicPartition(topic, 0);
            TopicPartition p1 = new TopicPartition(topic, 1);
            admin.alterConsumerGroupOffsets(group, Collections.singletonMap(p0, new OffsetAndMetadata(2))).all().get();
            Json.obj("offsets-altered").put("offsets", groupOffsets(admin, group)).emit();
            admin.deleteConsumerGroupOffsets(group, Collections.singleton(p1)).all().get();
            Json.obj("offsets-deleted").put("offsets", groupOffsets(admin, group)).emit();
            admin.deleteConsumerGroups(Collections.singleton(group)).all().get();
            Json.obj("group-deleted").put("gone", Clients.waitFor(() -> !listGroups(admin).contains(group))).emit();
        }
    }

    // listConsumerGroups is deprecated in 4.x (listGroups replaces it) but is what 3.0 has.
    @SuppressWarnings({"deprecation", "removal"})
    static Set<String> listGroups(Admin admin) {
        Set<String> out = new HashSet<>();
        try {
            for (ConsumerGroupListing l : admin.listConsumerGroups().all().get()) out.add(l.groupId());
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
        return out;
    }

    static Map<String, Object> describe(Admin admin, String group) {
        ConsumerGroupDescription d;
        try {
            d = admin.describeConsumerGroups(Collections.singleton(group)).all().get().get(group);
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
        List<Object> members = new ArrayList<>();
        for (MemberDescription m : d.members()) {
            List<Integer> parts = new ArrayList<>();
            for (TopicPartition tp : m.assignment().topicPartitions()) parts.add(tp.partition());
            Collections.sort(parts);
            members.add(parts);
        }
        Map<String, Object> out = new HashMap<>();
        out.put("id", d.groupId());
        out.put("simple", d.isSimpleConsumerGroup());
        out.put("members", members);
        return out;
    }

    static Map<String, Long> groupOffsets(Admin admin, String group) throws Exception {
        return offsets(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get());
    }
}
