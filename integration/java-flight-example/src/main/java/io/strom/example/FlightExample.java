package io.strom.example;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.Action;
import org.apache.arrow.flight.CallOption;
import org.apache.arrow.flight.CallOptions;
import org.apache.arrow.flight.FlightClient.ClientStreamListener;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.FlightGrpcUtils;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.FlightStream;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.Result;
import org.apache.arrow.flight.Ticket;
import org.apache.arrow.flight.grpc.NettyClientBuilder;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;

/**
 * A plain Arrow Flight client of Strom (docs/java.md): databases and tables through DoAction,
 * appends and upserts through DoPut, scans through DoGet, key lookups through DoExchange. Every
 * request is the JSON of docs/protocol.md; nothing Strom-specific is on the classpath.
 *
 * <p>It checks everything it reads back against what it wrote and throws {@link
 * IllegalStateException} on any difference; {@code main} then exits with status 1, so running it
 * is a test. Regions between {@code docs:begin}/{@code docs:end} are quoted in docs/java.md
 * verbatim (FlightExampleTest keeps the two in sync).
 *
 * <p>Run: {@code java --add-opens=java.base/java.nio=ALL-UNNAMED -cp ...}
 * {@code io.strom.example.FlightExample grpc://127.0.0.1:9123}, or {@code mvn -q compile exec:exec
 * -Dstrom.endpoint=grpc://127.0.0.1:9123}
 */
public final class FlightExample {
  static final ObjectMapper JSON = new ObjectMapper();
  /** Every call gets a deadline: a node that never answers fails the run instead of hanging it. */
  static final CallOption TIMEOUT = CallOptions.timeout(60, TimeUnit.SECONDS);

  private final FlightClient client;
  private final BufferAllocator allocator;
  private final PrintStream out;
  private final String db;

  FlightExample(FlightClient client, BufferAllocator allocator, PrintStream out, String db) {
    this.client = client;
    this.allocator = allocator;
    this.out = out;
    this.db = db;
  }

  public static void main(String[] args) {
    if (args.length != 1) {
      System.err.println("usage: FlightExample grpc://HOST:PORT");
      System.exit(2);
    }
    try {
      run(args[0], System.out);
      System.out.println("OK: everything read back matches what was written");
    } catch (Throwable e) {
      System.out.println("FAILED: " + e);
      e.printStackTrace();
      System.exit(1);
    }
  }

  /** Runs every step against the node at {@code endpoint}, in a database of its own. */
  public static void run(String endpoint, PrintStream out) throws Exception {
    String db = "java_example_" + System.currentTimeMillis();
    // docs:begin connect
    BufferAllocator allocator = new RootAllocator();
    // FlightClient.builder(allocator, location).build() is enough to talk to Strom; the channel
    // is built by hand only to add ReadyGate's interceptor (parks DoPut writers, see below).
    Location location = new Location(endpoint); // "grpc://127.0.0.1:9123"
    FlightClient client =
        FlightGrpcUtils.createFlightClient(
            allocator,
            new NettyClientBuilder(allocator, location)
                .build()
                .intercept(ReadyGate.INTERCEPTOR)
                .build());
    // docs:end connect
    // Closing the allocator last checks that every Arrow buffer was released (a leak throws).
    try (allocator;
        client) {
      FlightExample example = new FlightExample(client, allocator, out, db);
      example.createTables();
      LogTable.run(example);
      PkTable.run(example);
      Errors.run(example);
      example.action("drop_database", Map.of("name", db, "cascade", true));
      out.println("dropped database " + db);
    }
  }

  FlightClient client() {
    return client;
  }

  BufferAllocator allocator() {
    return allocator;
  }

  PrintStream out() {
    return out;
  }

  String db() {
    return db;
  }

  // ---------------------------------------------------------------------------------------------
  // DoAction
  // ---------------------------------------------------------------------------------------------

