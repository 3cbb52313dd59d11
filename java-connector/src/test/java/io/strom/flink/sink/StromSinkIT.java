package io.strom.flink.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.strom.flink.client.BucketOffset;
import io.strom.flink.client.OffsetSpec;
import io.strom.flink.client.ScanBatch;
import io.strom.flink.client.ScanRequest;
import io.strom.flink.client.StromScanner;
import java.math.BigDecimal;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import io.strom.flink.FlinkStromFixture;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * INSERT INTO Strom tables from Flink 2.3 jobs on a MiniCluster, against the real node: what
 * arrives is read back with the client's scans, independent of the connector's own source.
 */
class StromSinkIT {
  @RegisterExtension
  static final MiniClusterExtension FLINK = new MiniClusterExtension();

  @RegisterExtension
  static final FlinkStromFixture STROM = new FlinkStromFixture("sink");

  /** A table environment with the catalog; one subtask: changes arrive in the order made. */
  private static TableEnvironment flink(EnvironmentSettings settings) {
    return STROM.flink(settings, 1);
  }

  @Test
  void logTableReceivesEveryTypeAndNulls() throws Exception {
    TableEnvironment tEnv = flink(EnvironmentSettings.inBatchMode());
    tEnv.executeSql(
            "CREATE TABLE all_types (id INT NOT NULL, b BOOLEAN, ti TINYINT, si SMALLINT,"
                + " bi BIGINT, f FLOAT, d DOUBLE, dcm DECIMAL(12, 3), ch CHAR(3), s STRING,"
                + " bin BINARY(2), vb BYTES, dt DATE, t TIME(3), ts TIMESTAMP(6),"
                + " ltz TIMESTAMP_LTZ(3), arr ARRAY<INT>, m MAP<STRING, BIGINT>,"
                + " r ROW<x INT, y STRING>) WITH ('bucket.num' = '1')")
        .await();
    tEnv.executeSql(
            "INSERT INTO all_types VALUES (1, TRUE, CAST(-8 AS TINYINT), CAST(300 AS SMALLINT),"
                + " 9000000000, CAST(1.5 AS FLOAT), 2.25, CAST(123456789.012 AS DECIMAL(12, 3)),"
                + " 'abc', 'héllo', X'0102', X'FF', DATE '2026-11-21', TIME '12:34:56.789',"
                + " TIMESTAMP '2026-11-21 12:34:56.123456', TO_TIMESTAMP_LTZ(1763733000123, 3),"
                + " ARRAY[1, CAST(NULL AS INT), 3], MAP['k', CAST(7 AS BIGINT)], ROW(5, 'five'))")
        .await();
    // A column list on a log table: the planner fills the other columns with NULL.
    tEnv.executeSql("INSERT INTO all_types (id) VALUES (2)").await();

    List<List<Object>> rows = scan(ScanRequest.log("sink", "all_types"));
    assertEquals(2, rows.size());
    List<Object> full = rows.get(0);
    assertEquals(1, full.get(0));
    assertEquals(true, full.get(1));
    assertEquals((byte) -8, full.get(2));
    assertEquals((short) 300, full.get(3));
    assertEquals(9000000000L, full.get(4));
    assertEquals(1.5f, full.get(5));
    assertEquals(2.25, full.get(6));
    assertEquals(new BigDecimal("123456789.012"), full.get(7));
    assertEquals("abc", full.get(8).toString());
    assertEquals("héllo", full.get(9).toString());
    assertEquals("[1, 2]", java.util.Arrays.toString((byte[]) full.get(10)));
    assertEquals("[-1]", java.util.Arrays.toString((byte[]) full.get(11)));
    assertEquals(java.time.LocalDate.parse("2026-11-21").toEpochDay(), ((Number) full.get(12)).longValue());
    assertEquals("1970-01-01T12:34:56.789", full.get(13).toString());
    assertEquals("2026-11-21T12:34:56.123456", full.get(14).toString());
    assertEquals(1763733000123L, full.get(15));
    assertEquals("[1,null,3]", full.get(16).toString());
    assertTrue(full.get(17).toString().contains("\"key\":\"k\"") && full.get(17).toString().contains("\"value\":7"), full.get(17).toString());
    assertEquals("{\"x\":5,\"y\":\"five\"}", full.get(18).toString());
    List<Object> nulls = rows.get(1);
    assertEquals(2, nulls.get(0));
    for (int c = 1; c < nulls.size(); c++) {
      assertEquals(null, nulls.get(c), "column " + c + " of the null row");
    }
  }

