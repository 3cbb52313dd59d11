package io.strom.flink.scenarios;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.strom.flink.FlinkStromFixture;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import io.strom.flink.client.ScanBatch;
import io.strom.flink.client.ScanRequest;
import io.strom.flink.client.StromScanner;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The seeds' conversion-rate attribution (integration/scenarios/attribution.sql): 100 000
 * orders and 40 000 visit rows, joined on user and day by a streaming delta join; the node's
 * result table must equal what a regular (batch) join of the same tables writes.
 */
class AttributionScenarioIT {
  @RegisterExtension
  static final MiniClusterExtension FLINK = FlinkStromFixture.miniCluster(4);

  @RegisterExtension
  static final FlinkStromFixture STROM = new FlinkStromFixture("attribution");

  @Test
  void theDeltaJoinWritesWhatARegularJoinWrites() throws Exception {
    ScenarioScript script = ScenarioScript.load("attribution.sql");
    TableEnvironment batch = STROM.flink(EnvironmentSettings.inBatchMode(), 2);
    script.run(batch, "tables", "load", "regular");
    long expected = count("log_page_ord_detail_regular");
    assertEquals(100_000, expected, "every order has a visit of its user that day");

    Configuration conf = new Configuration();
    conf.setString("table.optimizer.delta-join.strategy", "FORCE");
    TableEnvironment streaming =
        STROM.flink(EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build(), 2);
    String delta = script.step("delta").get(0);
    String plan = streaming.explainSql(delta);
    assertTrue(plan.contains("DeltaJoin(joinType=[InnerJoin]"), plan);
    JobClient job = streaming.executeSql(delta).getJobClient().orElseThrow();
    try {
      long deadline = System.nanoTime() + Duration.ofSeconds(300).toNanos();
      long joined = 0;
      while (joined < expected && System.nanoTime() < deadline) {
        joined = count("log_page_ord_detail_ri");
        if (joined < expected) {
          Thread.sleep(500); // polling the node's row count; the count is what we wait for
        }
      }
      assertEquals(expected, joined, "the delta join's result rows");
    } finally {
      job.cancel().get();
      job.getJobExecutionResult().handle((r, e) -> null).get();
    }
    assertEquals(rows("log_page_ord_detail_regular"), rows("log_page_ord_detail_ri"));
  }

  /** The node's count of the table's current rows (no Flink job: the streaming job holds slots). */
  private static long count(String table) {
    return STROM.strom().count(STROM.database(), table, null, true);
  }

  /** Every current row of the table, read with the client (a snapshot scan), as sorted strings. */
  private static List<String> rows(String table) {
    List<String> rows = new ArrayList<>();
    try (StromScanner scanner = STROM.strom().scan(ScanRequest.snapshot(STROM.database(), table))) {
      while (!scanner.isFinished()) {
        try (ScanBatch batch = scanner.poll(Duration.ofSeconds(30))) {
          if (batch == null) {
            continue;
          }
          VectorSchemaRoot root = batch.root();
          for (int r = 0; r < root.getRowCount(); r++) {
            StringBuilder row = new StringBuilder();
            for (FieldVector vector : root.getFieldVectors()) {
              row.append(vector.getObject(r)).append('|');
            }
            rows.add(row.toString());
          }
        }
      }
    }
    rows.sort(null);
    return rows;
  }
}
