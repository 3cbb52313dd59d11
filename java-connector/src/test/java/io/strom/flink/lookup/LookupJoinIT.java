package io.strom.flink.lookup;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.strom.flink.FlinkStromFixture;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Lookup joins ({@code JOIN t FOR SYSTEM_TIME AS OF o.proc}) against primary-key tables on the
 * real node: the async function (default) and the sync one, with and without Flink's partial
 * cache; full-key lookups, prefix lookups on the bucket key returning every row of the prefix,
 * lookups into the key's partition; projection; keys that are not there.
 */
class LookupJoinIT {
  @RegisterExtension
  static final MiniClusterExtension FLINK = FlinkStromFixture.miniCluster(2);

  @RegisterExtension
  static final FlinkStromFixture STROM = new FlinkStromFixture("lookup");

  @BeforeAll
  static void tables() throws Exception {
    TableEnvironment tEnv = STROM.flink(EnvironmentSettings.inBatchMode(), 1);
    tEnv.executeSql(
            "CREATE TABLE users (id BIGINT, name STRING, level INT, PRIMARY KEY (id) NOT ENFORCED)"
                + " WITH ('bucket.num' = '3')")
        .await();
    tEnv.executeSql("INSERT INTO users VALUES (1, 'ann', 3), (2, 'bob', 5), (3, 'cy', 1)").await();
    // Prefix index: the bucket key (user_id) is a strict prefix of the key (user_id, item).
    tEnv.executeSql(
            "CREATE TABLE carts (user_id BIGINT, item STRING, qty INT, PRIMARY KEY (user_id, item) NOT ENFORCED)"
                + " WITH ('bucket.num' = '2', 'bucket.key' = 'user_id')")
        .await();
    tEnv.executeSql("INSERT INTO carts VALUES (1, 'apple', 2), (1, 'pear', 1), (2, 'fig', 7)").await();
    tEnv.executeSql(
            "CREATE TABLE daily (id BIGINT, ds STRING, v INT, PRIMARY KEY (id, ds) NOT ENFORCED)"
                + " PARTITIONED BY (ds) WITH ('bucket.num' = '1')")
        .await();
    tEnv.executeSql("INSERT INTO daily VALUES (1, 'd1', 10), (1, 'd2', 20), (2, 'd2', 30)").await();
  }

  /** A streaming environment with the probe side: orders(order_id, user_id, ds, proc). */
  private static TableEnvironment probe() {
    TableEnvironment tEnv = STROM.flink(EnvironmentSettings.inStreamingMode(), 1);
    tEnv.executeSql(
        "CREATE TEMPORARY VIEW orders AS SELECT order_id, user_id, ds, PROCTIME() AS proc FROM"
            + " (VALUES (100, 1, 'd1'), (101, 2, 'd2'), (102, 9, 'd1'), (103, 1, 'd2')) AS t(order_id, user_id, ds)");
    return tEnv;
  }

  private static List<String> sortedRows(TableEnvironment tEnv, String sql) throws Exception {
    List<String> rows = new ArrayList<>();
    try (var it = tEnv.executeSql(sql).collect()) {
      it.forEachRemaining(row -> rows.add(row.toString()));
    }
    rows.sort(null);
    return rows;
  }

  @Test
  void fullKeyLookupsAsyncAndSyncWithAndWithoutCache() throws Exception {
    TableEnvironment tEnv = probe();
    List<String> expected = List.of("+I[100, ann]", "+I[101, bob]", "+I[102, null]", "+I[103, ann]");
    for (String hint :
        List.of(
            "",
            "/*+ OPTIONS('lookup.async' = 'false') */",
            "/*+ OPTIONS('lookup.cache' = 'PARTIAL', 'lookup.partial-cache.max-rows' = '100') */",
            "/*+ OPTIONS('lookup.async' = 'false', 'lookup.cache' = 'PARTIAL', 'lookup.partial-cache.max-rows' = '100') */")) {
      String sql =
          "SELECT o.order_id, u.name FROM orders AS o LEFT JOIN users " + hint
              + " FOR SYSTEM_TIME AS OF o.proc AS u ON o.user_id = u.id";
      assertEquals(expected, sortedRows(tEnv, sql), hint);
    }
    // Inner join: the missing key drops its order; projection asks the node for two columns.
    String plan = tEnv.explainSql(
        "SELECT o.order_id, u.level FROM orders AS o JOIN users FOR SYSTEM_TIME AS OF o.proc AS u ON o.user_id = u.id");
    assertTrue(plan.contains("LookupJoin"), plan);
    assertEquals(
        List.of("+I[100, 3]", "+I[101, 5]", "+I[103, 3]"),
        sortedRows(tEnv, "SELECT o.order_id, u.level FROM orders AS o JOIN users FOR SYSTEM_TIME AS OF o.proc AS u ON o.user_id = u.id"));
  }

