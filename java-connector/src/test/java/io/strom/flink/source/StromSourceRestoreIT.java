package io.strom.flink.source;

import static io.strom.flink.source.SourceTestSupport.all;
import static io.strom.flink.source.SourceTestSupport.append;
import static io.strom.flink.source.SourceTestSupport.idNameRows;
import static io.strom.flink.source.SourceTestSupport.await;
import static io.strom.flink.source.SourceTestSupport.storedRecords;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.strom.flink.client.ScanBatch;
import io.strom.flink.client.ScanRequest;
import io.strom.flink.client.StromScanner;
import io.strom.flink.client.TableSpec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.arrow.vector.BigIntVector;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.Test;
import io.strom.flink.FlinkStromFixture;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Streaming reads that outlive one job or one partition: a job stopped with a savepoint while
 * rows keep arriving and restored from it reads every row exactly once; partition filters in
 * batch mode read only the chosen partitions; a streaming job picks up a partition created
 * while it runs.
 */
class StromSourceRestoreIT {
  @RegisterExtension
  static final MiniClusterExtension FLINK = FlinkStromFixture.miniCluster(4);

  @RegisterExtension
  static final FlinkStromFixture STROM = new FlinkStromFixture("restore");

  private static final String DB = STROM.database();
  private static final List<String> ID_NAME = List.of("id", "name");

  @Test
  void aJobRestoredFromASavepointReadsEveryRowExactlyOnce(@org.junit.jupiter.api.io.TempDir Path savepoints)
      throws Exception {
    STROM.strom().createTable(TableSpec.of(DB, "events").column("id", "BIGINT").column("name", "STRING").bucketNum(3));
    STROM.strom().createTable(TableSpec.of(DB, "copied").column("id", "BIGINT").column("name", "STRING").bucketNum(1));
    for (long id = 0; id < 300; id += 50) {
      append(STROM.strom(), DB, "events", ID_NAME, idNameRows(id, id + 50));
    }
    Configuration conf = new Configuration();
    conf.setString("execution.checkpointing.interval", "300 ms");
    TableEnvironment first = STROM.flink(EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build(), 2);
    JobClient job = first.executeSql("INSERT INTO copied SELECT * FROM events").getJobClient().orElseThrow();
    await("the first job copied the first rows", Duration.ofSeconds(60), () -> storedRecords(STROM.strom(), DB, "copied") >= 300);
    append(STROM.strom(), DB, "events", ID_NAME, idNameRows(300, 400));
    String savepoint = job.stopWithSavepoint(false, savepoints.toUri().toString(), SavepointFormatType.CANONICAL).get();
    long copiedByFirstJob = storedRecords(STROM.strom(), DB, "copied");

    // Rows that arrive while no job runs are read by the restored one.
    append(STROM.strom(), DB, "events", ID_NAME, idNameRows(400, 500));
    Configuration restore = new Configuration();
    restore.setString("execution.checkpointing.interval", "300 ms");
    restore.setString("execution.state-recovery.path", savepoint);
    TableEnvironment second =
        STROM.flink(EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(restore).build(), 2);
    JobClient resumed = second.executeSql("INSERT INTO copied SELECT * FROM events").getJobClient().orElseThrow();
    try {
      append(STROM.strom(), DB, "events", ID_NAME, idNameRows(500, 600));
      await("the restored job copied the rest", Duration.ofSeconds(60), () -> storedRecords(STROM.strom(), DB, "copied") >= 600);
    } finally {
      resumed.cancel().get();
      resumed.getJobExecutionResult().handle((r, e) -> null).get();
    }
    List<Long> ids = copiedIds();
    assertTrue(copiedByFirstJob < 600, "the first job stopped before the last rows: " + copiedByFirstJob);
    assertEquals(600, ids.size(), "every row once: no duplicate after the restore");
    assertEquals(600, new HashSet<>(ids).size(), "every row once: " + ids.size());
  }