  private void createTables() throws Exception {
    // docs:begin create
    action("create_database", Map.of("name", db, "if_not_exists", true));
    // A log table. ZSTD is the default codec; it is spelled out because reading it back needs
    // org.apache.arrow:arrow-compression on the classpath.
    JsonNode events =
        action(
            "create_table",
            Map.of(
                "database", db,
                "table", "events",
                "columns",
                    List.of(
                        column("id", "BIGINT", false),
                        column("user_name", "STRING", true),
                        column("amount", "INT", true)),
                "bucket_key", List.of("id"),
                "bucket_num", 2,
                "options", Map.of("table.log.arrow.compression.type", "ZSTD")));
    // A primary-key table: one current row per user_id, merged by the default last-row engine.
    JsonNode users =
        action(
            "create_table",
            Map.of(
                "database", db,
                "table", "users",
                "columns",
                    List.of(
                        column("user_id", "BIGINT", false),
                        column("name", "STRING", true),
                        column("score", "BIGINT", true)),
                "primary_key", List.of("user_id"),
                "bucket_num", 2));
    // docs:end create
    check(events.path("kind").asText().equals("log"), "events is a log table: " + events);
    check(
        events.path("options").path("table.log.arrow.compression.type").asText().equals("ZSTD"),
        "events is ZSTD-compressed: " + events);
    check(users.path("kind").asText().equals("primary_key"), "users is a PK table: " + users);
    out.printf("created database %s, log table events (ZSTD, 2 buckets), pk table users%n", db);
  }

  private static Map<String, Object> column(String name, String type, boolean nullable) {
    return Map.of("name", name, "type", type, "nullable", nullable);
  }

  // docs:begin action
  /** Runs one DoAction whose body is JSON and returns its single JSON result. */
  JsonNode action(String type, Object body) throws Exception {
    Iterator<Result> results =
        client.doAction(new Action(type, JSON.writeValueAsBytes(body)), TIMEOUT);
    List<JsonNode> answers = new ArrayList<>();
    results.forEachRemaining(r -> answers.add(readJson(r.getBody())));
    check(answers.size() == 1, type + " answers one result, got " + answers);
    return answers.get(0);
  }
  // docs:end action

  // ---------------------------------------------------------------------------------------------
  // DoPut
  // ---------------------------------------------------------------------------------------------

  /** Fills the root with batch number {@code i} (setting its row count). */
  interface BatchFiller {
    void fill(VectorSchemaRoot root, int i);
  }

  // docs:begin put
  /**
   * Writes {@code batches} record batches in one DoPut and returns the acknowledgements, one JSON
   * per batch, in order; each one is sent once its batch is durable.
   */
  List<JsonNode> put(
      FlightDescriptor descriptor, VectorSchemaRoot root, int batches, BatchFiller filler)
      throws Exception {
    Acks acks = new Acks();
    ReadyGate gate = new ReadyGate();
    // Sends the schema (and the descriptor) right away.
    ClientStreamListener writer = client.startPut(descriptor, root, acks, gate, TIMEOUT);
    for (int i = 0; i < batches; i++) {
      filler.fill(root, i);
      // putNext() busy-spins while the stream is not ready: park until it is instead.
      gate.awaitReady(writer);
      writer.putNext();
    }
    writer.completed();
    writer.getResult(); // waits for the end of the call; throws FlightRuntimeException on error
    out.printf(
        "  DoPut %s: %d batches, writer parked %d times waiting for isReady()%n",
        descriptorText(descriptor), batches, gate.parks());
    return acks.received();
  }

  /** Collects the app_metadata of every PutResult: Strom's JSON acknowledgement. */
  static final class Acks extends org.apache.arrow.flight.AsyncPutListener {
    private final List<JsonNode> received = new ArrayList<>();

    @Override
    public void onNext(org.apache.arrow.flight.PutResult result) {
      // The buffer is freed when onNext returns: decode it here.
      org.apache.arrow.memory.ArrowBuf metadata = result.getApplicationMetadata();
      byte[] bytes = new byte[(int) metadata.readableBytes()];
      metadata.getBytes(0, bytes);
      synchronized (received) {
        received.add(readJson(bytes));
      }
    }

    List<JsonNode> received() {
      synchronized (received) {
        return List.copyOf(received);
      }
    }
  }
  // docs:end put

