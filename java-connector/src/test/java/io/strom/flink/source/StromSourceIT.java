package io.strom.flink.source;

import static io.strom.flink.source.SourceTestSupport.all;
import static io.strom.flink.source.SourceTestSupport.append;
import static io.strom.flink.source.SourceTestSupport.delete;
import static io.strom.flink.source.SourceTestSupport.messages;
import static io.strom.flink.source.SourceTestSupport.take;
import static io.strom.flink.source.SourceTestSupport.upsert;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.strom.flink.client.TableSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.Test;
import io.strom.flink.FlinkStromFixture;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * SELECT from Strom tables in Flink 2.3 jobs on a MiniCluster, against the real node: batch
 * reads of log tables and of primary-key snapshots, the changelog of a primary-key table in
 * full mode with changes made while the job runs, every startup mode, the changelog modes the
 * planner sees, projection (proved by the bytes the node sent), LIMIT and COUNT(*).
 */
class StromSourceIT {
  // Four slots: a streaming job keeps one while the test's batch jobs run beside it.
  @RegisterExtension
  static final MiniClusterExtension FLINK = FlinkStromFixture.miniCluster(4);

  @RegisterExtension
  static final FlinkStromFixture STROM = new FlinkStromFixture("src");

  private static final String DB = STROM.database();
  private static final List<String> ID_NAME = List.of("id", "name");

  private static List<String> sorted(List<String> rows) {
    List<String> copy = new ArrayList<>(rows);
    copy.sort(null);
    return copy;
  }

  @Test
  void batchSelectReadsALogTableUpToTheOffsetsOfJobStart() throws Exception {
    STROM.strom().createTable(TableSpec.of(DB, "log_batch").column("id", "BIGINT").column("name", "STRING").bucketNum(3));
    for (long i = 1; i <= 30; i += 3) {
      append(STROM.strom(), DB, "log_batch", ID_NAME, new Object[] {i, "n" + i}, new Object[] {i + 1, null}, new Object[] {i + 2, "n" + (i + 2)});
    }
    TableEnvironment tEnv = STROM.flink(EnvironmentSettings.inBatchMode(), 1);
    List<String> rows = sorted(all(tEnv.executeSql("SELECT id, name FROM log_batch").collect()));
    assertEquals(30, rows.size(), rows.toString());
    List<String> expected = new ArrayList<>();
    for (long i = 1; i <= 30; i++) {
      expected.add("+I[" + i + ", " + ((i - 2) % 3 == 0 ? "null" : "n" + i) + "]");
    }
    assertEquals(sorted(expected), rows);
  }

  @Test
  void everyTypeReadsBackAsItWasWritten() throws Exception {
    TableEnvironment tEnv = STROM.flink(EnvironmentSettings.inBatchMode(), 1);
    tEnv.executeSql(
            "CREATE TABLE all_types (id INT NOT NULL, b BOOLEAN, ti TINYINT, si SMALLINT,"
                + " bi BIGINT, f FLOAT, d DOUBLE, small_dec DECIMAL(12, 3), big_dec DECIMAL(30, 4),"
                + " ch CHAR(3), s STRING, bin BINARY(2), vb BYTES, dt DATE, t TIME(3),"
                + " ts TIMESTAMP(6), ts9 TIMESTAMP(9), ltz TIMESTAMP_LTZ(3), arr ARRAY<INT>,"
                + " m MAP<STRING, BIGINT>, r ROW<x INT, y STRING>) WITH ('bucket.num' = '1')")
        .await();
    tEnv.executeSql(
            "INSERT INTO all_types VALUES (1, TRUE, CAST(-8 AS TINYINT), CAST(300 AS SMALLINT),"
                + " 9000000000, CAST(1.5 AS FLOAT), 2.25, CAST(123456789.012 AS DECIMAL(12, 3)),"
                + " CAST('12345678901234567890.1234' AS DECIMAL(30, 4)), 'abc', 'héllo', X'0102',"
                + " X'FF', DATE '2026-11-21', TIME '12:34:56.789', TIMESTAMP '2026-11-21 12:34:56.123456',"
                + " TIMESTAMP '1969-12-31 23:59:59.123456789', TO_TIMESTAMP_LTZ(1763733000123, 3),"
                + " ARRAY[1, CAST(NULL AS INT), 3], MAP['k', CAST(7 AS BIGINT)], ROW(5, 'five'))")
        .await();
    tEnv.executeSql("INSERT INTO all_types (id) VALUES (2)").await();
    tEnv.getConfig().set("table.local-time-zone", "UTC");
    List<String> rows = sorted(all(tEnv.executeSql("SELECT * FROM all_types").collect()));
    assertEquals(
        List.of(
            "+I[1, true, -8, 300, 9000000000, 1.5, 2.25, 123456789.012, 12345678901234567890.1234,"
                + " abc, héllo, [1, 2], [-1], 2026-11-21, 12:34:56.789, 2026-11-21T12:34:56.123456,"
                + " 1969-12-31T23:59:59.123456789, 2025-11-21T13:50:00.123Z, [1, null, 3], {k=7}, +I[5, five]]",
            "+I[2, null, null, null, null, null, null, null, null, null, null, null, null, null,"
                + " null, null, null, null, null, null, null]"),
        rows);
  }