  @Test
  void primaryKeyTableTakesUpsertsAndPartialUpdatesFromTheColumnList() throws Exception {
    TableEnvironment tEnv = flink(EnvironmentSettings.inBatchMode());
    tEnv.executeSql(
            "CREATE TABLE shop_stat_wide (shop_id BIGINT, ds STRING, pv BIGINT, gmv DECIMAL(10, 2),"
                + " PRIMARY KEY (shop_id, ds) NOT ENFORCED) WITH ('bucket.num' = '2')")
        .await();
    tEnv.executeSql("INSERT INTO shop_stat_wide VALUES (1, 'd1', 10, 1.50), (2, 'd1', 20, 2.50)").await();
    // Two jobs each own some columns of the wide table, as in the seeds.
    tEnv.executeSql("INSERT INTO shop_stat_wide (shop_id, ds, pv) VALUES (1, 'd1', 11), (3, 'd1', 30)").await();
    tEnv.executeSql("INSERT INTO shop_stat_wide (shop_id, ds, gmv) VALUES (2, 'd1', 9.99)").await();

    assertEquals(
        List.of("1|d1|11|1.50", "2|d1|20|9.99", "3|d1|30|null"),
        render(scan(ScanRequest.snapshot("sink", "shop_stat_wide"))));

    Throwable missingKey =
        assertThrows(
            Throwable.class,
            () -> tEnv.executeSql("INSERT INTO shop_stat_wide (shop_id, pv) VALUES (4, 40)").await());
    // Flink's own validation refuses it first (key columns are NOT NULL), naming the column.
    String message = messages(missingKey);
    assertTrue(message.contains("'ds'"), message);
  }

  @Test
  void deletesOfAnUpdatingQueryRemoveKeys() throws Exception {
    TableEnvironment tEnv = flink(EnvironmentSettings.inStreamingMode());
    tEnv.executeSql(
            "CREATE TABLE small_groups (g STRING, total INT, PRIMARY KEY (g) NOT ENFORCED)"
                + " WITH ('bucket.num' = '1')")
        .await();
    // Group 'a' appears with 10, then leaves the result when its total reaches 20: a delete.
    tEnv.executeSql(
            "INSERT INTO small_groups SELECT g, SUM(v) FROM (VALUES ('a', 10), ('b', 5), ('a', 10))"
                + " AS src(g, v) GROUP BY g HAVING SUM(v) < 15")
        .await();
    List<String> changes = new ArrayList<>();
    for (List<Object> row : scan(ScanRequest.log("sink", "small_groups"))) {
      changes.add(row.get(2) + "" + row.get(0));
    }
    assertTrue(changes.contains("-Da"), "the changelog holds the delete of 'a': " + changes);
    assertEquals(List.of("b|5"), render(scan(ScanRequest.snapshot("sink", "small_groups"))));
  }

  @Test
  void anUnboundedJobMakesItsRowsDurableAtEveryCheckpoint() throws Exception {
    Configuration conf = new Configuration();
    conf.setString("execution.checkpointing.interval", "200 ms");
    TableEnvironment tEnv =
        flink(EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build());
    tEnv.executeSql(
            "CREATE TABLE ticks (id BIGINT) WITH ('bucket.num' = '1',"
                + " 'sink.buffer-flush.max-rows' = '1000000', 'sink.buffer-flush.interval' = '0')")
        .await();
    tEnv.executeSql(
        "CREATE TEMPORARY TABLE gen (id BIGINT) WITH ('connector' = 'datagen',"
            + " 'rows-per-second' = '200', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1',"
            // Flink's sequence generator materializes every value of its range when it opens:
            // 10^8 of them took seconds of CPU and most of the heap. A minute's worth suffices.
            + " 'fields.id.end' = '100000')");
    TableResult job = tEnv.executeSql("INSERT INTO ticks SELECT id FROM gen");
    try {
      // The buffer would hold a million rows: only the checkpoints' flushes send them.
      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      long stored = 0;
      while (stored < 50 && System.nanoTime() < deadline) {
        stored = storedRows("ticks");
        if (stored < 50) {
          Thread.sleep(50); // polling the node's offsets; the condition is what we wait for
        }
      }
      assertTrue(stored >= 50, "rows reached the node through checkpoints: " + stored);
    } finally {
      // Cancelled, then awaited until terminal: the tasks have closed their writers then.
      org.apache.flink.core.execution.JobClient client = job.getJobClient().orElseThrow();
      client.cancel().get();
      client.getJobExecutionResult().handle((result, error) -> null).get();
    }
    List<List<Object>> rows = scan(ScanRequest.log("sink", "ticks"));
    for (int i = 0; i < rows.size(); i++) {
      assertEquals((long) i + 1, rows.get(i).get(0), "rows arrive in order, none lost, none twice");
    }
  }

