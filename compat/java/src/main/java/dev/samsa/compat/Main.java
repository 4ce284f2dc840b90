package dev.samsa.compat;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/**
 * Drives the Java Kafka client against one broker, one scenario per run:
 *
 * <pre>java -cp CLASSPATH dev.samsa.compat.Main SCENARIO --bootstrap HOST:PORT [--name value ...]</pre>
 *
 * Every scenario prints what it observed as JSON lines (see {@link Json});
 * compat/tests/test_java.py decides whether that is right. A scenario that
 * cannot go on prints {@code {"ev":"error",...}} with the exception chain and
 * exits 3, so the tests can tell "the broker lacks this API" from other failures.
 */
public final class Main {
    private Main() {}

    interface Scenario {
        void run(Args args) throws Exception;
    }

    interface Op {
        void run() throws Exception;
    }

    private static final Map<String, Scenario> SCENARIOS = new HashMap<>();

    static {
        SCENARIOS.put("produce", RecordScenarios::produce);
        SCENARIOS.put("consume", RecordScenarios::consume);
        SCENARIOS.put("produce-keyless", RecordScenarios::produceKeyless);
        SCENARIOS.put("topics", AdminScenarios::topics);
        SCENARIOS.put("cluster", AdminScenarios::cluster);
        SCENARIOS.put("configs", AdminScenarios::configs);
        SCENARIOS.put("alter-configs", AdminScenarios::alterConfigs);
        SCENARIOS.put("list-offsets", AdminScenarios::listOffsets);
        SCENARIOS.put("delete-records", AdminScenarios::deleteRecords);
        SCENARIOS.put("acls", AdminScenarios::acls);
        SCENARIOS.put("group-consume", GroupScenarios::groupConsume);
        SCENARIOS.put("group-admin", GroupScenarios::groupAdmin);
        SCENARIOS.put("transactions", TxnScenarios::transactions);
        SCENARIOS.put("group-member", GroupScenarios::groupMember);
        // Share groups (KafkaShareConsumer) exist from kafka-clients 4.0 on: their scenarios are
        // built only against the kafka-4 profile (src/kafka4/java).
        try {
            Class.forName("dev.samsa.compat.ShareScenarios").getDeclaredMethod("register", Map.class)
                .invoke(null, SCENARIOS);
        } catch (ClassNotFoundException e) {
            // kafka-clients 3.x: no share scenarios.
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    public static void main(String[] argv) {
        if (argv.length == 0 || !SCENARIOS.containsKey(argv[0])) {
            System.err.println("usage: Main {" + String.join("|", SCENARIOS.keySet()) + "} --bootstrap HOST:PORT ...");
            System.exit(2);
        }
        Json.obj("start").put("scenario", argv[0])
            .put("client", clientVersion()).emit();
        try {
            SCENARIOS.get(argv[0]).run(Args.parse(argv));
        } catch (Throwable t) {
            error(t).emit();
            System.exit(3);
        }
        Json.obj("end").emit();
        // Client threads (metadata refresh, heartbeats) must not keep a finished run alive.
        System.exit(0);
    }

    /** The kafka-clients release on the classpath, from the properties file every release ships. */
    static String clientVersion() {
        java.util.Properties p = new java.util.Properties();
        try (java.io.InputStream in = org.apache.kafka.clients.producer.KafkaProducer.class
                .getResourceAsStream("/kafka/kafka-version.properties")) {
            if (in != null) p.load(in);
        } catch (java.io.IOException e) {
            return "unknown";
        }
        return p.getProperty("version", "unknown");
    }

    /** An error line: the first cause that is not a wrapper, and the whole chain (class: message). */
    static Json.Obj error(Throwable t) {
        Throwable root = unwrap(t);
        List<String> chain = new ArrayList<>();
        for (Throwable c = t; c != null && chain.size() < 10; c = c.getCause()) {
            chain.add(c.getClass().getName() + ": " + c.getMessage());
        }
        return Json.obj("error").put("class", root.getClass().getName())
            .put("message", String.valueOf(root.getMessage())).put("chain", chain);
    }

    static Throwable unwrap(Throwable t) {
        while ((t instanceof ExecutionException || t instanceof CompletionException) && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    /** Runs an operation that should fail; returns the class name of what it threw, or null if it did not. */
    static String failureOf(Op op) {
        try {
            op.run();
            return null;
        } catch (Exception e) {
            return unwrap(e).getClass().getName();
        }
    }

    /** Scenario arguments: {@code --name value} pairs after the scenario name. */
    static final class Args {
        private final Map<String, String> values = new HashMap<>();

        static Args parse(String[] argv) {
            Args a = new Args();
            for (int i = 1; i < argv.length; i += 2) {
                if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                    throw new IllegalArgumentException("expected --name value pairs, got " + argv[i]);
                }
                a.values.put(argv[i].substring(2), argv[i + 1]);
            }
            if (!a.values.containsKey("bootstrap")) throw new IllegalArgumentException("--bootstrap is required");
            return a;
        }

        String get(String name) {
            String v = values.get(name);
            if (v == null) throw new IllegalArgumentException("--" + name + " is required");
            return v;
        }

        String get(String name, String dflt) {
            return values.getOrDefault(name, dflt);
        }

        int integer(String name, int dflt) {
            return Integer.parseInt(get(name, Integer.toString(dflt)));
        }

        long along(String name, long dflt) {
            return Long.parseLong(get(name, Long.toString(dflt)));
        }
    }
}
