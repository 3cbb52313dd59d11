package io.strom.flink.scenarios;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.strom.flink.FlinkStromFixture;
import java.time.Duration;
import java.util.List;
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

    String delta = script.step("delta").get(0);
    TableEnvironment streaming = ScenarioScript.deltaJoinEnvironment(STROM, 2, delta);
    JobClient job = streaming.executeSql(delta).getJobClient().orElseThrow();
    try {
      long joined = NodeTables.await(() -> count("log_page_ord_detail_ri"), expected, Duration.ofSeconds(300));
      assertEquals(expected, joined, "the delta join's result rows");
    } finally {
      NodeTables.cancel(List.of(job));
    }
    assertEquals(rows("log_page_ord_detail_regular"), rows("log_page_ord_detail_ri"));
  }

  /** The node's count of the table's current rows (no Flink job: the streaming job holds slots). */
  private static long count(String table) {
    return NodeTables.count(STROM, table, true);
  }

  private static List<String> rows(String table) {
    return NodeTables.snapshot(STROM, table);
  }
}
