/*
 * Reads hostledger's event log with Kafka's Java client and Apache Avro for Java (the
 * reference implementation of the Avro specification, not hostledger's code), and prints each
 * event as one JSON line: the Java twin of examples/consumers/python/consume.py.
 *
 * Each message is Avro single-object encoded: C3 01, the CRC-64-AVRO fingerprint of the writer
 * schema's Parsing Canonical Form (8 bytes), the datum. Avro's own single-object decoder
 * (BinaryMessageDecoder) finds the writer schema by that fingerprint in a SchemaStore.Cache
 * holding every .avsc file of --schemas; no schema registry is needed, and no fingerprint is
 * written here. The topic carries two records (HostEvent and HostLockEvent, each with its
 * own versions): each message is read as the newest schema of the directory with its writer's
 * record name (the last file by version), so an older writer's event gets the newer fields'
 * defaults, as Avro schema resolution defines; with one version, that is the writer's schema.
 *
 *     examples/consumers/java/run.sh --bootstrap 127.0.0.1:19092 --schemas schemas/avro
 *
 * run.sh fetches the jars once (pom.xml) and runs this file with Java's source launcher:
 *     java -cp "DEPS/*" Consume.java --schemas DIR [--bootstrap HOST:PORT] [--topic TOPIC]
 *         [--idle-secs N] [--follow]
 *
 * Reads from the beginning (a new consumer group each run, nothing committed) with
 * isolation.level=read_committed, so events of aborted fetcher transactions are never seen,
 * and stops after --idle-secs without a new message (or never, with --follow). A message it
 * cannot decode is printed as {"poison": REASON, ...} and reading goes on. The lines are those
 * of consume.py, key for key and value for value, spaced as Python's json.dumps spaces them.
 *
 * Mutual TLS: $HOSTLEDGER_KAFKA_CA_FILE, $HOSTLEDGER_KAFKA_CERT_FILE and $HOSTLEDGER_KAFKA_KEY_FILE
 * (PEM files; `scripts/stack env` sets them), as consume.py's --ca, --cert and --key default.
 */

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.util.MinimalPrettyPrinter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectWriter;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.generic.IndexedRecord;
import org.apache.avro.io.DatumReader;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.MissingSchemaException;
import org.apache.avro.message.SchemaStore;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class Consume {
  static final int HEADER_LEN = 10;
  static final String USAGE = "usage: run.sh [-h] [--bootstrap HOST:PORT] [--topic TOPIC] --schemas DIR"
      + " [--idle-secs N] [--follow]";
  static final JsonNodeFactory JSON = JsonNodeFactory.instance;

  /** Avro's generic model, except that maps keep the order they were written in (as fastavro's do). */
  static final GenericData MODEL = new GenericData() {
    @Override
    public DatumReader<Object> createDatumReader(Schema writer, Schema reader) {
      return new GenericDatumReader<Object>(writer, reader, this) {
        @Override
        protected Object newMap(Object old, int size) {
          return new LinkedHashMap<Object, Object>();
        }
      };
    }
  };

  /**
   * The writer schemas of a directory by fingerprint, their file names, and per record name
   * the decoder reading it as the newest schema of that name.
   */
  record Schemas(Map<Long, Schema> writers, Map<Long, String> names,
      Map<String, BinaryMessageDecoder<GenericRecord>> decoders) {}

  static Schemas loadSchemas(Path directory) throws IOException {
    if (!Files.isDirectory(directory)) {
      throw new IllegalArgumentException("no .avsc files in " + directory);
    }
    List<Path> files;
    try (Stream<Path> listing = Files.list(directory)) {
      files = new ArrayList<>(listing.filter(p -> p.getFileName().toString().endsWith(".avsc")).toList());
    }
    if (files.isEmpty()) {
      throw new IllegalArgumentException("no .avsc files in " + directory);
    }
    files.sort(Comparator.comparing(Consume::versionOrder));
    SchemaStore.Cache store = new SchemaStore.Cache();
    Map<Long, Schema> writers = new LinkedHashMap<>();
    Map<Long, String> names = new LinkedHashMap<>();
    Map<String, Schema> newest = new LinkedHashMap<>();
    for (Path file : files) {
      // One parser per file: the versions define the same names.
      Schema schema;
      try {
        schema = new Schema.Parser().parse(file.toFile());
      } catch (IOException | RuntimeException e) {
        throw new IllegalArgumentException(file + ": " + describe(e));
      }
      store.addSchema(schema);
      long fingerprint = SchemaNormalization.parsingFingerprint64(schema);
      writers.put(fingerprint, schema);
      names.put(fingerprint, file.getFileName().toString());
      newest.put(schema.getFullName(), schema);
    }
    Map<String, BinaryMessageDecoder<GenericRecord>> decoders = new LinkedHashMap<>();
    newest.forEach((name, reader) -> decoders.put(name, new BinaryMessageDecoder<>(MODEL, reader, store)));
    return new Schemas(writers, names, decoders);
  }

  /** A file name whose numbers sort as numbers: host_event.v2 before host_event.v10. */
  static String versionOrder(Path file) {
    return Pattern.compile("\\d+").matcher(file.getFileName().toString())
        .replaceAll(m -> "0".repeat(Math.max(0, 20 - m.group().length())) + m.group());
  }

  /** One message: its event as JSON, or the reason it is not one. */
  record Decoded(JsonNode event, String poison) {}

  static Decoded decode(Schemas schemas, byte[] payload) {
    if (payload == null || payload.length < HEADER_LEN) {
      return new Decoded(null, "shorter than the single-object header");
    }
    if ((payload[0] & 0xff) != 0xc3 || payload[1] != 0x01) {
      return new Decoded(null, "no single-object marker");
    }
    long fingerprint = ByteBuffer.wrap(payload, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    Schema writer = schemas.writers().get(fingerprint);
    try {
      if (writer == null) {
        throw new MissingSchemaException("unknown fingerprint");
      }
      return new Decoded(json(schemas.decoders().get(writer.getFullName()).decode(payload)), null);
    } catch (MissingSchemaException e) {
      return new Decoded(null, "unknown writer schema fingerprint " + HexFormat.of().formatHex(payload, 2, HEADER_LEN));
    } catch (IOException | RuntimeException e) {
      return new Decoded(null, "invalid datum for " + schemas.names().get(fingerprint) + ": " + describe(e));
    }
  }

  /** An exception's message and those of its causes. */
  static String describe(Throwable e) {
    StringBuilder text = new StringBuilder();
    for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
      String message = t.getMessage() != null ? t.getMessage() : t.getClass().getSimpleName();
      if (text.indexOf(message) < 0) {
        text.append(text.length() == 0 ? "" : ": ").append(message);
      }
    }
    return text.toString();
  }

  /**
   * An Avro datum as JSON, walked generically (any schema version): records and maps as
   * objects, arrays as arrays, enums and strings as strings, numbers as numbers (timestamp-micros
   * is its long), null as null; bytes and fixed as strings of code points 0-255, as Avro's JSON
   * encoding writes them.
   */
  static JsonNode json(Object value) {
    if (value == null) {
      return JSON.nullNode();
    } else if (value instanceof IndexedRecord record) {
      ObjectNode object = JSON.objectNode();
      for (Schema.Field field : record.getSchema().getFields()) {
        object.set(field.name(), json(record.get(field.pos())));
      }
      return object;
    } else if (value instanceof Map<?, ?> map) {
      ObjectNode object = JSON.objectNode();
      map.forEach((k, v) -> object.set(k.toString(), json(v)));
      return object;
    } else if (value instanceof Collection<?> items) {
      ArrayNode array = JSON.arrayNode();
      items.forEach(item -> array.add(json(item)));
      return array;
    } else if (value instanceof CharSequence || value instanceof GenericEnumSymbol<?>) {
      return JSON.textNode(value.toString());
    } else if (value instanceof Long n) {
      return JSON.numberNode(n);
    } else if (value instanceof Integer n) {
      return JSON.numberNode(n);
    } else if (value instanceof Double n) {
      return JSON.numberNode(n);
    } else if (value instanceof Float n) {
      return JSON.numberNode(n);
    } else if (value instanceof Boolean b) {
      return JSON.booleanNode(b);
    } else if (value instanceof ByteBuffer bytes) {
      ByteBuffer b = bytes.duplicate();
      byte[] raw = new byte[b.remaining()];
      b.get(raw);
      return JSON.textNode(new String(raw, StandardCharsets.ISO_8859_1));
    } else if (value instanceof GenericFixed fixed) {
      return JSON.textNode(new String(fixed.bytes(), StandardCharsets.ISO_8859_1));
    }
    throw new IllegalArgumentException("no JSON for a " + value.getClass().getName());
  }

  /** Python's json.dumps spacing: ", " between items, ": " after a key, nothing else. */
  static final class PythonSpacing extends MinimalPrettyPrinter {
    @Override
    public void writeObjectFieldValueSeparator(JsonGenerator g) throws IOException {
      g.writeRaw(": ");
    }

    @Override
    public void writeObjectEntrySeparator(JsonGenerator g) throws IOException {
      g.writeRaw(", ");
    }

    @Override
    public void writeArrayValueSeparator(JsonGenerator g) throws IOException {
      g.writeRaw(", ");
    }
  }

  /** Mutual TLS from the PEM files the environment names, as the Java client's PEM stores. */
  static void tls(Properties config) throws IOException {
    String ca = System.getenv("HOSTLEDGER_KAFKA_CA_FILE");
    String cert = System.getenv("HOSTLEDGER_KAFKA_CERT_FILE");
    String key = System.getenv("HOSTLEDGER_KAFKA_KEY_FILE");
    boolean some = (ca != null && !ca.isEmpty()) || (cert != null && !cert.isEmpty());
    if (!some) {
      return;
    }
    config.put("security.protocol", "SSL");
    if (ca != null && !ca.isEmpty()) {
      config.put("ssl.truststore.type", "PEM");
      config.put("ssl.truststore.certificates", Files.readString(Path.of(ca)));
    }
    if (cert != null && !cert.isEmpty() && key != null && !key.isEmpty()) {
      config.put("ssl.keystore.type", "PEM");
      config.put("ssl.keystore.certificate.chain", Files.readString(Path.of(cert)));
      config.put("ssl.keystore.key", Files.readString(Path.of(key)));
    }
  }

  static void usageError(String message) {
    System.err.println(USAGE);
    System.err.println("error: " + message);
    System.exit(2);
  }

  public static void main(String[] args) throws Exception {
    String bootstrap = System.getenv().getOrDefault("HOSTLEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:19092");
    String topic = "hostledger.host-events";
    String schemaDir = null;
    double idleSecs = 5.0;
    boolean follow = false;
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      String value = null;
      int eq = arg.indexOf('=');
      if (arg.startsWith("--") && eq > 0) {
        value = arg.substring(eq + 1);
        arg = arg.substring(0, eq);
      }
      switch (arg) {
        case "-h", "--help" -> {
          System.out.println(USAGE);
          System.out.println("""

              Reads hostledger's event log with Kafka's Java client and Apache Avro for Java, and
              prints each event as one JSON line.

                --bootstrap HOST:PORT  default: $HOSTLEDGER_KAFKA_BOOTSTRAP or 127.0.0.1:19092
                --topic TOPIC          default: hostledger.host-events
                --schemas DIR          directory of the .avsc writer schemas (required)
                --idle-secs N          stop after this long without a message (default: 5)
                --follow               never stop""");
          return;
        }
        case "--bootstrap", "--topic", "--schemas", "--idle-secs" -> {
          if (value == null) {
            if (i + 1 >= args.length) {
              usageError("argument " + arg + ": expected one argument");
            }
            value = args[++i];
          }
          switch (arg) {
            case "--bootstrap" -> bootstrap = value;
            case "--topic" -> topic = value;
            case "--schemas" -> schemaDir = value;
            default -> {
              try {
                idleSecs = Double.parseDouble(value);
              } catch (NumberFormatException e) {
                usageError("argument --idle-secs: invalid float value: '" + value + "'");
              }
            }
          }
        }
        case "--follow" -> follow = true;
        default -> usageError("unrecognized arguments: " + args[i]);
      }
    }
    if (schemaDir == null) {
      usageError("the following arguments are required: --schemas");
    }

    Schemas schemas;
    try {
      schemas = loadSchemas(Path.of(schemaDir));
    } catch (IOException | RuntimeException e) {
      System.err.println("error: " + describe(e));
      System.exit(1);
      return;
    }

    Properties config = new Properties();
    config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    config.put(ConsumerConfig.GROUP_ID_CONFIG, "hostledger-reader-example-java-" + UUID.randomUUID());
    config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    config.put(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, "false");
    config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

    try {
      tls(config);
    } catch (IOException e) {
      System.err.println("error: " + describe(e));
      System.exit(1);
      return;
    }

    ObjectWriter writer = new ObjectMapper().writer(new PythonSpacing());
    PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
    KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config);
    // On Ctrl-C (or SIGTERM), wake the poll so that the consumer leaves its group cleanly.
    Thread mainThread = Thread.currentThread();
    boolean[] done = {false};
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      synchronized (done) {
        if (done[0]) {
          return;
        }
      }
      consumer.wakeup();
      try {
        mainThread.join(10_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }));
    try {
      consumer.subscribe(List.of(topic));
      long idleNanos = (long) (idleSecs * 1e9);
      long last = System.nanoTime();
      while (follow || System.nanoTime() - last < idleNanos) {
        for (ConsumerRecord<byte[], byte[]> message : consumer.poll(Duration.ofMillis(500))) {
          last = System.nanoTime();
          Decoded decoded = decode(schemas, message.value());
          ObjectNode line = JSON.objectNode();
          line.put("key", message.key() == null ? "" : new String(message.key(), StandardCharsets.UTF_8));
          line.put("partition", message.partition());
          line.put("offset", message.offset());
          if (decoded.event() != null) {
            line.set("event", decoded.event());
          } else {
            line.put("poison", decoded.poison());
          }
          out.print(writer.writeValueAsString(line) + "\n");
          out.flush();
          if (out.checkError()) { // stdout closed (e.g. piped into head): nobody reads any more
            return;
          }
        }
      }
    } catch (WakeupException e) {
      // interrupted: close below
    } finally {
      consumer.close();
      synchronized (done) {
        done[0] = true;
      }
    }
  }
}