  @Test
  void batchSelectOfAPrimaryKeyTableIsItsSnapshot() throws Exception {
    STROM.strom().createTable(
        TableSpec.of(DB, "pk_batch").column("id", "BIGINT", false).column("name", "STRING").primaryKey("id").bucketNum(2));
    upsert(STROM.strom(), DB, "pk_batch", ID_NAME, new Object[] {1L, "a"}, new Object[] {2L, "b"}, new Object[] {3L, "c"});
    upsert(STROM.strom(), DB, "pk_batch", ID_NAME, new Object[] {2L, "b2"});
    delete(STROM.strom(), DB, "pk_batch", List.of("id"), new Object[] {3L});
    TableEnvironment tEnv = STROM.flink(EnvironmentSettings.inBatchMode(), 1);
    assertEquals(
        List.of("+I[1, a]", "+I[2, b2]"), sorted(all(tEnv.executeSql("SELECT * FROM pk_batch").collect())));
    // COUNT(*) is the node's count of current rows (the changelog holds 6 records: 3 +I, -U/+U, -D).
    String countPlan = tEnv.explainSql("SELECT COUNT(*) FROM pk_batch");
    assertTrue(countPlan.contains("aggFunctions=[Count1AggFunction()]"), countPlan);
    assertEquals(List.of("+I[2]"), all(tEnv.executeSql("SELECT COUNT(*) FROM pk_batch").collect()));
    String refused =
        messages(
            assertThrows(
                Exception.class,
                () -> tEnv.executeSql("SELECT * FROM pk_batch /*+ OPTIONS('scan.startup.mode' = 'earliest') */").await()));
    assertTrue(refused.contains("must be 'full'"), refused);
  }

  @Test
  void fullModeOnAPrimaryKeyTableIsTheSnapshotThenEveryChangeExactlyOnce() throws Exception {
    STROM.strom().createTable(
        TableSpec.of(DB, "pk_stream").column("id", "BIGINT", false).column("name", "STRING").primaryKey("id").bucketNum(1));
    upsert(STROM.strom(), DB, "pk_stream", ID_NAME, new Object[] {1L, "a"}, new Object[] {2L, "b"}, new Object[] {3L, "c"});
    // Changes before the job starts are folded into the snapshot, not replayed.
    upsert(STROM.strom(), DB, "pk_stream", ID_NAME, new Object[] {1L, "a2"});
    delete(STROM.strom(), DB, "pk_stream", List.of("id"), new Object[] {3L});
    TableEnvironment tEnv = STROM.flink(EnvironmentSettings.inStreamingMode(), 1);
    TableResult result = tEnv.executeSql("SELECT id, name FROM pk_stream");
    try (CloseableIterator<Row> rows = result.collect()) {
      // The snapshot first: the current rows, in key order (one bucket).
      assertEquals(List.of("+I[1, a2]", "+I[2, b]"), take(rows, 2));
      // Then the changelog from the snapshot's offset: every change made after it, once.
      upsert(STROM.strom(), DB, "pk_stream", ID_NAME, new Object[] {2L, "b2"}, new Object[] {4L, "d"});
      delete(STROM.strom(), DB, "pk_stream", List.of("id"), new Object[] {1L});
      upsert(STROM.strom(), DB, "pk_stream", ID_NAME, new Object[] {1L, "again"});
      assertEquals(
          List.of("-U[2, b]", "+U[2, b2]", "+I[4, d]", "-D[1, a2]", "+I[1, again]"), take(rows, 5));
    }
  }