  @Test
  void thousandsOfKeysInFlightAreBatchedAndEachGetsItsOwnAnswer() throws Exception {
    TableEnvironment batch = STROM.flink(EnvironmentSettings.inBatchMode(), 1);
    batch.executeSql("CREATE TABLE big_dim (id BIGINT, v BIGINT, PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket.num' = '4')")
        .await();
    batch.executeSql(
        "CREATE TEMPORARY TABLE dim_rows (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '2000',"
            + " 'rows-per-second' = '1000000000', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '2000')");
    batch.executeSql("INSERT INTO big_dim SELECT id, id * 2 FROM dim_rows").await();
    // 3 000 probe keys as fast as Flink makes them (1 000 of them missing): 100 in flight with
    // Flink's defaults, then with the settings docs/flink.md recommends for throughput (no
    // per-row Flink timer, object reuse: the rows handed to Flink must not be reused by us).
    joinEveryKeyInBatches(Map.of("table.exec.async-lookup.buffer-capacity", "100"));
    joinEveryKeyInBatches(
        Map.of(
            "table.exec.async-lookup.buffer-capacity", "5000",
            "table.exec.async-lookup.timeout", "0",
            "pipeline.object-reuse", "true"));
  }

  private static void joinEveryKeyInBatches(Map<String, String> settings) throws Exception {
    TableEnvironment tEnv = STROM.flink(EnvironmentSettings.inStreamingMode(), 1);
    settings.forEach(tEnv.getConfig()::set);
    tEnv.executeSql(
        "CREATE TEMPORARY TABLE probe_keys (k BIGINT, proc AS PROCTIME()) WITH ('connector' = 'datagen',"
            + " 'number-of-rows' = '3000', 'rows-per-second' = '1000000000', 'fields.k.kind' = 'sequence',"
            + " 'fields.k.start' = '1', 'fields.k.end' = '3000')");
    int joined = 0;
    long requestsBefore = StromLookups.REQUESTS_SENT.get();
    long keysBefore = StromLookups.KEYS_SENT.get();
    try (var it =
        tEnv.executeSql("SELECT p.k, d.id, d.v FROM probe_keys AS p JOIN big_dim FOR SYSTEM_TIME AS OF p.proc AS d ON p.k = d.id")
            .collect()) {
      while (it.hasNext()) {
        var row = it.next();
        long k = (Long) row.getField(0);
        assertEquals(k, (Long) row.getField(1), "the row of the key asked for");
        assertEquals(2 * k, (Long) row.getField(2));
        joined++;
      }
    }
    assertEquals(2000, joined, "every present key joined once: " + settings);
    long requests = StromLookups.REQUESTS_SENT.get() - requestsBefore;
    long keys = StromLookups.KEYS_SENT.get() - keysBefore;
    assertEquals(3000, keys, "every key was sent once: " + settings);
    assertTrue(requests < keys / 2, "keys in flight were batched: " + keys + " keys in " + requests + " requests, " + settings);
  }

  @Test
  void aJoinOnTheBucketKeyPrefixReturnsEveryRowOfThePrefix() throws Exception {
    TableEnvironment tEnv = probe();
    assertEquals(
        List.of("+I[100, apple, 2]", "+I[100, pear, 1]", "+I[101, fig, 7]", "+I[103, apple, 2]", "+I[103, pear, 1]"),
        sortedRows(
            tEnv,
            "SELECT o.order_id, c.item, c.qty FROM orders AS o JOIN carts FOR SYSTEM_TIME AS OF o.proc AS c"
                + " ON o.user_id = c.user_id"));
  }

  @Test
  void aPartitionedTableIsLookedUpInTheKeysPartition() throws Exception {
    TableEnvironment tEnv = probe();
    assertEquals(
        List.of("+I[100, 10]", "+I[101, 30]", "+I[103, 20]"),
        sortedRows(
            tEnv,
            "SELECT o.order_id, d.v FROM orders AS o JOIN daily FOR SYSTEM_TIME AS OF o.proc AS d"
                + " ON o.user_id = d.id AND o.ds = d.ds"));
  }

