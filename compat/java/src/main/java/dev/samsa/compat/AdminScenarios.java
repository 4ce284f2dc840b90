package dev.samsa.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DeletedRecords;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;

/** AdminClient scenarios: topics, cluster, configs, offsets lookup, record deletion. */
final class AdminScenarios {
    private AdminScenarios() {}

    static List<Map<String, Object>> partitions(TopicDescription d) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (TopicPartitionInfo p : d.partitions()) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("p", p.partition());
            m.put("leader", p.leader() == null ? null : p.leader().id());
            m.put("replicas", ids(p.replicas()));
            m.put("isr", ids(p.isr()));
            out.add(m);
        }
        return out;
    }

    static List<Integer> ids(Collection<Node> nodes) {
        List<Integer> out = new ArrayList<>();
        for (Node n : nodes) out.add(n.id());
        return out;
    }

    static int partitionCount(Admin admin, String topic) {
        try {
            return Clients.describeTopics(admin, Collections.singleton(topic)).get(topic).partitions().size();
        } catch (Exception e) {
            return -1;
        }
    }

    static boolean listed(Admin admin, String topic) {
        try {
            return admin.listTopics().names().get().contains(topic);
        } catch (Exception e) {
            return true;
        }
    }

    /** topics --topic T: validate-only create, create, create again, list, describe, grow, shrink, delete twice. */
    static void topics(Main.Args args) throws Exception {
        String topic = args.get("topic");
        try (Admin admin = Clients.admin(args)) {
            admin.createTopics(Collections.singleton(new NewTopic(topic, 3, (short) 1)),
                new CreateTopicsOptions().validateOnly(true)).all().get();
            Json.obj("validated").put("listed", listed(admin, topic)).emit();

            RecordScenarios.createTopic(admin, topic, 2, Collections.singletonMap("retention.ms", "3600000"));
            Json.obj("created").emit();
            Json.obj("create-again")
                .put("error", Main.failureOf(() -> RecordScenarios.createTopic(admin, topic, 2, null))).emit();
            Json.obj("listed").put("present", Clients.waitFor(() -> listed(admin, topic))).emit();
            TopicDescription d = Clients.describeTopics(admin, Collections.singleton(topic)).get(topic);
            Json.obj("described").put("name", d.name()).put("internal", d.isInternal())
                .put("partitions", partitions(d)).emit();

            admin.createPartitions(Collections.singletonMap(topic, NewPartitions.increaseTo(4))).all().get();
            boolean grown = Clients.waitFor(() -> partitionCount(admin, topic) == 4);
            Json.obj("grown").put("ok", grown).put("partitions",
                partitions(Clients.describeTopics(admin, Collections.singleton(topic)).get(topic))).emit();
            Json.obj("shrink").put("error", Main.failureOf(() -> admin.createPartitions(
                Collections.singletonMap(topic, NewPartitions.increaseTo(2))).all().get()))
                .put("partitions", partitionCount(admin, topic)).emit();

            admin.deleteTopics(Collections.singleton(topic)).all().get();
            Json.obj("deleted").put("gone", Clients.waitFor(() -> !listed(admin, topic))).emit();
            Json.obj("delete-again").put("error", Main.failureOf(() ->
                admin.deleteTopics(Collections.singleton(topic)).all().get())).emit();
        }
    }

    /** cluster: what describeCluster says. */
    static void cluster(Main.Args args) throws Exception {
        try (Admin admin = Clients.admin(args)) {
            DescribeClusterResult r = admin.describeCluster();
            List<Map<String, Object>> nodes = new ArrayList<>();
            for (Node n : r.nodes().get()) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("id", n.id());
                m.put("host", n.host());
                m.put("port", n.port());
                nodes.add(m);
            }
            Node controller = r.controller().get();
            Json.obj("cluster").put("id", r.clusterId().get()).put("nodes", nodes)
                .put("controller", controller == null ? null : controller.id()).emit();
        }
    }

    static Map<String, Object> entries(Config config) {
        Map<String, Object> out = new LinkedHashMap<>();
        for (ConfigEntry e : config.entries()) {
            out.put(e.name(), Arrays.asList(e.value(), e.source().name(), e.isReadOnly(), e.isSensitive()));
        }
        return out;
    }

    /** configs --topic T: a topic created with overrides, a missing topic, and the broker itself. */
    static void configs(Main.Args args) throws Exception {
        String topic = args.get("topic");
        try (Admin admin = Clients.admin(args)) {
            Map<String, String> overrides = new HashMap<>();
            overrides.put("retention.ms", "123456789");
            overrides.put("max.message.bytes", "500000");
            RecordScenarios.createTopic(admin, topic, 1, overrides);
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Config cfg = admin.describeConfigs(Collections.singleton(res)).all().get().get(res);
            Json.obj("topic-config").put("entries", entries(cfg)).emit();

            ConfigResource missing = new ConfigResource(ConfigResource.Type.TOPIC, topic + "-missing");
            Json.obj("missing-topic-config").put("error", Main.failureOf(() ->
                admin.describeConfigs(Collections.singleton(missing)).all().get())).emit();

            Node node = admin.describeCluster().nodes().get().iterator().next();
            ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, Integer.toString(node.id()));
            Config bcfg = admin.describeConfigs(Collections.singleton(broker)).all().get().get(broker);
            Json.obj("broker-config").put("node", node.id()).put("entries", entries(bcfg)).emit();
        }
    }

    /** alter-configs --topic T: incrementalAlterConfigs SET then DELETE, each read back. */
    static void alterConfigs(Main.Args args) throws Exception {
        String topic = args.get("topic");
        try (Admin admin = Clients.admin(args)) {
            RecordScenarios.createTopic(admin, topic, 1, Collections.singletonMap("retention.ms", "3600000"));
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            alter(admin, res, new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET));
            Json.obj("after-set").put("retention.ms", waitForValue(admin, res, "retention.ms", "7200000")).emit();
            alter(admin, res, new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE));
            String dflt = valueOf(admin, res, "retention.ms");
            Clients.waitFor(() -> !"7200000".equals(valueOf(admin, res, "retention.ms")));
            Json.obj("after-delete").put("retention.ms", valueOf(admin, res, "retention.ms"))
                .put("source", sourceOf(admin, res, "retention.ms")).put("first-read", dflt).emit();
        }
    }

    static void alter(Admin admin, ConfigResource res, AlterConfigOp op) throws Exception {
        Map<ConfigResource, Collection<AlterConfigOp>> ops = new HashMap<>();
        ops.put(res, Collections.singletonList(op));
        admin.incrementalAlterConfigs(ops).all().get();
    }

    static String waitForValue(Admin admin, ConfigResource res, String name, String want) throws Exception {
        Clients.waitFor(() -> want.equals(valueOf(admin, res, name)));
        return valueOf(admin, res, name);
    }

    static String valueOf(Admin admin, ConfigResource res, String name) {
        ConfigEntry e = entry(admin, res, name);
        return e == null ? null : e.value();
    }

    static String sourceOf(Admin admin, ConfigResource res, String name) {
        ConfigEntry e = entry(admin, res, name);
        return e == null ? null : e.source().name();
    }

    static ConfigEntry entry(Admin admin, ConfigResource res, String name) {
        try {
            return admin.describeConfigs(Collections.singleton(res)).all().get().get(res).get(name);
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }

    /**
     * list-offsets --topic T --ts0 MS: ten records in partition 0 (the first five one batch
     * each, the last five in one batch) with timestamps ts0 + 1000*i except record 6 at
     * ts0 + 100000; partition 1 stays empty. Then every kind of offset lookup, through the
     * AdminClient and through the consumer.
     */
    static void listOffsets(Main.Args args) throws Exception {
        String topic = args.get("topic");
        long ts0 = args.along("ts0", System.currentTimeMillis() - 3_600_000);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (Admin admin = Clients.admin(args)) {
            RecordScenarios.createTopic(admin, topic, 2, null);
            try (KafkaProducer<byte[], byte[]> producer = Clients.producer(args, "none")) {
                List<ProducerRecord<byte[], byte[]>> batch = new ArrayList<>();
                for (int i = 0; i < 10; i++) {
                    long ts = i == 6 ? ts0 + 100_000 : ts0 + 1000L * i;
                    ProducerRecord<byte[], byte[]> r =
                        new ProducerRecord<>(topic, 0, ts, Json.utf8("k" + i), Json.utf8("v" + i));
                    if (i < 5) RecordScenarios.send(producer, Collections.singletonList(r));
                    else batch.add(r);
                }
                RecordScenarios.send(producer, batch);
            }
            Map<String, OffsetSpec> specs = new LinkedHashMap<>();
            specs.put("earliest", OffsetSpec.earliest());
            specs.put("latest", OffsetSpec.latest());
            specs.put("max-timestamp", OffsetSpec.maxTimestamp());
            specs.put("ts+3500", OffsetSpec.forTimestamp(ts0 + 3500));
            specs.put("ts+50000", OffsetSpec.forTimestamp(ts0 + 50_000));
            specs.put("ts+0", OffsetSpec.forTimestamp(ts0));
            specs.put("ts-future", OffsetSpec.forTimestamp(ts0 + 200_000));
            for (Map.Entry<String, OffsetSpec> s : specs.entrySet()) {
                for (TopicPartition tp : Arrays.asList(p0, p1)) {
                    ListOffsetsResultInfo info =
                        admin.listOffsets(Collections.singletonMap(tp, s.getValue())).partitionResult(tp).get();
                    Json.obj("admin-offset").put("spec", s.getKey()).put("p", tp.partition())
                        .put("offset", info.offset()).put("ts", info.timestamp()).emit();
                }
            }
        }
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(args, null)) {
            List<TopicPartition> tps = Arrays.asList(p0, p1);
            Map<TopicPartition, Long> begins = consumer.beginningOffsets(tps);
            Map<TopicPartition, Long> ends = consumer.endOffsets(tps);
            Map<TopicPartition, Long> query = new HashMap<>();
            query.put(p0, ts0 + 3500);
            query.put(p1, ts0 + 3500);
            Map<TopicPartition, OffsetAndTimestamp> byTime = consumer.offsetsForTimes(query);
            for (TopicPartition tp : tps) {
                OffsetAndTimestamp at = byTime.get(tp);
                Json.obj("consumer-offset").put("p", tp.partition()).put("begin", begins.get(tp))
                    .put("end", ends.get(tp)).put("ts+3500", at == null ? null : Arrays.asList(at.offset(), at.timestamp()))
                    .emit();
            }
        }
    }

    /** delete-records --topic T: ten records, delete before offset 4, then look and read from the start. */
    static void deleteRecords(Main.Args args) throws Exception {
        String topic = args.get("topic");
        TopicPartition p0 = new TopicPartition(topic, 0);
        try (Admin admin = Clients.admin(args)) {
            RecordScenarios.createTopic(admin, topic, 1, null);
            try (KafkaProducer<byte[], byte[]> producer = Clients.producer(args, "none")) {
                List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
                for (int i = 0; i < 10; i++) records.add(RecordScenarios.record(topic, "del", i, System.currentTimeMillis()));
                RecordScenarios.send(producer, records);
            }
            DeletedRecords dr = admin.deleteRecords(Collections.singletonMap(p0, RecordsToDelete.beforeOffset(4)))
                .lowWatermarks().get(p0).get();
            long earliest = admin.listOffsets(Collections.singletonMap(p0, OffsetSpec.earliest()))
                .partitionResult(p0).get().offset();
            Json.obj("deleted").put("low-watermark", dr.lowWatermark()).put("earliest", earliest).emit();
        }
        try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(args, null)) {
            consumer.assign(Collections.singleton(p0));
            consumer.seekToBeginning(Collections.singleton(p0));
            int got = RecordScenarios.drain(consumer, 6, Duration.ofSeconds(30));
            Json.obj("read-after-delete").put("count", got).put("position", consumer.position(p0)).emit();
        }
    }

    /** acls --topic T: create a literal topic ACL and a prefixed group ACL, describe, delete one, describe again. */
    static void acls(Main.Args args) throws Exception {
        String topic = args.get("topic");
        org.apache.kafka.common.resource.ResourcePattern topicPattern = new org.apache.kafka.common.resource.ResourcePattern(
            org.apache.kafka.common.resource.ResourceType.TOPIC, topic, org.apache.kafka.common.resource.PatternType.LITERAL);
        org.apache.kafka.common.resource.ResourcePattern groupPattern = new org.apache.kafka.common.resource.ResourcePattern(
            org.apache.kafka.common.resource.ResourceType.GROUP, topic + "-", org.apache.kafka.common.resource.PatternType.PREFIXED);
        org.apache.kafka.common.acl.AccessControlEntry read = new org.apache.kafka.common.acl.AccessControlEntry(
            "User:alice", "*", org.apache.kafka.common.acl.AclOperation.READ, org.apache.kafka.common.acl.AclPermissionType.ALLOW);
        org.apache.kafka.common.acl.AccessControlEntry deny = new org.apache.kafka.common.acl.AccessControlEntry(
            "User:mallory", "*", org.apache.kafka.common.acl.AclOperation.READ, org.apache.kafka.common.acl.AclPermissionType.DENY);
        try (Admin admin = Clients.admin(args)) {
            admin.createAcls(Arrays.asList(
                new org.apache.kafka.common.acl.AclBinding(topicPattern, read),
                new org.apache.kafka.common.acl.AclBinding(groupPattern, deny))).all().get();
            emitAcls(admin, "described");
            Collection<org.apache.kafka.common.acl.AclBinding> deleted = admin.deleteAcls(Collections.singleton(
                new org.apache.kafka.common.acl.AclBindingFilter(topicPattern.toFilter(), read.toFilter()))).all().get();
            Json.obj("deleted").put("count", deleted.size()).emit();
            emitAcls(admin, "after-delete");
        }
    }

    static void emitAcls(Admin admin, String event) throws Exception {
        List<String> bindings = new ArrayList<>();
        for (org.apache.kafka.common.acl.AclBinding b : admin.describeAcls(org.apache.kafka.common.acl.AclBindingFilter.ANY).values().get()) {
            bindings.add(b.pattern().resourceType() + ":" + b.pattern().patternType() + ":" + b.pattern().name() + ":"
                + b.entry().principal() + ":" + b.entry().operation() + ":" + b.entry().permissionType());
        }
        Collections.sort(bindings);
        Json.obj(event).put("bindings", bindings).emit();
    }
}
