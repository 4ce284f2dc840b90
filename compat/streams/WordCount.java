import java.time.Duration;
import java.util.Arrays;
import java.util.Locale;
import java.util.Properties;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.ThreadMetadata;
import org.apache.kafka.streams.TaskMetadata;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * The classic word count as a Kafka Streams 4.4 application with the streams rebalance
 * protocol (KIP-1071, group.protocol=streams): words of the input topic are re-keyed
 * (a repartition topic), counted in a state store (a changelog topic) and the counts
 * written to the output topic. Two subtopologies, so the group's coordinator creates both
 * internal topics and assigns the tasks of both.
 *
 * Prints one JSON line per event to stdout: {"ev":"state",...} on each state change and
 * {"ev":"tasks","active":[...]} whenever this instance's active tasks change. Stops cleanly
 * (KafkaStreams.close, which leaves the group) on "stop" on stdin or on SIGTERM.
 *
 * Usage: WordCount BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR
 */
public final class WordCount {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], appId = args[1], input = args[2], output = args[3], stateDir = args[4];
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.GROUP_PROTOCOL_CONFIG, "streams");
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.String().getClass());
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.String().getClass());
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");

        StreamsBuilder builder = new StreamsBuilder();
        builder.<String, String>stream(input)
            .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
            .filter((key, word) -> !word.isEmpty())
            .groupBy((key, word) -> word, Grouped.with(Serdes.String(), Serdes.String()))
            .count(Materialized.as("counts"))
            .toStream()
            .map((word, count) -> KeyValue.pair(word, Long.toString(count)))
            .to(output, Produced.with(Serdes.String(), Serdes.String()));

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            emit("{\"ev\":\"state\",\"state\":\"" + now + "\"}");
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            emit("{\"ev\":\"error\",\"message\":" + quote(String.valueOf(e)) + "}");
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            emit("{\"ev\":\"closed\"}");
        }));
        Thread stdin = new Thread(() -> {
            try {
                java.io.BufferedReader in = new java.io.BufferedReader(new java.io.InputStreamReader(System.in));
                String line;
                while ((line = in.readLine()) != null) {
                    if (line.trim().equals("stop")) {
                        break;
                    }
                }
            } catch (java.io.IOException ignored) {
            }
            streams.close(Duration.ofSeconds(30));
            emit("{\"ev\":\"closed\"}");
            stopped.countDown();
        });
        stdin.setDaemon(true);
        stdin.start();
        streams.start();
        String last = null;
        while (stopped.getCount() > 0) {
            TreeSet<String> active = new TreeSet<>();
            try {
                for (ThreadMetadata thread : streams.metadataForLocalThreads()) {
                    for (TaskMetadata task : thread.activeTasks()) {
                        active.add(task.taskId().toString());
                    }
                }
            } catch (IllegalStateException notRunning) {
                // Closed meanwhile.
            }
            StringBuilder json = new StringBuilder("{\"ev\":\"tasks\",\"active\":[");
            String sep = "";
            for (String t : active) {
                json.append(sep).append(quote(t));
                sep = ",";
            }
            json.append("]}");
            String now = json.toString();
            if (!now.equals(last)) {
                emit(now);
                last = now;
            }
            stopped.await(200, java.util.concurrent.TimeUnit.MILLISECONDS);
        }
        System.exit(0);
    }

    private static synchronized void emit(String json) {
        System.out.println(json);
        System.out.flush();
    }

    private static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ") + "\"";
    }
}