  /** Checks that the acks acknowledge {@code rows[i]} rows for batch i. */
  void checkAcks(List<JsonNode> acks, int... rows) {
    check(acks.size() == rows.length, "one ack per batch: " + rows.length + " expected, got " + acks);
    for (int i = 0; i < rows.length; i++) {
      JsonNode ack = acks.get(i);
      check(ack.path("rows").asInt(-1) == rows[i], "ack " + i + " counts " + rows[i] + " rows: " + ack);
      check(ack.path("buckets").isArray(), "ack " + i + " lists its buckets: " + ack);
      check(!ack.path("duplicate").asBoolean(false), "ack " + i + " is not a duplicate: " + ack);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // DoGet
  // ---------------------------------------------------------------------------------------------

  // docs:begin ticket
  static Ticket ticket(Map<String, Object> json) throws Exception {
    return new Ticket(JSON.writeValueAsBytes(json));
  }
  // docs:end ticket

  /** The rows of a DoGet as column name → value maps, and the JSON app_metadata per batch. */
  record Rows(List<String> columns, List<Map<String, Object>> rows, List<JsonNode> metadata) {}

  // docs:begin get
  /** Reads a whole DoGet stream: every record batch with its app_metadata. */
  Rows get(Ticket ticket) throws Exception {
    try (FlightStream stream = client.getStream(ticket, TIMEOUT)) {
      VectorSchemaRoot root = stream.getRoot(); // waits for the schema message
      List<String> columns = new ArrayList<>();
      root.getSchema().getFields().forEach(f -> columns.add(f.getName()));
      List<Map<String, Object>> rows = new ArrayList<>();
      List<JsonNode> metadata = new ArrayList<>();
      // next() loads the next batch into the same root (decompressing it: ZSTD needs
      // arrow-compression) and rethrows a server error as FlightRuntimeException.
      while (stream.next()) {
        if (stream.getLatestMetadata() != null) {
          org.apache.arrow.memory.ArrowBuf m = stream.getLatestMetadata();
          byte[] bytes = new byte[(int) m.readableBytes()];
          m.getBytes(0, bytes);
          metadata.add(readJson(bytes));
        }
        for (int row = 0; row < root.getRowCount(); row++) {
          Map<String, Object> values = new LinkedHashMap<>();
          for (String column : columns) {
            values.put(column, value(root, column, row));
          }
          rows.add(values);
        }
      }
      return new Rows(columns, rows, metadata);
    }
  }
  // docs:end get

  /** The value of a cell as a plain Java value (Long, Integer, String) or null. */
  static Object value(VectorSchemaRoot root, String column, int row) {
    var vector = root.getVector(column);
    if (vector == null) {
      throw new IllegalStateException("no column " + column + " in " + root.getSchema());
    }
    if (vector.isNull(row)) {
      return null;
    }
    if (vector instanceof BigIntVector v) {
      return v.get(row);
    }
    if (vector instanceof IntVector v) {
      return v.get(row);
    }
    if (vector instanceof VarCharVector v) {
      return new String(v.get(row), StandardCharsets.UTF_8);
    }
    return vector.getObject(row); // other types: as Arrow Java represents them
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers
  // ---------------------------------------------------------------------------------------------

  static JsonNode readJson(byte[] bytes) {
    try {
      return JSON.readTree(bytes);
    } catch (java.io.IOException e) {
      throw new IllegalStateException("not JSON: " + new String(bytes, StandardCharsets.UTF_8), e);
    }
  }

  static FlightDescriptor command(Map<String, Object> json) throws Exception {
    return FlightDescriptor.command(JSON.writeValueAsBytes(json));
  }

  private static String descriptorText(FlightDescriptor d) {
    return d.isCommand() ? new String(d.getCommand(), StandardCharsets.UTF_8) : String.valueOf(d.getPath());
  }

  /** The rows sorted by one long column (scans interleave buckets). */
  static List<Map<String, Object>> sortedBy(List<Map<String, Object>> rows, String column) {
    List<Map<String, Object>> sorted = new ArrayList<>(rows);
    sorted.sort(Comparator.comparingLong(r -> (Long) r.get(column)));
    return sorted;
  }

  /** Fails the run (and so main's exit status) when a read-back differs from what was written. */
  static void check(boolean ok, String what) {
    if (!ok) {
      throw new IllegalStateException("check failed: " + what);
    }
  }

  static void checkEquals(Object expected, Object actual, String what) {
    if (!Objects.equals(expected, actual)) {
      throw new IllegalStateException(
          "check failed: " + what + "\n  expected: " + expected + "\n  actual:   " + actual);
    }
  }

  /** Expects {@code call} to fail with {@code code}; returns the error's description. */
  static String expectError(FlightStatusCode code, ThrowingRunnable call, String what) throws Exception {
    try {
      call.run();
    } catch (FlightRuntimeException e) {
      checkEquals(code, e.status().code(), what + ": status (" + e.getMessage() + ")");
      return e.status().description();
    }
    throw new IllegalStateException("check failed: " + what + " should fail with " + code);
  }

  interface ThrowingRunnable {
    void run() throws Exception;
  }
}
