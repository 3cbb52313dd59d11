package io.strom.flink.scenarios;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.strom.flink.FlinkStromFixture;
import io.strom.flink.client.ScanRequest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Canary monitoring (integration/scenarios/canary.sql): a streaming job reads 30 of a 45-column
 * log table's columns (plus the one it filters on) and keeps the canary release's rows. The
 * node's own counter of bytes sent ({@code table_stats}) proves the pruning: the job received
 * what a scan of those 31 columns sends, a fraction of the full width.
 */
class CanaryScenarioIT {
  private static final int EVENTS = 100_000;
  /** The monitoring job's output columns (the SQL file's SELECT list), in order. */
  private static final List<String> MONITORED = List.of(
      "user_id", "device_id", "app_name", "app_version", "release_channel", "os", "os_version", "brand", "model", "network",
      "carrier", "country", "province", "city", "page_name", "page_type", "spm_a", "spm_b", "spm_c", "spm_d",
      "event_id", "event_type", "event_time", "duration_ms", "shop_id", "item_id", "scene", "ab_bucket", "mm", "ds");

  @RegisterExtension
  static final MiniClusterExtension FLINK = FlinkStromFixture.miniCluster(4);

  @RegisterExtension
  static final FlinkStromFixture STROM = new FlinkStromFixture("canary");

  @Test
  void theMonitoringJobReceivesOnlyTheColumnsItReads() throws Exception {
    ScenarioScript script = ScenarioScript.load("canary.sql");
    script.run(STROM.flink(EnvironmentSettings.inBatchMode(), 2), "tables", "load");
    assertEquals(EVENTS, NodeTables.count(STROM, "log_page_ri", false));
    Duration timeout = Duration.ofSeconds(180);

    TableEnvironment streaming = STROM.flink(EnvironmentSettings.inStreamingMode(), 2);
    String monitor = script.step("monitor").get(0);
    assertTrue(streaming.explainSql(monitor).contains("project=["), "projection pushed into the Strom source");
    long before = bytesSent();
    var job = streaming.executeSql(monitor).getJobClient().orElseThrow();
    try {
      assertEquals(EVENTS / 10, (long) NodeTables.await(() -> NodeTables.count(STROM, "ads_gray_monitoring_ri", false),
          (long) EVENTS / 10, timeout), "one canary row in ten");
    } finally {
      NodeTables.cancel(List.of(job));
    }
    long jobBytes = bytesSent() - before;

    // The same 31 columns read with the client: the job's output must be these rows, filtered.
    List<String> read = new ArrayList<>(MONITORED);
    read.add("args");
    before = bytesSent();
    List<String> expected = new ArrayList<>();
    for (String row : NodeTables.rows(STROM, ScanRequest.log(STROM.database(), "log_page_ri").columns(read), values -> {
      boolean grey = values.get(values.size() - 1).startsWith("release_type=grey,");
      return grey ? String.join("|", values.subList(0, values.size() - 1)) : "";
    })) {
      if (!row.isEmpty()) {
        expected.add(row);
      }
    }
    long projectedBytes = bytesSent() - before;
    assertEquals(expected, NodeTables.log(STROM, "ads_gray_monitoring_ri"), "the canary rows, 30 columns each");

    before = bytesSent();
    NodeTables.log(STROM, "log_page_ri");
    long fullBytes = bytesSent() - before;
    // The node sends the same pruned batches to the job's split readers as to one client scan.
    assertTrue(Math.abs(jobBytes - projectedBytes) <= projectedBytes / 50,
        "job received " + jobBytes + " bytes, a 31-column scan " + projectedBytes);
    // The pruned columns are the long strings, but ZSTD shrinks them most (57 % measured).
    assertTrue(jobBytes < fullBytes * 0.7, "job received " + jobBytes + " bytes of a full width of " + fullBytes);
    System.out.printf("canary: the monitoring job received %d bytes, a 31-column scan %d, the full 45 columns %d (%.0f %%)%n",
        jobBytes, projectedBytes, fullBytes, 100.0 * jobBytes / fullBytes);

    var cube = script.start(STROM.flink(EnvironmentSettings.inStreamingMode(), 2), "cube");
    try {
      List<String> perMinute = expectedPerMinute();
      assertEquals(perMinute, NodeTables.await(() -> NodeTables.snapshot(STROM, "ads_gray_monitoring_permm_ri"), perMinute, timeout));
    } finally {
      NodeTables.cancel(List.of(cube));
    }
  }

  private static long bytesSent() {
    JsonNode stats = STROM.strom().tableStats(STROM.database(), "log_page_ri");
    return stats.path("bytes_sent").asLong();
  }

  /** The cube of the canary rows (i % 10 == 0): ds, mm, app_version, page_name, pv, time sum. */
  private static List<String> expectedPerMinute() {
    Map<String, long[]> cube = new TreeMap<>();
    for (int i = 0; i < EVENTS; i += 10) {
      String key = String.format("20261206|%02d|9.2.0-grey|page_%d", (i / 100) % 60, i % 8);
      long[] agg = cube.computeIfAbsent(key, k -> new long[2]);
      agg[0]++;
      agg[1] += i % 900 + 100;
    }
    List<String> rows = new ArrayList<>();
    cube.forEach((key, agg) -> rows.add(key + "|" + agg[0] + "|" + agg[1]));
    return rows;
  }
}
