package io.strom.flink.scenarios;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.strom.flink.FlinkStromFixture;
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
 * Sorting jobs replaced by merge engines (integration/scenarios/merge_engines.sql): 100 000
 * step events in five out-of-order versions per key into a {@code versioned} table, 100 000
 * reports of 25 000 deals into a {@code first_row} table, while three downstream jobs read both
 * as changelogs — the seeds' delta join of the two, and aggregations over each. Every result is
 * compared with what the generator formulas of the SQL file say it must be.
 */
class MergeEnginesScenarioIT {
  private static final int KEYS = 20_000;
  private static final int DEALS = 25_000;

  @RegisterExtension
  static final MiniClusterExtension FLINK = FlinkStromFixture.miniCluster(6);

  @RegisterExtension
  static final FlinkStromFixture STROM = new FlinkStromFixture("merge_engines");

  @Test
  void mergeEnginesKeepTheLatestAndTheFirstAndDownstreamJobsReadTheirChangelogs() throws Exception {
    ScenarioScript script = ScenarioScript.load("merge_engines.sql");
    script.run(STROM.flink(EnvironmentSettings.inBatchMode(), 1), "tables");

    String join = script.step("join").get(0);
    TableEnvironment deltaEnv = ScenarioScript.deltaJoinEnvironment(STROM, 1, join);

    List<JobClient> jobs = new ArrayList<>();
    try {
      // The readers first, so they see the merge tables' changes as they happen; then the
      // writers, each at parallelism 1 so "first" and "arrival order" are the generator's order.
      jobs.add(deltaEnv.executeSql(join).getJobClient().orElseThrow());
      for (String step : List.of("funnel", "daily", "steps", "deals")) {
        jobs.add(script.start(STROM.flink(EnvironmentSettings.inStreamingMode(), 1), step));
      }
      Duration timeout = Duration.ofSeconds(240);
      List<String> latest = expectedLatestSteps();
      assertEquals(latest, NodeTables.await(() -> NodeTables.snapshot(STROM, "dpv_versioned_merge"), latest, timeout),
          "the versioned table keeps each key's row with the largest event_time");
      List<String> firsts = expectedFirstDeals();
      assertEquals(firsts, NodeTables.await(() -> NodeTables.snapshot(STROM, "deal_kv"), firsts, timeout),
          "the first_row table keeps each deal's first report");
      List<String> funnel = expectedFunnel();
      assertEquals(funnel, NodeTables.await(() -> NodeTables.snapshot(STROM, "step_funnel"), funnel, timeout),
          "an aggregation over the versioned changelog: each new version retracted the one it replaced");
      List<String> daily = expectedDaily();
      assertEquals(daily, NodeTables.await(() -> NodeTables.snapshot(STROM, "deal_daily"), daily, timeout),
          "an aggregation over the first_row changelog: each deal counted once");
      List<String> joined = expectedJoin();
      List<String> got = NodeTables.await(() -> NodeTables.snapshot(STROM, "dpv_deal_ri"), joined, timeout);
      assertEquals(joined.size(), got.size(), "the delta join's rows");
      assertEquals(joined, got, "the delta join of the two changelogs is the join of the final tables");
    } finally {
      NodeTables.cancel(jobs);
    }
  }

  // The generator formulas of merge_engines.sql. Step event i belongs to key i % 20000 and is
  // its version i / 20000; version v's event_time rank is (3v + i % 5) % 5, so the version of
  // rank 4 wins (v = 2 * (4 - k % 5) mod 5), wherever it falls in the arrival order.

  private static long latestIndex(int k) {
    int v = Math.floorMod(2 * (4 - k % 5), 5);
    return k + (long) KEYS * v;
  }

  private static long latestTime(int k) {
    return 1_000_000 + 4_000 + k % 500;
  }

  private static String stepKey(int k) {
    return "u" + k % 500 + "|item" + (k / 500) % 5 + "|" + (k / 2500) % 4 + "|2026120" + (1 + (k / 10_000) % 2);
  }

  /** Columns in table order: pk, user_name, item_id, step_no, event_time, dt. */
  private static List<String> expectedLatestSteps() {
    List<String> rows = new ArrayList<>();
    for (int k = 0; k < KEYS; k++) {
      String[] key = stepKey(k).split("\\|");
      rows.add(String.join("|", "p" + latestIndex(k), key[0], key[1], key[2], String.valueOf(latestTime(k)), key[3]));
    }
    rows.sort(null);
    return rows;
  }

  /** Deal d was first reported at j = d: pk, user_name, item_id, event_time, dt. */
  private static List<String> expectedFirstDeals() {
    List<String> rows = new ArrayList<>();
    for (int d = 0; d < DEALS; d++) {
      rows.add(String.join("|", "d" + d, "u" + d % 500, "item" + (d / 500) % 5, String.valueOf(d), "2026120" + (1 + (d / 2500) % 2)));
    }
    rows.sort(null);
    return rows;
  }

  private static List<String> expectedFunnel() {
    Map<String, long[]> funnel = new TreeMap<>();
    for (int k = 0; k < KEYS; k++) {
      String[] key = stepKey(k).split("\\|");
      long[] agg = funnel.computeIfAbsent(key[3] + "|" + key[2], x -> new long[2]);
      agg[0]++;
      agg[1] += latestTime(k);
    }
    List<String> rows = new ArrayList<>();
    funnel.forEach((key, agg) -> rows.add(key + "|" + agg[0] + "|" + agg[1]));
    return rows;
  }

  private static List<String> expectedDaily() {
    Map<String, long[]> daily = new TreeMap<>();
    for (int d = 0; d < DEALS; d++) {
      long[] agg = daily.computeIfAbsent("2026120" + (1 + (d / 2500) % 2), x -> new long[2]);
      agg[0]++;
      agg[1] += d;
    }
    List<String> rows = new ArrayList<>();
    daily.forEach((dt, agg) -> rows.add(dt + "|" + agg[0] + "|" + agg[1]));
    return rows;
  }

  /** Every final step row with every first deal of the same user, item and day. */
  private static List<String> expectedJoin() {
    Map<String, List<Integer>> dealsByUserItemDay = new TreeMap<>();
    for (int d = 0; d < DEALS; d++) {
      String key = "u" + d % 500 + "|item" + (d / 500) % 5 + "|2026120" + (1 + (d / 2500) % 2);
      dealsByUserItemDay.computeIfAbsent(key, x -> new ArrayList<>()).add(d);
    }
    List<String> rows = new ArrayList<>();
    for (int k = 0; k < KEYS; k++) {
      String[] key = stepKey(k).split("\\|");
      for (int d : dealsByUserItemDay.get(key[0] + "|" + key[1] + "|" + key[3])) {
        rows.add(String.join("|", key[0], key[1], key[2], key[3], key[0], key[1], "d" + d, key[3],
            "p" + latestIndex(k), String.valueOf(latestTime(k)), String.valueOf(d)));
      }
    }
    rows.sort(null);
    return rows;
  }
}
