package io.strom.flink.scenarios;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.strom.flink.FlinkStromFixture;
import io.strom.flink.client.ScanRequest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The seeds' product-store wide table (integration/scenarios/wide_table.sql): two streaming
 * jobs, each owning one metric column, write 200 000 events' aggregates into one primary-key
 * table as partial updates; the node's rows must hold both metrics per key, as computed here
 * from the same generator formulas.
 */
class WideTableScenarioIT {
  @RegisterExtension
  static final MiniClusterExtension FLINK = FlinkStromFixture.miniCluster(4);

  @RegisterExtension
  static final FlinkStromFixture STROM = new FlinkStromFixture("wide");

  @Test
  void twoJobsBuildOneRowPerKeyWithBothMetrics() throws Exception {
    ScenarioScript script = ScenarioScript.load("wide_table.sql");
    TableEnvironment batch = STROM.flink(EnvironmentSettings.inBatchMode(), 2);
    script.run(batch, "tables", "load");
    // The expected table, from the generator formulas of the SQL file.
    Map<String, long[]> expected = new TreeMap<>();
    for (long i = 0; i < 100_000; i++) {
      expected.computeIfAbsent(key(i % 500, (i / 500) % 24), k -> new long[] {0, 0})[0] += i % 7 + 1;
      expected.computeIfAbsent(key(i % 700, (i / 700) % 24), k -> new long[] {0, 0})[1] += i % 5 + 1;
    }
    List<String> want = new ArrayList<>();
    expected.forEach((k, v) -> want.add(k + "|" + (v[0] == 0 ? "null" : v[0]) + "|" + (v[1] == 0 ? "null" : v[1])));

    List<JobClient> jobs = new ArrayList<>();
    try {
      for (String step : List.of("exposure", "pages")) {
        jobs.add(script.start(STROM.flink(EnvironmentSettings.inStreamingMode(), 1), step));
      }
      List<String> got = NodeTables.await(WideTableScenarioIT::rows, want, Duration.ofSeconds(180));
      assertEquals(want.size(), got.size(), "one row per key of either stream");
      assertEquals(want, got);
    } finally {
      NodeTables.cancel(jobs);
    }
  }

  private static String key(long shop, long hour) {
    return String.format("%04d|2026-12-06|%02d", shop, hour);
  }

  /** The wide table's rows (client snapshot scan) as "shop|date|hour|exp|page", sorted. */
  private static List<String> rows() {
    return NodeTables.rows(STROM, ScanRequest.snapshot(STROM.database(), "shop_stat_wide"),
        v -> key(Long.parseLong(v.get(0)), Long.parseLong(v.get(2))) + "|" + v.get(3) + "|" + v.get(4));
  }
}