  @Test
  void aStreamingReadWithAPartitionFilterReadsMatchingPartitionsCreatedLater() throws Exception {
    STROM.strom().createTable(
        TableSpec.of(DB, "by_day_filtered").column("id", "BIGINT").column("dt", "STRING").partitionKeys("dt").bucketNum(1));
    List<String> columns = List.of("id", "dt");
    append(STROM.strom(), DB, "by_day_filtered", columns, new Object[] {1L, "d1"}, new Object[] {2L, "d2"});
    TableEnvironment streaming = STROM.flink(EnvironmentSettings.inStreamingMode(), 1);
    String query = "SELECT id, dt FROM by_day_filtered /*+ OPTIONS('scan.partition.discovery.interval' = '200 ms') */"
        + " WHERE dt >= 'd2' OR dt IN ('d0')";
    String plan = streaming.explainSql(query);
    // The partition conjunct is taken by the source (it also stays in Flink's Calc).
    assertTrue(plan.contains("by_day_filtered, filter=[OR(=(dt, _UTF-16LE'd0'), >=(dt, _UTF-16LE'd2'))]"), plan);
    try (CloseableIterator<Row> rows = streaming.executeSql(query).collect()) {
      assertEquals("+I[2, d2]", rows.next().toString());
      // New days: d3 matches and is found by discovery; d0 matches through the IN list; d1 rows
      // and a new partition 'c9' do not match.
      append(STROM.strom(), DB, "by_day_filtered", columns, new Object[] {3L, "d1"}, new Object[] {4L, "c9"});
      append(STROM.strom(), DB, "by_day_filtered", columns, new Object[] {5L, "d3"}, new Object[] {6L, "d0"});
      Set<String> later = new HashSet<>(List.of(rows.next().toString(), rows.next().toString()));
      assertEquals(Set.of("+I[5, d3]", "+I[6, d0]"), later);
      append(STROM.strom(), DB, "by_day_filtered", columns, new Object[] {7L, "d2"});
      assertEquals("+I[7, d2]", rows.next().toString(), "rows of other partitions never reach the job's output");
    }
  }

  @Test
  void aPrimaryKeyTableJobRestoredFromASavepointReadsEveryChangeOnce(@org.junit.jupiter.api.io.TempDir Path savepoints)
      throws Exception {
    // first_row: the changelog is insert-only, so a log table can hold a copy of it and shows
    // every row the job emitted, duplicates included.
    STROM.strom().createTable(
        TableSpec.of(DB, "firsts")
            .column("id", "BIGINT", false)
            .column("name", "STRING")
            .primaryKey("id")
            .bucketNum(2)
            .option("table.merge-engine", "first_row"));
    STROM.strom().createTable(TableSpec.of(DB, "firsts_copy").column("id", "BIGINT").column("name", "STRING").bucketNum(1));
    SourceTestSupport.upsert(STROM.strom(), DB, "firsts", ID_NAME, idNameRows(0, 300));
    Configuration conf = new Configuration();
    conf.setString("execution.checkpointing.interval", "300 ms");
    TableEnvironment first = STROM.flink(EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build(), 2);
    JobClient job = first.executeSql("INSERT INTO firsts_copy SELECT * FROM firsts").getJobClient().orElseThrow();
    // The snapshot phase, then changes read from the changelog.
    await("the first job copied the snapshot", Duration.ofSeconds(60), () -> storedRecords(STROM.strom(), DB, "firsts_copy") >= 300);
    SourceTestSupport.upsert(STROM.strom(), DB, "firsts", ID_NAME, idNameRows(300, 400));
    String savepoint = job.stopWithSavepoint(false, savepoints.toUri().toString(), SavepointFormatType.CANONICAL).get();

    // While no job runs: new keys, and rows for existing keys (first_row keeps the first).
    SourceTestSupport.upsert(STROM.strom(), DB, "firsts", ID_NAME, idNameRows(400, 500));
    SourceTestSupport.upsert(STROM.strom(), DB, "firsts", ID_NAME, new Object[] {0L, "late"}, new Object[] {350L, "late"});
    Configuration restore = new Configuration();
    restore.setString("execution.checkpointing.interval", "300 ms");
    restore.setString("execution.state-recovery.path", savepoint);
    TableEnvironment second =
        STROM.flink(EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(restore).build(), 2);
    JobClient resumed = second.executeSql("INSERT INTO firsts_copy SELECT * FROM firsts").getJobClient().orElseThrow();
    try {
      SourceTestSupport.upsert(STROM.strom(), DB, "firsts", ID_NAME, idNameRows(500, 600));
      await("the restored job copied the rest", Duration.ofSeconds(60), () -> storedRecords(STROM.strom(), DB, "firsts_copy") >= 600);
    } finally {
      resumed.cancel().get();
      resumed.getJobExecutionResult().handle((r, e) -> null).get();
    }
    List<Long> ids = ids("firsts_copy");
    assertEquals(600, ids.size(), "every key's first row once: no duplicate after the restore");
    assertEquals(600, new HashSet<>(ids).size(), "every key once: " + ids.size());
  }