  @Test
  void startupModesEarliestLatestAndTimestamp() throws Exception {
    STROM.strom().createTable(TableSpec.of(DB, "modes").column("id", "BIGINT").column("name", "STRING").bucketNum(1));
    append(STROM.strom(), DB, "modes", ID_NAME, new Object[] {1L, "a"}, new Object[] {2L, "b"});
    append(STROM.strom(), DB, "modes", ID_NAME, new Object[] {3L, "c"});
    // Everything before `boundary` has an older commit time than everything after it.
    long boundary = System.currentTimeMillis() + 1;
    while (System.currentTimeMillis() <= boundary) {
      Thread.onSpinWait();
    }
    append(STROM.strom(), DB, "modes", ID_NAME, new Object[] {4L, "d"}, new Object[] {5L, "e"});

    TableEnvironment batch = STROM.flink(EnvironmentSettings.inBatchMode(), 1);
    assertEquals(5, all(batch.executeSql("SELECT * FROM modes /*+ OPTIONS('scan.startup.mode' = 'earliest') */").collect()).size());
    assertEquals(List.of(), all(batch.executeSql("SELECT * FROM modes /*+ OPTIONS('scan.startup.mode' = 'latest') */").collect()));
    assertEquals(
        List.of("+I[4, d]", "+I[5, e]"),
        all(batch.executeSql("SELECT * FROM modes /*+ OPTIONS('scan.startup.mode' = 'timestamp',"
            + " 'scan.startup.timestamp' = '" + boundary + "') */").collect()));

    TableEnvironment streaming = STROM.flink(EnvironmentSettings.inStreamingMode(), 1);
    try (CloseableIterator<Row> rows =
        streaming.executeSql("SELECT id FROM modes /*+ OPTIONS('scan.startup.mode' = 'timestamp',"
            + " 'scan.startup.timestamp' = '" + boundary + "') */").collect()) {
      assertEquals(List.of("+I[4]", "+I[5]"), take(rows, 2));
      append(STROM.strom(), DB, "modes", ID_NAME, new Object[] {6L, "f"});
      assertEquals(List.of("+I[6]"), take(rows, 1));
    }

    // latest: keep writing until the job shows a row; rows of before the start never appear,
    // and every row after the first one seen arrives in order.
    AtomicBoolean writing = new AtomicBoolean(true);
    Thread writer =
        new Thread(
            () -> {
              for (long id = 100; writing.get(); id++) {
                append(STROM.strom(), DB, "modes", ID_NAME, new Object[] {id, "w"});
              }
            });
    try (CloseableIterator<Row> rows =
        streaming.executeSql("SELECT id FROM modes /*+ OPTIONS('scan.startup.mode' = 'latest') */").collect()) {
      writer.start();
      long first = (Long) rows.next().getField(0);
      assertTrue(first >= 100, "latest skips the rows written before the job: " + first);
      for (long expected = first + 1; expected < first + 5; expected++) {
        assertEquals(expected, (Long) rows.next().getField(0));
      }
    } finally {
      writing.set(false);
      writer.join();
    }

    String bad =
        messages(assertThrows(Exception.class, () -> batch.executeSql(
            "SELECT * FROM modes /*+ OPTIONS('scan.startup.mode' = 'timestamp', 'scan.startup.timestamp' = 'yesterday') */").await()));
    assertTrue(bad.contains("'scan.startup.timestamp' = 'yesterday'"), bad);
    String typo =
        messages(assertThrows(Exception.class, () -> batch.executeSql(
            "SELECT * FROM modes /*+ OPTIONS('scan.startup.mode' = 'newest') */").await()));
    assertTrue(typo.contains("'newest'"), typo);
  }