  @Test
  void withoutCheckpointsTheFlushIntervalSendsASlowStreamsRows() throws Exception {
    // No checkpointing and a buffer that never fills: only the flush interval sends rows.
    TableEnvironment tEnv = flink(EnvironmentSettings.inStreamingMode());
    tEnv.executeSql(
            "CREATE TABLE trickle (id BIGINT) WITH ('bucket.num' = '1',"
                + " 'sink.buffer-flush.max-rows' = '1000000', 'sink.buffer-flush.interval' = '100 ms')")
        .await();
    tEnv.executeSql(
        "CREATE TEMPORARY TABLE slow_gen (id BIGINT) WITH ('connector' = 'datagen',"
            + " 'rows-per-second' = '20', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1',"
            + " 'fields.id.end' = '100000')");
    TableResult job = tEnv.executeSql("INSERT INTO trickle SELECT id FROM slow_gen");
    try {
      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      long stored = 0;
      while (stored < 10 && System.nanoTime() < deadline) {
        stored = storedRows("trickle");
        if (stored < 10) {
          Thread.sleep(50); // polling the node's offsets; the condition is what we wait for
        }
      }
      assertTrue(stored >= 10, "rows reached the node without a checkpoint: " + stored);
    } finally {
      org.apache.flink.core.execution.JobClient client = job.getJobClient().orElseThrow();
      client.cancel().get();
      client.getJobExecutionResult().handle((result, error) -> null).get();
    }
    List<List<Object>> rows = scan(ScanRequest.log("sink", "trickle"));
    for (int i = 0; i < rows.size(); i++) {
      assertEquals((long) i + 1, rows.get(i).get(0), "rows arrive in order, none lost, none twice");
    }

    String negative =
        messages(
            assertThrows(
                Throwable.class,
                () ->
                    tEnv.executeSql(
                            "INSERT INTO trickle /*+ OPTIONS('sink.buffer-flush.interval' = '-1 s') */ VALUES (1)")
                        .await()));
    assertTrue(negative.contains("sink.buffer-flush.interval"), negative);
  }

  private static long storedRows(String table) {
    long rows = 0;
    for (BucketOffset offset : STROM.strom().listOffsets("sink", table, null, OffsetSpec.latest())) {
      rows += offset.offset();
    }
    return rows;
  }

  @Test
  void tablesDeclaredWithTheConnectorOptionWriteToTheirStromTable() throws Exception {
    STROM.strom().createTable(
        io.strom.flink.client.TableSpec.of("sink", "events").column("id", "BIGINT").column("name", "STRING"));
    TableEnvironment tEnv = TableEnvironment.create(EnvironmentSettings.inBatchMode());
    tEnv.getConfig().set("parallelism.default", "1");
    tEnv.executeSql(
            "CREATE TABLE ev (id BIGINT, name STRING) WITH ('connector' = 'strom', 'endpoint' = '"
                + STROM.endpoint() + "', 'database' = 'sink', 'table' = 'events',"
                + " 'sink.buffer-flush.max-rows' = '1')")
        .await();
    tEnv.executeSql("INSERT INTO ev VALUES (1, 'one'), (2, 'two'), (3, 'three')").await();
    assertEquals(List.of("1|one", "2|two", "3|three"), render(scan(ScanRequest.log("sink", "events"))));

    tEnv.executeSql(
        "CREATE TABLE no_table (id BIGINT) WITH ('connector' = 'strom', 'endpoint' = '"
            + STROM.endpoint() + "', 'database' = 'sink')");
    String missing = messages(assertThrows(Throwable.class, () -> tEnv.executeSql("INSERT INTO no_table VALUES (1)").await()));
    assertTrue(missing.contains("table"), missing);
    tEnv.executeSql(
        "CREATE TABLE typo (id BIGINT) WITH ('connector' = 'strom', 'endpoint' = '"
            + STROM.endpoint() + "', 'database' = 'sink', 'table' = 'events', 'sink.bufer' = '1')");
    String typo = messages(assertThrows(Throwable.class, () -> tEnv.executeSql("INSERT INTO typo VALUES (1)").await()));
    assertTrue(typo.contains("sink.bufer"), typo);
    // The same declaration reads the table back through the source.
    List<String> read = new ArrayList<>();
    tEnv.executeSql("SELECT id, name FROM ev").collect().forEachRemaining(row -> read.add(row.toString()));
    read.sort(null);
    assertEquals(List.of("+I[1, one]", "+I[2, two]", "+I[3, three]"), read);
  }

  /** Every row of a bounded scan, as Java values (Arrow's getObject), in bucket/offset order. */
  private static List<List<Object>> scan(ScanRequest request) {
    List<List<Object>> rows = new ArrayList<>();
    try (StromScanner scanner = STROM.strom().scan(request)) {
      while (!scanner.isFinished()) {
        try (ScanBatch batch = scanner.poll(Duration.ofSeconds(30))) {
          if (batch == null) {
            continue;
          }
          VectorSchemaRoot root = batch.root();
          for (int r = 0; r < root.getRowCount(); r++) {
            List<Object> row = new ArrayList<>();
            for (FieldVector vector : root.getFieldVectors()) {
              row.add(vector.getObject(r));
            }
            rows.add(row);
          }
        }
      }
    }
    return rows;
  }

  private static List<String> render(List<List<Object>> rows) {
    List<String> out = new ArrayList<>();
    for (List<Object> row : rows) {
      List<String> values = new ArrayList<>();
      row.forEach(v -> values.add(String.valueOf(v)));
      out.add(String.join("|", values));
    }
    out.sort(null);
    return out;
  }

  private static String messages(Throwable error) {
    StringBuilder out = new StringBuilder();
    for (Throwable t = error; t != null; t = t.getCause()) {
      out.append(t.getMessage()).append(" | ");
    }
    return out.toString();
  }
}