  @Test
  void joinKeysBeyondTheIndexFilterTheRowsTheIndexFinds() throws Exception {
    TableEnvironment tEnv = STROM.flink(EnvironmentSettings.inStreamingMode(), 1);
    tEnv.executeSql(
        "CREATE TEMPORARY VIEW wants AS SELECT order_id, user_id, lvl, item, PROCTIME() AS proc FROM (VALUES"
            + " (200, 1, 3, 'pear'), (201, 2, 4, 'fig'), (202, 2, 5, 'fig'), (203, 1, 3, 'plum'), (204, 3, CAST(NULL AS INT), 'x'))"
            + " AS t(order_id, user_id, lvl, item)");
    // Primary key (id) plus level: the node finds the user by id, the level must match too;
    // the second query does not read `level` (asked from the node only to compare it).
    for (boolean async : List.of(true, false)) {
      String hint = async ? "" : " /*+ OPTIONS('lookup.async' = 'false') */";
      assertEquals(
          List.of("+I[200, ann, 3]", "+I[201, null, null]", "+I[202, bob, 5]", "+I[203, ann, 3]", "+I[204, null, null]"),
          sortedRows(tEnv, "SELECT w.order_id, u.name, u.level FROM wants AS w LEFT JOIN users" + hint
              + " FOR SYSTEM_TIME AS OF w.proc AS u ON w.user_id = u.id AND w.lvl = u.level"),
          hint);
      assertEquals(
          List.of("+I[200, ann]", "+I[202, bob]", "+I[203, ann]"),
          sortedRows(tEnv, "SELECT w.order_id, u.name FROM wants AS w JOIN users" + hint
              + " FOR SYSTEM_TIME AS OF w.proc AS u ON w.user_id = u.id AND w.lvl = u.level"),
          hint);
    }
    // The bucket-key prefix (user_id) plus a constant qty: every row of the prefix, then qty compared.
    assertEquals(
        List.of("+I[200, apple]", "+I[201, null]", "+I[202, null]", "+I[203, apple]", "+I[204, null]"),
        sortedRows(tEnv, "SELECT w.order_id, c.item FROM wants AS w LEFT JOIN carts"
            + " FOR SYSTEM_TIME AS OF w.proc AS c ON w.user_id = c.user_id AND c.qty = 2"));
  }

  @Test
  void insertIfNotExistsGivesEveryNewKeyAnIdInTheSameRoundTrip() throws Exception {
    TableEnvironment batch = STROM.flink(EnvironmentSettings.inBatchMode(), 1);
    batch.executeSql(
            "CREATE TABLE user_mapping (user_id BIGINT, uid_int64 BIGINT, PRIMARY KEY (user_id) NOT ENFORCED)"
                + " WITH ('bucket.num' = '2', 'auto-increment.fields' = 'uid_int64')")
        .await();
    TableEnvironment tEnv = probe();
    List<String> rows =
        sortedRows(
            tEnv,
            "SELECT o.order_id, o.user_id, m.uid_int64 FROM orders AS o JOIN user_mapping"
                + " /*+ OPTIONS('lookup.insert-if-not-exists' = 'true') */"
                + " FOR SYSTEM_TIME AS OF o.proc AS m ON o.user_id = m.user_id");
    // Every order is joined (its user was inserted if new); one user, one id.
    assertEquals(4, rows.size(), rows.toString());
    java.util.Map<String, String> idOfUser = new java.util.HashMap<>();
    for (String row : rows) {
      String[] fields = row.substring(3, row.length() - 1).split(", ");
      String previous = idOfUser.put(fields[1], fields[2]);
      assertTrue(previous == null || previous.equals(fields[2]), "one id per user: " + rows);
      assertTrue(!fields[2].equals("null"), "an id was assigned: " + rows);
    }
    assertEquals(3, new java.util.HashSet<>(idOfUser.values()).size(), "distinct users get distinct ids: " + rows);
    // The node now holds the three users with those ids.
    TableEnvironment read = STROM.flink(EnvironmentSettings.inBatchMode(), 1);
    List<String> stored = sortedRows(read, "SELECT user_id, uid_int64 FROM user_mapping");
    List<String> expected = new ArrayList<>();
    idOfUser.forEach((user, id) -> expected.add("+I[" + user + ", " + id + "]"));
    expected.sort(null);
    assertEquals(expected, stored);
  }

  @Test
  void aNegativeAnswerTimeoutIsRefusedNamingTheOption() {
    TableEnvironment tEnv = probe();
    Throwable error =
        assertThrows(
            Throwable.class,
            () -> tEnv.explainSql(
                "SELECT o.order_id FROM orders AS o JOIN users /*+ OPTIONS('lookup.answer-timeout' = '-1 s') */"
                    + " FOR SYSTEM_TIME AS OF o.proc AS u ON o.user_id = u.id"));
    String messages = messageChain(error);
    assertTrue(messages.contains("Could not parse value '-1 s' for key 'lookup.answer-timeout'"), messages);
  }

  @Test
  void joinsOnOtherColumnsAreRefusedNamingTheKeys() {
    TableEnvironment tEnv = probe();
    Throwable error =
        assertThrows(
            Throwable.class,
            () -> tEnv.executeSql(
                    "SELECT o.order_id FROM orders AS o JOIN users FOR SYSTEM_TIME AS OF o.proc AS u ON o.ds = u.name")
                .await());
    String messages = messageChain(error);
    assertTrue(messages.contains("primary key [id]"), messages);
  }

  /** The messages of an exception and its causes, joined with " | ". */
  private static String messageChain(Throwable error) {
    StringBuilder messages = new StringBuilder();
    for (Throwable t = error; t != null; t = t.getCause()) {
      messages.append(t.getMessage()).append(" | ");
    }
    return messages.toString();
  }
}
