package dev.samsa.compat;

import java.lang.reflect.Method;
import java.time.Duration;
import java.util.Collection;
import java.util.Map;
import java.util.Properties;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeTopicsResult;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/** Client construction shared by the scenarios, and the few calls whose API differs between 3.0 and 4.x. */
final class Clients {
    private Clients() {}

    static final Duration WAIT = Duration.ofSeconds(60);

    static Properties common(Main.Args args) {
        Properties p = new Properties();
        p.put("bootstrap.servers", args.get("bootstrap"));
        p.put("client.id", "samsa-compat-java");
        p.put("request.timeout.ms", "15000");
        return p;
    }

    static Admin admin(Main.Args args) {
        Properties p = common(args);
        p.put("default.api.timeout.ms", "30000");
        return Admin.create(p);
    }

    /**
     * {@code --idempotence false} turns idempotence off (samsa has no InitProducerId);
     * {@code default} leaves the client's default (on since 3.0, KIP-679).
     */
    static KafkaProducer<byte[], byte[]> producer(Main.Args args, String codec) {
        Properties p = common(args);
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        p.put("acks", "all");
        p.put("compression.type", codec);
        p.put("linger.ms", args.get("linger-ms", "5"));
        p.put("delivery.timeout.ms", "30000");
        p.put("max.block.ms", "30000");
        String idempotence = args.get("idempotence", "false");
        if (!idempotence.equals("default")) p.put("enable.idempotence", idempotence);
        return new KafkaProducer<>(p);
    }

    /** A consumer without a group (assign + seek), or in {@code groupId} when it is not null. */
    static KafkaConsumer<byte[], byte[]> consumer(Main.Args args, String groupId) {
        Properties p = common(args);
        p.put("default.api.timeout.ms", "30000");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        // --fetch-max-bytes N: small answers, so that reading takes many fetches.
        String fetchMaxBytes = args.get("fetch-max-bytes", "");
        if (!fetchMaxBytes.isEmpty()) {
            p.put("fetch.max.bytes", fetchMaxBytes);
            p.put("max.partition.fetch.bytes", fetchMaxBytes);
        }
        if (groupId != null) {
            p.put("group.id", groupId);
            // --group-protocol consumer: KIP-848, where the coordinator sets the timing.
            String protocol = args.get("group-protocol", "classic");
            if (protocol.equals("consumer")) {
                p.put("group.protocol", protocol);
            } else {
                p.put("session.timeout.ms", "10000");
                p.put("heartbeat.interval.ms", "500");
            }
        }
        return new KafkaConsumer<>(p);
    }

    /**
     * describeTopics(...).allTopicNames() exists from 3.1 on and all() is gone in 4.0;
     * 3.0 has only all(). Reflection keeps one source tree for both.
     */
    @SuppressWarnings("unchecked")
    static Map<String, TopicDescription> describeTopics(Admin admin, Collection<String> topics) throws Exception {
        DescribeTopicsResult r = admin.describeTopics(topics);
        Method m;
        try {
            m = r.getClass().getMethod("allTopicNames");
        } catch (NoSuchMethodException e) {
            m = r.getClass().getMethod("all");
        }
        Object future = m.invoke(r);
        return ((org.apache.kafka.common.KafkaFuture<Map<String, TopicDescription>>) future).get();
    }

    /** Polls cond until it holds or WAIT passes; returns whether it held. */
    static boolean waitFor(BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (System.nanoTime() < deadline) {
            if (cond.getAsBoolean()) return true;
            Thread.sleep(100);
        }
        return cond.getAsBoolean();
    }
}
