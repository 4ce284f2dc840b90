package dev.samsa.compat;

import java.util.Collections;
import java.util.Properties;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/** A transactional producer: several transactions, some aborted, each with a group's offsets. */
final class TxnScenarios {
    private TxnScenarios() {}

    /**
     * transactions --topic T --partitions N (creates T) --txn-id ID --count K --records R
     *              [--abort-every M] [--group G]
     * : K transactions of R records spread over the partitions; every M-th aborted; with
     * --group each also commits offset (transaction number + 1) of partition 0 of T for group
     * G (TxnOffsetCommit). Prints one "txn" line per transaction with its outcome.
     */
    static void transactions(Main.Args args) throws Exception {
        String topic = args.get("topic");
        int partitions = args.integer("partitions", 0);
        if (partitions > 0) {
            try (Admin admin = Clients.admin(args)) {
                RecordScenarios.createTopic(admin, topic, partitions, null);
            }
        }
        int count = args.integer("count", 5);
        int records = args.integer("records", 10);
        int abortEvery = args.integer("abort-every", 0);
        String group = args.get("group", "");
        Properties p = Clients.common(args);
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        p.put("transactional.id", args.get("txn-id"));
        p.put("delivery.timeout.ms", "30000");
        p.put("max.block.ms", "30000");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            for (int t = 0; t < count; t++) {
                producer.beginTransaction();
                for (int i = 0; i < records; i++) {
                    byte[] value = Json.utf8("txn-" + t + "-" + i);
                    producer.send(new ProducerRecord<>(topic, Json.utf8("k" + i), value));
                }
                if (!group.isEmpty()) {
                    producer.sendOffsetsToTransaction(
                        Collections.singletonMap(new TopicPartition(topic, 0), new OffsetAndMetadata(t + 1)),
                        new ConsumerGroupMetadata(group));
                }
                boolean abort = abortEvery > 0 && t % abortEvery == abortEvery - 1;
                if (abort) producer.abortTransaction();
                else producer.commitTransaction();
                Json.obj("txn").put("t", t).put("committed", !abort).emit();
            }
        }
    }
}
