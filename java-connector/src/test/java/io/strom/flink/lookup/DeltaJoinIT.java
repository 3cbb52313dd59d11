package io.strom.flink.lookup;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.strom.flink.FlinkStromFixture;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Delta joins (FLIP-486): an inner join of two Strom primary-key tables on an index (the key,
 * or the bucket-key prefix) becomes a {@code DeltaJoin} that looks each side's changes up in
 * the other table instead of keeping join state; unsupported joins fail under FORCE and fall
 * back to a regular join under AUTO.
 */
class DeltaJoinIT {
  @RegisterExtension
  static final MiniClusterExtension FLINK = FlinkStromFixture.miniCluster(2);

  @RegisterExtension
  static final FlinkStromFixture STROM = new FlinkStromFixture("delta");

  @BeforeAll
  static void tables() throws Exception {
    TableEnvironment tEnv = STROM.flink(EnvironmentSettings.inBatchMode(), 1);
    // Deletes ignored: the changelog is [+I, -U, +U], which a delta join can consume.
    tEnv.executeSql(
            "CREATE TABLE users (id BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED)"
                + " WITH ('bucket.num' = '2', 'table.delete.behavior' = 'IGNORE')")
        .await();
    tEnv.executeSql(
            "CREATE TABLE scores (id BIGINT, score INT, PRIMARY KEY (id) NOT ENFORCED)"
                + " WITH ('bucket.num' = '2', 'table.delete.behavior' = 'IGNORE')")
        .await();
    tEnv.executeSql(
            "CREATE TABLE joined (id BIGINT, name STRING, score INT, PRIMARY KEY (id) NOT ENFORCED)"
                + " WITH ('bucket.num' = '1')")
        .await();
    tEnv.executeSql(
            "CREATE TABLE users_all (id BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket.num' = '1')")
        .await();
    // The seeds' attribution join: both sides keyed (user, ...) with the user as bucket key.
    tEnv.executeSql(
            "CREATE TABLE page_views (user_id BIGINT, page STRING, ts BIGINT, PRIMARY KEY (user_id, page) NOT ENFORCED)"
                + " WITH ('bucket.num' = '2', 'bucket.key' = 'user_id', 'table.delete.behavior' = 'IGNORE')")
        .await();
    tEnv.executeSql(
            "CREATE TABLE orders (user_id BIGINT, order_id BIGINT, amount INT, PRIMARY KEY (user_id, order_id) NOT ENFORCED)"
                + " WITH ('bucket.num' = '2', 'bucket.key' = 'user_id', 'table.delete.behavior' = 'IGNORE')")
        .await();
    // The join's upsert key is both sides' keys: (user_id, page) and (o_user_id, order_id).
    tEnv.executeSql(
            "CREATE TABLE attributed (user_id BIGINT, page STRING, o_user_id BIGINT, order_id BIGINT, amount INT,"
                + " PRIMARY KEY (user_id, page, o_user_id, order_id) NOT ENFORCED) WITH ('bucket.num' = '1')")
        .await();
  }

  private static TableEnvironment streaming(String strategy) {
    Configuration conf = new Configuration();
    conf.setString("table.optimizer.delta-join.strategy", strategy);

    return STROM.flink(EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build(), 1);
  }

  private static final String JOIN =
      "INSERT INTO joined SELECT u.id, u.name, s.score FROM users AS u JOIN scores AS s ON u.id = s.id";

  @Test
  void anInnerJoinOnTheKeyIsADeltaJoin() {
    String plan = streaming("FORCE").explainSql(JOIN);
    assertTrue(plan.contains("DeltaJoin(joinType=[InnerJoin]"), plan);
    String optimized = plan.substring(plan.indexOf("== Optimized Physical Plan =="));
    assertFalse(
        java.util.regex.Pattern.compile("(?<![A-Za-z])Join\\(joinType=").matcher(optimized).find(),
        "no regular join left: " + optimized);
  }

  @Test
  void aDeltaJoinJobJoinsBothSidesChangesThroughLookups() throws Exception {
    TableEnvironment batch = STROM.flink(EnvironmentSettings.inBatchMode(), 1);
    batch.executeSql("INSERT INTO users VALUES (1, 'ann'), (2, 'bob'), (3, 'cy'), (4, 'dee')").await();
    batch.executeSql("INSERT INTO scores VALUES (1, 10), (2, 20), (5, 50)").await();
    org.apache.flink.core.execution.JobClient job =
        streaming("FORCE").executeSql(JOIN).getJobClient().orElseThrow();
    try {
      awaitRows(batch, java.util.List.of("+I[1, ann, 10]", "+I[2, bob, 20]"));
      // Later changes on either side find their partners by lookup, not from join state.
      batch.executeSql("INSERT INTO scores VALUES (3, 30), (2, 21)").await();
      batch.executeSql("INSERT INTO users VALUES (5, 'eve')").await();
      awaitRows(batch, java.util.List.of("+I[1, ann, 10]", "+I[2, bob, 21]", "+I[3, cy, 30]", "+I[5, eve, 50]"));
    } finally {
      job.cancel().get();
      job.getJobExecutionResult().handle((r, e) -> null).get();
    }
  }

  /** Polls the joined table (a batch snapshot read) until it holds exactly {@code expected}. */
  private static void awaitRows(TableEnvironment batch, java.util.List<String> expected) throws Exception {
    long deadline = System.nanoTime() + java.time.Duration.ofSeconds(60).toNanos();
    java.util.List<String> rows = java.util.List.of();
    while (System.nanoTime() < deadline) {
      rows = new java.util.ArrayList<>();
      try (var it = batch.executeSql("SELECT id, name, score FROM joined").collect()) {
        while (it.hasNext()) {
          rows.add(it.next().toString());
        }
      }
      rows.sort(null);
      if (rows.equals(expected)) {
        return;
      }
      Thread.sleep(100); // polling interval of the condition, not a synchronisation
    }
    assertEquals(expected, rows, "the delta join's result");
  }

  @Test
  void anInnerJoinOnTheBucketKeyPrefixIsADeltaJoin() {
    String plan =
        streaming("FORCE")
            .explainSql(
                "INSERT INTO attributed SELECT v.user_id, v.page, o.user_id, o.order_id, o.amount"
                    + " FROM page_views AS v JOIN orders AS o ON v.user_id = o.user_id");
    assertTrue(plan.contains("DeltaJoin(joinType=[InnerJoin]"), plan);
  }

  @Test
  void unsupportedJoinsFailUnderForceAndFallBackUnderAuto() {
    // A side whose changelog has deletes (users_all allows them) cannot be delta-joined.
    String withDeletes =
        "INSERT INTO joined SELECT u.id, u.name, s.score FROM users_all AS u JOIN scores AS s ON u.id = s.id";
    Throwable forced = assertThrows(Throwable.class, () -> streaming("FORCE").explainSql(withDeletes));
    assertTrue(String.valueOf(forced.getMessage()).contains("delta join"), String.valueOf(forced.getMessage()));
    String auto = streaming("AUTO").explainSql(withDeletes);
    assertFalse(auto.contains("DeltaJoin("), auto);
    // A join on a column that is not an index.
    String onName =
        "INSERT INTO joined SELECT u.id, u.name, s.score FROM users AS u JOIN scores AS s ON u.id = s.score";
    assertThrows(Throwable.class, () -> streaming("FORCE").explainSql(onName));
  }
}
