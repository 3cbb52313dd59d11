package io.strom.flink.scenarios;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.strom.flink.FlinkStromFixture;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Global UV (integration/scenarios/global_uv.sql): 120 000 exposures of 30 000 users; a lookup
 * join with {@code lookup.insert-if-not-exists} gives every user a node-assigned integer id,
 * a second job writes per-minute bitmaps of those ids into an {@code rbm32} aggregation
 * table, and the union of the stored bitmaps must count exactly the distinct users — of the
 * day and of every minute.
 */
class GlobalUvScenarioIT {
  private static final int USERS = 30_000;
  private static final int PER_MINUTE = 2_000;

  @RegisterExtension
  static final MiniClusterExtension FLINK = FlinkStromFixture.miniCluster(4);

  @RegisterExtension
  static final FlinkStromFixture STROM = new FlinkStromFixture("global_uv");

  @Test
  void theMergedBitmapsCountEveryDistinctUserExactly() throws Exception {
    ScenarioScript script = ScenarioScript.load("global_uv.sql");
    TableEnvironment batch = STROM.flink(EnvironmentSettings.inBatchMode(), 1);
    script.run(batch, "tables", "load");
    Duration timeout = Duration.ofSeconds(180);

    List<JobClient> jobs = new ArrayList<>();
    try {
      jobs.add(script.start(STROM.flink(EnvironmentSettings.inStreamingMode(), 1), "mapping"));
      assertEquals(USERS, (long) NodeTables.await(() -> NodeTables.count(STROM, "user_mapping_table", true), (long) USERS, timeout),
          "every distinct user got a mapping row");
      NodeTables.cancel(jobs);
      jobs.clear();
      // Each user's id was assigned once, by the node: present and distinct.
      Set<String> ids = new HashSet<>();
      for (String row : NodeTables.snapshot(STROM, "user_mapping_table")) {
        String id = row.split("\\|")[1];
        assertFalse(id.equals("null"), "a mapping row without its id: " + row);
        ids.add(id);
      }
      assertEquals(USERS, ids.size(), "distinct auto-increment ids");

      jobs.add(script.start(STROM.flink(EnvironmentSettings.inStreamingMode(), 1), "uv"));
      List<String> count = script.step("count");
      // The global merge (Flink unions the node's pre-merged bitmaps) reaches the exact counts
      // once the job has written every exposure's bitmap update.
      Map<String, Long> minutes = new TreeMap<>();
      for (int m = 0; m < 60; m++) {
        minutes.put(String.format("%02d", m), (long) PER_MINUTE);
      }
      assertEquals(minutes, NodeTables.await(() -> query(batch, count.get(1)), minutes, timeout),
          "exact distinct users of every minute");
      assertEquals(Map.of("20261206", (long) USERS), query(batch, count.get(0)), "exact distinct users of the day");
      assertEquals(60L * 8, NodeTables.count(STROM, "ads_uv_agg", true), "one merged row per minute and shard");
    } finally {
      NodeTables.cancel(jobs);
    }
  }

  /** A two-column query's rows as a map of the first column to the second. */
  private static Map<String, Long> query(TableEnvironment tEnv, String sql) {
    Map<String, Long> result = new TreeMap<>();
    try (CloseableIterator<Row> rows = tEnv.executeSql(sql).collect()) {
      while (rows.hasNext()) {
        Row row = rows.next();
        result.put(String.valueOf(row.getField(0)), ((Number) row.getField(1)).longValue());
      }
    } catch (Exception e) {
      throw new AssertionError("query failed: " + sql, e);
    }
    return result;
  }
}
