package io.strom.flink.scenarios;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.strom.flink.FlinkStromFixture;
import java.math.BigDecimal;
import java.time.Duration;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * First-customer touch (integration/scenarios/first_touch.sql): 100 000 touch events, five per
 * customer, into a {@code first_row} table; 100 000 orders enriched by a lookup join on the
 * customer table; first touches joined with customers by a delta join. Results are compared
 * with the generator formulas of the SQL file.
 */
class FirstTouchScenarioIT {
  private static final int CUSTOMERS = 20_000;
  private static final int ORDERS = 100_000;

  @RegisterExtension
  static final MiniClusterExtension FLINK = FlinkStromFixture.miniCluster(4);

  @RegisterExtension
  static final FlinkStromFixture STROM = new FlinkStromFixture("first_touch");

  @Test
  void firstTouchesAreKeptAndOrdersAndTouchesAreEnriched() throws Exception {
    ScenarioScript script = ScenarioScript.load("first_touch.sql");
    script.run(STROM.flink(EnvironmentSettings.inBatchMode(), 2), "tables", "load");

    String join = script.step("join").get(0);
    TableEnvironment deltaEnv = ScenarioScript.deltaJoinEnvironment(STROM, 1, join);

    Duration timeout = Duration.ofSeconds(180);
    List<JobClient> jobs = new ArrayList<>();
    try {
      jobs.add(deltaEnv.executeSql(join).getJobClient().orElseThrow());
      jobs.add(script.start(STROM.flink(EnvironmentSettings.inStreamingMode(), 1), "touches"));
      jobs.add(script.start(STROM.flink(EnvironmentSettings.inStreamingMode(), 2), "enrich"));

      List<String> touches = expectedFirstTouches();
      assertEquals(touches, NodeTables.await(() -> NodeTables.snapshot(STROM, "first_customer_touch"), touches, timeout),
          "each customer's first touch, later ones dropped by the node");
      List<String> joined = expectedTouchCustomers();
      assertEquals(joined, NodeTables.await(() -> NodeTables.snapshot(STROM, "first_touch_customers"), joined, timeout),
          "the delta join of first touches and customers");
      List<String> enriched = expectedEnrichedOrders();
      assertEquals(ORDERS, (long) NodeTables.await(() -> NodeTables.count(STROM, "enriched_orders", false), (long) ORDERS, timeout));
      List<String> got = NodeTables.log(STROM, "enriched_orders");
      assertEquals(enriched.size(), got.size(), "every order enriched once");
      assertEquals(enriched, got);
    } finally {
      NodeTables.cancel(jobs);
    }
  }

  private static String name(long c) {
    return "customer-" + c;
  }

  private static String segment(long c) {
    return c % 5 == 0 ? "gold" : "standard";
  }

  /** Customer c's first touch is event t = c: channel push, campaign-0, 2026-12-01 + c s. */
  private static LocalDateTime firstTouchTime(long c) {
    return LocalDateTime.of(2026, 12, 1, 0, 0).plusSeconds(c);
  }

  private static List<String> expectedFirstTouches() {
    List<String> rows = new ArrayList<>();
    for (long c = 0; c < CUSTOMERS; c++) {
      rows.add(String.join("|", String.valueOf(c), "push", "campaign-0", firstTouchTime(c).toString()));
    }
    rows.sort(null);
    return rows;
  }

  private static List<String> expectedTouchCustomers() {
    List<String> rows = new ArrayList<>();
    for (long c = 0; c < CUSTOMERS; c++) {
      rows.add(String.join("|", String.valueOf(c), name(c), segment(c), "push", "campaign-0", firstTouchTime(c).toString()));
    }
    rows.sort(null);
    return rows;
  }

  private static List<String> expectedEnrichedOrders() {
    List<String> rows = new ArrayList<>();
    for (long o = 0; o < ORDERS; o++) {
      long c = (o * 13) % CUSTOMERS;
      rows.add(String.join("|", String.valueOf(o), String.valueOf(c), BigDecimal.valueOf(o % 10_000, 2).toString(), name(c), segment(c),
          "country-" + c % 7));
    }
    rows.sort(null);
    return rows;
  }
}