  @Test
  void thePlannerSeesTheChangelogModeOfEachKindOfTable() {
    TableEnvironment tEnv = STROM.flink(EnvironmentSettings.inStreamingMode(), 1);
    tEnv.executeSql("CREATE TABLE cm_log (id BIGINT)");
    tEnv.executeSql("CREATE TABLE cm_first (id BIGINT, v STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ('table.merge-engine' = 'first_row')");
    tEnv.executeSql("CREATE TABLE cm_ignore (id BIGINT, v STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ('table.delete.behavior' = 'IGNORE')");
    tEnv.executeSql("CREATE TABLE cm_all (id BIGINT, v STRING, PRIMARY KEY (id) NOT ENFORCED)");
    assertEquals("[I]", sourceChangelogMode(tEnv, "cm_log"));
    assertEquals("[I]", sourceChangelogMode(tEnv, "cm_first"));
    assertEquals("[I,UB,UA]", sourceChangelogMode(tEnv, "cm_ignore"));
    assertEquals("[I,UB,UA,D]", sourceChangelogMode(tEnv, "cm_all"));
    tEnv.executeSql("CREATE TABLE cm_wal (id BIGINT, v STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ('table.changelog.image' = 'WAL')");
    assertEquals("[I,UA,D]", sourceChangelogMode(tEnv, "cm_wal"));
  }

  private static String sourceChangelogMode(TableEnvironment tEnv, String table) {
    String plan = tEnv.explainSql("SELECT * FROM " + table, org.apache.flink.table.api.ExplainDetail.CHANGELOG_MODE);
    String physical = plan.substring(plan.indexOf("== Optimized Physical Plan =="));
    java.util.regex.Matcher m =
        java.util.regex.Pattern.compile("TableSourceScan\\(table=\\[\\[strom, " + DB + ", " + table + "\\]\\].*changelogMode=\\[([A-Z,]+)\\]").matcher(physical);
    assertTrue(m.find(), physical);
    return "[" + m.group(1) + "]";
  }

  @Test
  void projectionIsPrunedByTheNodeAndLimitAndCountWork() throws Exception {
    STROM.strom().createTable(
        TableSpec.of(DB, "wide").column("id", "BIGINT").column("payload", "STRING").bucketNum(2)
            .option("table.log.arrow.compression.type", "NONE"));
    String payload = "x".repeat(2000);
    for (long batch = 0; batch < 5; batch++) {
      Object[][] rows = new Object[100][];
      for (int r = 0; r < 100; r++) {
        rows[r] = new Object[] {batch * 100 + r, payload};
      }
      append(STROM.strom(), DB, "wide", List.of("id", "payload"), rows);
    }
    TableEnvironment tEnv = STROM.flink(EnvironmentSettings.inBatchMode(), 1);
    String plan = tEnv.explainSql("SELECT id FROM wide");
    assertTrue(plan.contains("project=[id]"), plan);

    long before = ReceivedBytes.total();
    assertEquals(500, all(tEnv.executeSql("SELECT * FROM wide").collect()).size());
    long full = ReceivedBytes.total() - before;
    before = ReceivedBytes.total();
    List<String> ids = all(tEnv.executeSql("SELECT id FROM wide").collect());
    long projected = ReceivedBytes.total() - before;
    assertEquals(500, ids.size());
    // 500 payloads of 2000 bytes are ~1 MB; 500 ids are 4 KB: the node sent no payload at all.
    assertTrue(full > 900_000, "the full scan received the payloads: " + full);
    assertTrue(projected < 20_000, "the projected scan received only ids: " + projected + " vs " + full);

    assertTrue(tEnv.explainSql("SELECT * FROM wide LIMIT 3").contains("limit=[3]"));
    assertEquals(3, all(tEnv.executeSql("SELECT * FROM wide LIMIT 3").collect()).size());
    // COUNT(*) of a log table is the node's record count: no row crosses the wire.
    String countPlan = tEnv.explainSql("SELECT COUNT(*) FROM wide");
    assertTrue(countPlan.contains("aggFunctions=[Count1AggFunction()]"), countPlan);
    before = ReceivedBytes.total();
    assertEquals(List.of("+I[500]"), all(tEnv.executeSql("SELECT COUNT(*) FROM wide").collect()));
    assertEquals(0, ReceivedBytes.total() - before, "COUNT(*) read no rows");
  }
}
