package io.strom.flink.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.strom.flink.client.internal.Json;
import io.strom.flink.client.internal.StromNative;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.BitVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.apache.arrow.vector.util.Text;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The client layer against the real node: catalog calls, writes and scans through the Arrow C
 * Data Interface, lookups, typed errors, use after close and panics. Each test uses its own
 * table so they can share one node.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ClientIT {
  private static final String DB = "jni_it";
  private static final AtomicInteger TABLES = new AtomicInteger();

  private static final Schema ORDERS =
      new Schema(
          List.of(
              field("id", new ArrowType.Int(64, true), false),
              field("customer", ArrowType.Utf8.INSTANCE, true),
              field("amount", new ArrowType.FloatingPoint(FloatingPointPrecision.DOUBLE), true),
              field("paid", ArrowType.Bool.INSTANCE, true)));

  private StromNode node;
  private StromConnection connection;

  @BeforeAll
  void startNode() throws Exception {
    node = StromNode.start();
    connection = StromConnection.connect(node.endpoint());
    connection.createDatabase(DB, true);
  }

  @AfterAll
  void stopNode() throws Exception {
    if (connection != null) {
      connection.close();
    }
    if (node != null) {
      node.close();
    }
  }

  private static Field field(String name, ArrowType type, boolean nullable) {
    return new Field(name, new FieldType(nullable, type, null), null);
  }

  private String newLogTable() {
    String table = "orders_" + TABLES.incrementAndGet();
    connection.createTable(
        TableSpec.of(DB, table)
            .column("id", "BIGINT", false)
            .column("customer", "STRING")
            .column("amount", "DOUBLE")
            .column("paid", "BOOLEAN")
            .bucketNum(2)
            .bucketKey("id"));
    return table;
  }

  /** Rows {@code first..first+count-1}; every third customer is null. */
  private VectorSchemaRoot orders(long first, int count) {
    VectorSchemaRoot root = VectorSchemaRoot.create(ORDERS, connection.allocator());
    BigIntVector id = (BigIntVector) root.getVector("id");
    VarCharVector customer = (VarCharVector) root.getVector("customer");
    Float8Vector amount = (Float8Vector) root.getVector("amount");
    BitVector paid = (BitVector) root.getVector("paid");
    for (int i = 0; i < count; i++) {
      long key = first + i;
      id.setSafe(i, key);
      if (key % 3 == 0) {
        customer.setNull(i);
      } else {
        customer.setSafe(i, new Text("c" + key));
      }
      amount.setSafe(i, key * 1.5);
      paid.setSafe(i, key % 2 == 0 ? 1 : 0);
    }
    root.setRowCount(count);
    return root;
  }

  /** Every row of a bounded scan as "id|customer|amount|paid", sorted by id. */
  private List<String> scanAll(ScanRequest request) {
    List<String> rows = new ArrayList<>();
    try (StromScanner scanner = connection.scan(request)) {
      while (!scanner.isFinished()) {
        try (ScanBatch batch = scanner.poll(Duration.ofSeconds(30))) {
          if (batch == null) {
            continue;
          }
          VectorSchemaRoot root = batch.root();
          for (int i = 0; i < root.getRowCount(); i++) {
            StringBuilder row = new StringBuilder();
            for (int c = 0; c < root.getFieldVectors().size(); c++) {
              row.append(c == 0 ? "" : "|").append(root.getVector(c).getObject(i));
            }
            rows.add(row.toString());
          }
        }
      }
    }
    rows.sort(Comparator.comparingLong(r -> Long.parseLong(r.split("\\|")[0])));
    return rows;
  }

  private static String expectedRow(long key) {
    return key + "|" + (key % 3 == 0 ? "null" : "c" + key) + "|" + (key * 1.5) + "|" + (key % 2 == 0);
  }

  /** A new primary-key table `users_N` (2 buckets) upserted with {@code count} {@link #orders} rows, ids from 1. */
  private String usersTableWithOrders(int count) throws Exception {
    String table = "users_" + TABLES.incrementAndGet();
    connection.createTable(
        TableSpec.of(DB, table)
            .column("id", "BIGINT", false)
            .column("customer", "STRING")
            .column("amount", "DOUBLE")
            .column("paid", "BOOLEAN")
            .primaryKey("id")
            .bucketNum(2));
    try (StromWriter writer = connection.upsertWriter(DB, table, null);
        VectorSchemaRoot rows = orders(1, count)) {
      writer.write(rows);
    }
    return table;
  }

  @Test
  void catalogCallsRoundTrip() {
    String table = newLogTable();
    assertTrue(connection.listDatabases().contains(DB));
    assertTrue(connection.listTables(DB).contains(table));
    JsonNode info = connection.getTable(DB, table);
    assertEquals(2, info.path("bucket_num").asInt(), info.toString());
    Schema schema = connection.tableSchema(DB, table);
    assertEquals(List.of("id", "customer", "amount", "paid"), names(schema));
    assertEquals(new ArrowType.Int(64, true), schema.findField("id").getType());
    assertFalse(connection.createDatabase(DB, true), "exists already: not created again");
    JsonNode altered =
        connection.alterTable(
            DB, table, Map.of("channel", "STRING"), Map.of("table.log.ttl", "3 d"));
    assertEquals(info.path("schema_id").asInt() + 1, altered.path("schema_id").asInt(), altered.toString());
    assertEquals("channel", connection.tableSchema(DB, table).getFields().get(4).getName());
    assertTrue(connection.health().isObject());
    assertFalse(connection.serverVersion().isEmpty());
    assertTrue(connection.dropTable(DB, table, false));
    assertFalse(connection.listTables(DB).contains(table));
  }

  private static List<String> names(Schema schema) {
    List<String> names = new ArrayList<>();
    schema.getFields().forEach(f -> names.add(f.getName()));
    return names;
  }

  @Test
  void writtenBatchesScanBackWithValuesAndNulls() throws Exception {
    String table = newLogTable();
    try (StromWriter writer = connection.appendWriter(DB, table)) {
      try (VectorSchemaRoot first = orders(1, 10)) {
        WriteAck ack = writer.write(first);
        assertEquals(10, ack.rows());
        assertEquals(10, ack.buckets().stream().mapToLong(WriteAck.BucketAppend::count).sum());
      }
      List<CompletableFuture<WriteAck>> acks = new ArrayList<>();
      for (int b = 0; b < 5; b++) {
        try (VectorSchemaRoot batch = orders(11 + b * 20L, 20)) {
          // The root is closed right after the call: Rust holds its own reference.
          acks.add(writer.writeAsync(batch));
        }
      }
      long acked = 0;
      for (CompletableFuture<WriteAck> ack : acks) {
        acked += ack.get(60, TimeUnit.SECONDS).rows();
        // Stages chained on the future never run on the client's IO threads.
        String thread = ack.thenApply(a -> Thread.currentThread().getName()).get();
        assertFalse(thread.startsWith("strom-client"), thread);
      }
      assertEquals(100, acked);
      writer.flush();
    }
    List<String> expected = new ArrayList<>();
    for (long key = 1; key <= 110; key++) {
      expected.add(expectedRow(key));
    }
    assertEquals(expected, scanAll(ScanRequest.log(DB, table)));

    List<BucketOffset> latest = connection.listOffsets(DB, table, null, OffsetSpec.latest());
    assertEquals(2, latest.size());
    assertEquals(110, latest.stream().mapToLong(BucketOffset::offset).sum());

    // Projection: only the asked columns come back.
    List<String> projected = scanAll(ScanRequest.log(DB, table).columns(List.of("id", "paid")));
    assertEquals("7|false", projected.get(6));
  }

  @Test
  void batchesCrossWithoutTheirSchemaOnlyWhenItIsTheOneTheWriterKeeps() throws Exception {
    // A batch crosses without its schema when it equals the one sent before (Rust keeps it by
    // id). Two threads share a writer, every batch a root of its own (equal schemas, new
    // objects); then a batch of another column order must cross with its own schema and be
    // refused, never be read with the kept one.
    String table = newLogTable();
    int threads = 2;
    int batchesPerThread = 40;
    int rowsPerBatch = 5;
    try (StromWriter writer = connection.appendWriter(DB, table)) {
      List<CompletableFuture<Void>> done = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        int thread = t;
        done.add(
            CompletableFuture.runAsync(
                () -> {
                  for (int b = 0; b < batchesPerThread; b++) {
                    long first = 1 + ((long) thread * batchesPerThread + b) * rowsPerBatch;
                    try (VectorSchemaRoot batch = orders(first, rowsPerBatch)) {
                      if (b % 3 == 0) {
                        writer.write(batch);
                      } else {
                        writer.writeAsync(batch);
                      }
                    }
                  }
                }));
      }
      CompletableFuture.allOf(done.toArray(new CompletableFuture[0])).get(120, TimeUnit.SECONDS);
      writer.flush();
      try (VectorSchemaRoot batch = orders(100_000, rowsPerBatch)) {
        List<FieldVector> columns = new ArrayList<>(batch.getFieldVectors());
        java.util.Collections.reverse(columns);
        // Shares the vectors; closing `batch` frees them.
        VectorSchemaRoot reversed = new VectorSchemaRoot(columns);
        StromInvalidArgumentException refused =
            assertThrows(StromInvalidArgumentException.class, () -> writer.write(reversed));
        assertTrue(refused.getMessage().contains("\"paid\""), refused.getMessage());
      }
    }
    List<String> expected = new ArrayList<>();
    for (long key = 1; key <= (long) threads * batchesPerThread * rowsPerBatch; key++) {
      expected.add(expectedRow(key));
    }
    assertEquals(expected, scanAll(ScanRequest.log(DB, table)));
  }

  @Test
  void lookupsFindRowsSyncAndAsync() throws Exception {
    String table = usersTableWithOrders(50);
    Schema keySchema = new Schema(List.of(field("id", new ArrowType.Int(64, true), false)));
    try (StromLookuper lookuper = connection.lookuper(DB, table);
        VectorSchemaRoot keys = VectorSchemaRoot.create(keySchema, connection.allocator())) {
      BigIntVector id = (BigIntVector) keys.getVector("id");
      id.setSafe(0, 7);
      id.setSafe(1, 999); // not there
      id.setSafe(2, 9);
      keys.setRowCount(3);
      try (VectorSchemaRoot answer = lookuper.lookup(keys)) {
        assertEquals(2, answer.getRowCount(), answer.contentToTSVString());
        IntVector keyIndex = (IntVector) answer.getVector("_key_index");
        assertEquals(0, keyIndex.get(0));
        assertEquals(2, keyIndex.get(1));
        assertEquals("c7", answer.getVector("customer").getObject(0).toString());
        assertNull(answer.getVector("customer").getObject(1), "customer 9 is null");
      }
      CompletableFuture<VectorSchemaRoot> async = lookuper.lookupAsync(keys);
      try (VectorSchemaRoot answer = async.get(60, TimeUnit.SECONDS)) {
        assertEquals(2, answer.getRowCount());
        assertEquals(13.5, ((Float8Vector) answer.getVector("amount")).get(1));
      }

      // A delete writer takes key batches; the deleted key is no longer found.
      try (StromWriter deletes = connection.deleteWriter(DB, table);
          VectorSchemaRoot deleted = VectorSchemaRoot.create(keySchema, connection.allocator())) {
        ((BigIntVector) deleted.getVector("id")).setSafe(0, 7);
        deleted.setRowCount(1);
        assertEquals(1, deletes.write(deleted).rows());
      }
      try (VectorSchemaRoot answer = lookuper.lookup(keys)) {
        assertEquals(1, answer.getRowCount(), answer.contentToTSVString());
        assertEquals(2, ((IntVector) answer.getVector("_key_index")).get(0), "only key 9 is left");
      }
    }
    List<String> snapshot = scanAll(ScanRequest.snapshot(DB, table));
    assertEquals(49, snapshot.size(), "50 upserted, 1 deleted");
    assertEquals(expectedRow(50), snapshot.get(48));
  }

  @Test
  void aRecycledAnswerTakesTheNextAnswerWithoutStaleRowsAndIsFreedWithTheLookuper() throws Exception {
    // The lookup function hands each answer back (StromLookuper.recycle) instead of closing
    // it: the next answer, sync or async, larger or smaller, is imported into its vectors.
    String table = usersTableWithOrders(30);
    Schema keySchema = new Schema(List.of(field("id", new ArrowType.Int(64, true), false)));
    long before = connection.allocator().getAllocatedMemory();
    try (VectorSchemaRoot keys = VectorSchemaRoot.create(keySchema, connection.allocator())) {
      keys.allocateNew();
      long withKeys = connection.allocator().getAllocatedMemory();
      try (StromLookuper lookuper = connection.lookuper(DB, table)) {
        BigIntVector id = (BigIntVector) keys.getVector("id");
        VectorSchemaRoot previous = null;
        for (int round = 0; round < 6; round++) {
          int count = round % 2 == 0 ? 5 : 2;
          for (int k = 0; k < count; k++) {
            id.setSafe(k, 1 + round + k);
          }
          keys.setRowCount(count);
          VectorSchemaRoot answer = round % 3 == 0 ? lookuper.lookup(keys) : lookuper.lookupAsync(keys).get(60, TimeUnit.SECONDS);
          if (previous != null) {
            assertSame(previous, answer, "the recycled root took this answer");
          }
          assertEquals(count, answer.getRowCount(), answer.contentToTSVString());
          for (int r = 0; r < count; r++) {
            assertEquals(r, ((IntVector) answer.getVector("_key_index")).get(r));
            long key = 1 + round + r;
            assertEquals(key % 3 == 0 ? "null" : "c" + key, String.valueOf(answer.getVector("customer").getObject(r)));
          }
          lookuper.recycle(answer);
          previous = answer;
        }
      }
      // Closing the lookuper closed the root it kept: only the key batch is left.
      assertEquals(withKeys, connection.allocator().getAllocatedMemory());
    }
    assertEquals(before, connection.allocator().getAllocatedMemory());
  }

  @Test
  void lookupAnswersKeepTheirLookupersColumnsAndANewLookuperSeesAnAddedColumn() throws Exception {
    // The answer's schema crosses with the first answer only (later ones are imported into the
    // schema Java kept), sync and async alike. A lookuper's columns are fixed when it opens:
    // after an ADD COLUMN its answers keep their shape, a new lookuper's have the column.
    String table = usersTableWithOrders(20);
    Schema keySchema = new Schema(List.of(field("id", new ArrowType.Int(64, true), false)));
    try (StromLookuper lookuper = connection.lookuper(DB, table);
        VectorSchemaRoot keys = VectorSchemaRoot.create(keySchema, connection.allocator())) {
      ((BigIntVector) keys.getVector("id")).setSafe(0, 4);
      keys.setRowCount(1);
      Schema first = null;
      for (int i = 0; i < 3; i++) {
        try (VectorSchemaRoot answer = lookuper.lookup(keys);
            VectorSchemaRoot async = lookuper.lookupAsync(keys).get(60, TimeUnit.SECONDS)) {
          assertEquals("c4", answer.getVector("customer").getObject(0).toString());
          assertEquals(6.0, ((Float8Vector) async.getVector("amount")).get(0));
          first = first == null ? answer.getSchema() : first;
          assertEquals(first, answer.getSchema());
          assertEquals(first, async.getSchema());
        }
      }
      connection.alterTable(DB, table, Map.of("channel", "STRING"), Map.of());
      try (VectorSchemaRoot answer = lookuper.lookupAsync(keys).get(60, TimeUnit.SECONDS)) {
        assertEquals(first, answer.getSchema());
      }
      try (StromLookuper after = connection.lookuper(DB, table);
          VectorSchemaRoot async = after.lookupAsync(keys).get(60, TimeUnit.SECONDS);
          VectorSchemaRoot answer = after.lookup(keys)) {
        for (VectorSchemaRoot root : List.of(async, answer)) {
          assertNull(root.getVector("channel").getObject(0), "written before the column");
          assertEquals("c4", root.getVector("customer").getObject(0).toString());
        }
      }
    }
  }

  @Test
  void nodeErrorsBecomeTypedExceptionsWithTheNodesMessage() {
    StromNotFoundException missing =
        assertThrows(StromNotFoundException.class, () -> connection.getTable(DB, "no_such_table"));
    assertEquals("NOT_FOUND", missing.status());
    assertTrue(missing.nodeMessage().contains("no_such_table"), missing.getMessage());

    String table = newLogTable();
    StromAlreadyExistsException exists =
        assertThrows(
            StromAlreadyExistsException.class,
            () -> connection.createTable(TableSpec.of(DB, table).column("id", "BIGINT")));
    assertTrue(exists.nodeMessage().contains(table), exists.getMessage());

    StromInvalidArgumentException badOption =
        assertThrows(
            StromInvalidArgumentException.class,
            () ->
                connection.createTable(
                    TableSpec.of(DB, table + "_bad")
                        .column("id", "BIGINT")
                        .option("table.no-such-option", "1")));
    assertTrue(badOption.nodeMessage().contains("table.no-such-option"), badOption.getMessage());

    assertThrows(
        StromNotFoundException.class, () -> connection.scan(ScanRequest.log(DB, "no_such_table")));

    // A batch that does not fit the table is rejected and names the column.
    Schema wrong = new Schema(List.of(field("nope", ArrowType.Utf8.INSTANCE, true)));
    StromWriter writer = connection.appendWriter(DB, table);
    try (VectorSchemaRoot batch = VectorSchemaRoot.create(wrong, connection.allocator())) {
      ((VarCharVector) batch.getVector("nope")).setSafe(0, new Text("x"));
      batch.setRowCount(1);
      StromException rejected = assertThrows(StromException.class, () -> writer.write(batch));
      assertInstanceOf(StromInvalidArgumentException.class, rejected, rejected.getMessage());
      assertTrue(rejected.nodeMessage().contains("\"nope\""), rejected.getMessage());
    }
    // close() flushes, and a flush reports the first failure since the last one: the
    // rejection again. The writer is freed all the same.
    assertThrows(StromInvalidArgumentException.class, writer::close);
    assertTrue(writer.isClosed());

    // Async failures complete the future with the same typed exceptions.
    try (StromLookuper lookuper = connection.lookuper(DB, "no_such_table");
        VectorSchemaRoot keys =
            VectorSchemaRoot.create(
                new Schema(List.of(field("id", new ArrowType.Int(64, true), false))),
                connection.allocator())) {
      ((BigIntVector) keys.getVector("id")).setSafe(0, 1);
      keys.setRowCount(1);
      ExecutionException failed =
          assertThrows(
              ExecutionException.class, () -> lookuper.lookupAsync(keys).get(60, TimeUnit.SECONDS));
      assertInstanceOf(StromException.class, failed.getCause(), failed.toString());
    } catch (StromException thrownAtSubmit) {
      // The lookuper may also refuse at submission once its stream failed: still typed.
      assertTrue(thrownAtSubmit.nodeMessage().contains("no_such_table"), thrownAtSubmit.getMessage());
    }
  }

  @Test
  void handlesUsedAfterCloseAreIllegalStateNeverACrash() {
    String table = newLogTable();
    StromWriter writer = connection.appendWriter(DB, table);
    StromScanner scanner = connection.scan(ScanRequest.log(DB, table));
    StromLookuper lookuper = connection.lookuper(DB, table);
    writer.close();
    scanner.close();
    lookuper.close();
    writer.close(); // idempotent
    assertTrue(writer.isClosed());
    try (VectorSchemaRoot batch = orders(1, 1)) {
      assertThrows(IllegalStateException.class, () -> writer.write(batch));
      assertThrows(IllegalStateException.class, () -> lookuper.lookup(batch));
    }
    assertThrows(IllegalStateException.class, writer::flush);
    assertThrows(IllegalStateException.class, () -> scanner.poll(Duration.ofMillis(1)));
    assertThrows(IllegalStateException.class, scanner::wakeup);

    StromConnection other = StromConnection.connect(node.endpoint());
    other.close();
    assertThrows(IllegalStateException.class, other::listDatabases);

    // A stale handle of another kind is caught by the registry, not dereferenced.
    IllegalStateException wrongKind =
        assertThrows(IllegalStateException.class, () -> StromNative.flush(Long.MAX_VALUE));
    assertTrue(wrongKind.getMessage().contains("not a writer"), wrongKind.getMessage());
  }

  @Test
  void nothingLeaksOnceEverythingIsClosed() {
    JsonNode before = Json.parse(StromNative.openHandles());
    String table = newLogTable();
    try (StromWriter writer = connection.appendWriter(DB, table);
        VectorSchemaRoot batch = orders(1, 3)) {
      writer.write(batch);
    }
    assertEquals(3, scanAll(ScanRequest.log(DB, table)).size());
    JsonNode after = Json.parse(StromNative.openHandles());
    assertEquals(before, after);
  }

  @Test
  void manyThreadsLookingUpAsyncEachGetTheirOwnAnswers() throws Exception {
    String table = usersTableWithOrders(200);
    Schema keySchema = new Schema(List.of(field("id", new ArrowType.Int(64, true), false)));
    try (StromLookuper lookuper = connection.lookuper(DB, table)) {
      List<CompletableFuture<Void>> threads = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        final int thread = t;
        threads.add(
            CompletableFuture.runAsync(
                () -> {
                  List<CompletableFuture<VectorSchemaRoot>> answers = new ArrayList<>();
                  List<Long> asked = new ArrayList<>();
                  for (int i = 0; i < 50; i++) {
                    long key = 1 + (thread * 50 + i) % 200;
                    try (VectorSchemaRoot keys =
                        VectorSchemaRoot.create(keySchema, connection.allocator())) {
                      ((BigIntVector) keys.getVector("id")).setSafe(0, key);
                      keys.setRowCount(1);
                      answers.add(lookuper.lookupAsync(keys));
                      asked.add(key);
                    }
                  }
                  for (int i = 0; i < answers.size(); i++) {
                    try (VectorSchemaRoot answer = answers.get(i).join()) {
                      assertEquals(1, answer.getRowCount());
                      assertEquals(asked.get(i), ((BigIntVector) answer.getVector("id")).get(0));
                    }
                  }
                }));
      }
      CompletableFuture.allOf(threads.toArray(new CompletableFuture<?>[0])).get(120, TimeUnit.SECONDS);
    }
  }

  @Test
  void aNodeThatGoesAwayMakesCallsUnavailable() throws Exception {
    StromNode doomed = StromNode.start();
    try (StromConnection lost = StromConnection.connect(doomed.endpoint())) {
      assertTrue(lost.createDatabase("before_the_crash", false), "the node answers at first");
      doomed.close();
      StromException e = assertThrows(StromException.class, lost::listDatabases);
      assertInstanceOf(StromUnavailableException.class, e, e.getMessage());
      assertTrue(e.isRetriable());
    }
  }

  @Test
  void connectionsToOneEndpointShareOneClientUntilTheLastCloses() {
    JsonNode before = Json.parse(StromNative.openHandles());
    assertEquals(1, before.get("shared_clients").asInt(), "the class's connection");
    try (StromConnection second = StromConnection.connect(node.endpoint());
        StromConnection third = StromConnection.connect(node.endpoint())) {
      JsonNode during = Json.parse(StromNative.openHandles());
      assertEquals(before.get("connections").asInt() + 2, during.get("connections").asInt());
      assertEquals(1, during.get("shared_clients").asInt(), "one runtime for the endpoint");
      second.close();
      assertTrue(third.listDatabases().contains(DB), "closing one handle leaves the others working");
    }
    assertEquals(before, Json.parse(StromNative.openHandles()));
  }

  @Test
  void aWriterNobodyClosedIsFreedByTheCleaner() {
    String table = newLogTable();
    int writersBefore = Json.parse(StromNative.openHandles()).get("writers").asInt();
    openAndForgetWriter(table);
    assertEquals(writersBefore + 1, Json.parse(StromNative.openHandles()).get("writers").asInt());
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    // Await the condition (the cleaner freed the handle), prodding the GC meanwhile.
    while (Json.parse(StromNative.openHandles()).get("writers").asInt() > writersBefore) {
      assertTrue(System.nanoTime() < deadline, "the cleaner never freed the writer");
      System.gc();
      Thread.onSpinWait();
    }
  }

  private void openAndForgetWriter(String table) {
    connection.appendWriter(DB, table); // unreachable once this returns
  }

  @Test
  void pollTimesOutOnAnIdleFollowScanAndWakeupEndsAWaitingPoll() throws Exception {
    String table = newLogTable();
    try (StromScanner scanner = connection.scan(ScanRequest.log(DB, table).follow())) {
      long started = System.nanoTime();
      assertNull(scanner.poll(Duration.ofMillis(200)));
      assertTrue(System.nanoTime() - started >= TimeUnit.MILLISECONDS.toNanos(200));
      assertFalse(scanner.isFinished(), "a follow scan never finishes on its own");

      CompletableFuture<ScanBatch> waiting =
          CompletableFuture.supplyAsync(() -> scanner.poll(Duration.ofSeconds(60)));
      // Wake until the poller returned; no guess of when it started waiting.
      while (!waiting.isDone()) {
        scanner.wakeup();
        Thread.onSpinWait();
      }
      assertNull(waiting.get(), "woken, not a batch");
      assertTrue(System.nanoTime() - started < TimeUnit.SECONDS.toNanos(30));

      // New data reaches the follow scan.
      try (StromWriter writer = connection.appendWriter(DB, table);
          VectorSchemaRoot batch = orders(1, 4)) {
        writer.write(batch);
      }
      int rows = 0;
      while (rows < 4) {
        try (ScanBatch batch = scanner.poll(Duration.ofSeconds(30))) {
          if (batch != null) {
            rows += batch.root().getRowCount();
            assertTrue(batch.highWatermark() >= batch.baseOffset());
          }
        }
      }
      assertEquals(4, rows);
    }
  }
}