  private static List<Long> copiedIds() {
    return ids("copied");
  }

  private static List<Long> ids(String table) {
    List<Long> ids = new ArrayList<>();
    try (StromScanner scanner = STROM.strom().scan(ScanRequest.log(DB, table))) {
      while (!scanner.isFinished()) {
        try (ScanBatch batch = scanner.poll(Duration.ofSeconds(30))) {
          if (batch != null) {
            BigIntVector id = (BigIntVector) batch.root().getVector("id");
            for (int r = 0; r < batch.root().getRowCount(); r++) {
              ids.add(id.get(r));
            }
          }
        }
      }
    }
    return ids;
  }

  @Test
  void partitionFiltersReadOnlyTheirPartitionsAndNewPartitionsAreDiscovered() throws Exception {
    STROM.strom().createTable(
        TableSpec.of(DB, "by_day").column("id", "BIGINT").column("dt", "STRING").partitionKeys("dt").bucketNum(2));
    List<String> columns = List.of("id", "dt");
    append(STROM.strom(), DB, "by_day", columns, new Object[] {1L, "d1"}, new Object[] {2L, "d1"}, new Object[] {3L, "d2"});

    TableEnvironment batch = STROM.flink(EnvironmentSettings.inBatchMode(), 1);
    String plan = batch.explainSql("SELECT id FROM by_day WHERE dt = 'd2'");
    assertTrue(plan.contains("partitions=[{dt=d2}]"), plan);
    assertEquals(List.of("+I[3]"), all(batch.executeSql("SELECT id FROM by_day WHERE dt = 'd2'").collect()));
    List<String> everything = all(batch.executeSql("SELECT id, dt FROM by_day").collect());
    everything.sort(null);
    assertEquals(List.of("+I[1, d1]", "+I[2, d1]", "+I[3, d2]"), everything);

    TableEnvironment streaming = STROM.flink(EnvironmentSettings.inStreamingMode(), 1);
    try (CloseableIterator<Row> rows =
        streaming.executeSql("SELECT id, dt FROM by_day /*+ OPTIONS('scan.partition.discovery.interval' = '200 ms') */").collect()) {
      Set<String> seen = new HashSet<>();
      for (int i = 0; i < 3; i++) {
        seen.add(rows.next().toString());
      }
      assertEquals(Set.of("+I[1, d1]", "+I[2, d1]", "+I[3, d2]"), seen);
      // A write to a new day creates its partition; the running job finds it and reads it.
      append(STROM.strom(), DB, "by_day", columns, new Object[] {4L, "d3"}, new Object[] {5L, "d3"});
      append(STROM.strom(), DB, "by_day", columns, new Object[] {6L, "d1"});
      Set<String> later = new HashSet<>();
      for (int i = 0; i < 3; i++) {
        later.add(rows.next().toString());
      }
      assertEquals(Set.of("+I[4, d3]", "+I[5, d3]", "+I[6, d1]"), later);
      // Dropping a partition the job reads ends its splits, not the job.
      STROM.strom().dropPartition(DB, "by_day", "d1", false);
      append(STROM.strom(), DB, "by_day", columns, new Object[] {7L, "d3"});
      assertEquals("+I[7, d3]", rows.next().toString());
    }
  }
}
