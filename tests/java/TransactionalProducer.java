// Test helper: writes transactional (and plain) records to ONE partition with Kafka's own Java producer, so that
// tests can check how tickpipe reads partitions containing transaction markers and aborted transactions.
//
// Usage (Java 11+ runs this single source file directly; <kafka>/lib holds the Kafka jars):
//
//   java -cp '<kafka>/lib/*' tests/java/TransactionalProducer.java <bootstrap> <topic> <partition> [<config>=<value> ...]
//
// The records come from stdin, one per line:
//
//   <verb> <key> <value>
//
//   verb   commit | abort | plain | open
//   key    record key; "-" means a null key
//   value  rest of the line (e.g. a JSON object, may contain spaces); "-" means a null value
//
// Consecutive lines with the same verb form one group, written in input order:
//   commit  one transaction that is committed
//   abort   one transaction that is aborted
//   plain   non-transactional records (separate, non-transactional producer)
//   open    one transaction that is left OPEN: the records are flushed to the broker, then the program exits without
//           committing or aborting. Must be the last group. The broker aborts it after transaction.timeout.ms
//           (default 60000; pass e.g. transaction.timeout.ms=5000 to shorten it).
// An empty line ends the current group, so two transactions with the same verb can follow each other.
// Lines starting with '#' are ignored.
//
// Extra <config>=<value> arguments are passed to both producers (transactional.id only to the transactional one;
// by default a random transactional.id is used).
//
// Prints nothing but errors (to stderr); exit code 0 on success, 1 on any error, 2 on usage errors.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.UUID;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

public class TransactionalProducer {
    private record Line(String verb, String key, String value) {}

    private record Group(String verb, List<Line> lines) {}

    public static void main(String[] args) {
        // Kafka logs through log4j2; only errors should be printed.
        System.setProperty("log4j2.level", "ERROR");
        System.setProperty("org.apache.logging.log4j.level", "ERROR");
        System.setProperty("log4j2.statusLoggerLevel", "ERROR");

        if (args.length < 3) {
            System.err.println("usage: TransactionalProducer <bootstrap> <topic> <partition> [<config>=<value> ...] < lines");
            System.exit(2);
        }
        try {
            run(args);
            System.exit(0);
        } catch (Throwable t) {
            System.err.println("TransactionalProducer failed: " + t);
            t.printStackTrace(System.err);
            System.exit(1);
        }
    }

    private static void run(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int partition = Integer.parseInt(args[2]);

        Properties common = new Properties();
        common.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        common.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        common.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        common.put(ProducerConfig.ACKS_CONFIG, "all");
        common.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        String transactionalId = "tickpipe-test-" + UUID.randomUUID();
        for (int i = 3; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected <config>=<value>, got: " + args[i]);
            }
            String k = args[i].substring(0, eq);
            String v = args[i].substring(eq + 1);
            if (k.equals(ProducerConfig.TRANSACTIONAL_ID_CONFIG)) {
                transactionalId = v;
            } else {
                common.put(k, v);
            }
        }

        List<Group> groups = readGroups();
        for (int i = 0; i < groups.size(); i++) {
            if (groups.get(i).verb.equals("open") && i != groups.size() - 1) {
                throw new IllegalArgumentException("an 'open' group must be the last group");
            }
        }

        KafkaProducer<String, String> txProducer = null;
        KafkaProducer<String, String> plainProducer = null;
        boolean leftOpen = false;
        try {
            for (Group g : groups) {
                if (g.verb.equals("plain")) {
                    if (plainProducer == null) {
                        plainProducer = new KafkaProducer<>(common);
                    }
                    send(plainProducer, topic, partition, g);
                    plainProducer.flush();
                    continue;
                }

                if (txProducer == null) {
                    Properties props = new Properties();
                    props.putAll(common);
                    props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
                    props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
                    txProducer = new KafkaProducer<>(props);
                    txProducer.initTransactions();
                }
                txProducer.beginTransaction();
                send(txProducer, topic, partition, g);
                switch (g.verb) {
                    case "commit" -> txProducer.commitTransaction();
                    case "abort" -> {
                        // make sure the records really are in the log before the ABORT marker
                        txProducer.flush();
                        txProducer.abortTransaction();
                    }
                    case "open" -> {
                        txProducer.flush();
                        leftOpen = true;
                    }
                    default -> throw new IllegalStateException("unreachable: " + g.verb);
                }
            }
        } finally {
            if (plainProducer != null) {
                plainProducer.close(Duration.ofSeconds(30));
            }
            if (txProducer != null) {
                // A graceful close would abort an ongoing transaction; a zero-timeout close leaves it open.
                txProducer.close(leftOpen ? Duration.ZERO : Duration.ofSeconds(30));
            }
        }
    }

    private static void send(KafkaProducer<String, String> producer, String topic, int partition, Group g)
            throws Exception {
        List<java.util.concurrent.Future<?>> futures = new ArrayList<>();
        for (Line l : g.lines) {
            futures.add(producer.send(new ProducerRecord<>(topic, partition, l.key, l.value)));
        }
        // surface send errors (e.g. unknown partition) instead of failing later on commit
        producer.flush();
        for (java.util.concurrent.Future<?> f : futures) {
            f.get();
        }
    }

    private static List<Group> readGroups() throws Exception {
        List<Group> groups = new ArrayList<>();
        Group current = null;
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String raw;
        int lineNo = 0;
        while ((raw = in.readLine()) != null) {
            lineNo++;
            if (raw.isBlank()) {
                current = null; // ends the current group
                continue;
            }
            if (raw.startsWith("#")) {
                continue;
            }
            String[] parts = raw.split(" ", 3);
            if (parts.length < 3) {
                throw new IllegalArgumentException("line " + lineNo + ": expected '<verb> <key> <value>': " + raw);
            }
            String verb = parts[0];
            if (!List.of("commit", "abort", "plain", "open").contains(verb)) {
                throw new IllegalArgumentException("line " + lineNo + ": unknown verb '" + verb + "'");
            }
            String key = parts[1].equals("-") ? null : parts[1];
            String value = parts[2].equals("-") ? null : parts[2];
            if (current == null || !current.verb.equals(verb)) {
                current = new Group(verb, new ArrayList<>());
                groups.add(current);
            }
            current.lines.add(new Line(verb, key, value));
        }
        return groups;
    }
}
