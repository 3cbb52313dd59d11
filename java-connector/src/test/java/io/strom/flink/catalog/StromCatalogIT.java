package io.strom.flink.catalog;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.strom.flink.client.StromConnection;
import io.strom.flink.client.StromNode;
import io.strom.flink.client.internal.Json;
import io.strom.flink.client.internal.StromNative;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every DDL statement of the Strom catalog through a real Flink 2.3 TableEnvironment against
 * the real {@code strom} binary ($STROM_BIN): what Flink answers, and what the node then
 * reports through the client. Each test uses its own database, so they do not depend on order.
 */
class StromCatalogIT {
  private static StromNode node;
  private static StromConnection strom;
  private static TableEnvironment tEnv;

  @BeforeAll
  static void start() throws Exception {
    node = StromNode.start();
    strom = StromConnection.connect(node.endpoint());
    tEnv = TableEnvironment.create(EnvironmentSettings.inBatchMode());
    tEnv.executeSql(
        "CREATE CATALOG strom WITH ('type' = 'strom', 'endpoint' = '" + node.endpoint() + "')");
    tEnv.executeSql("USE CATALOG strom");
  }

  @AfterAll
  static void stop() throws Exception {
    if (tEnv != null) {
      // Dropping the catalog closes it (and its connection to the node).
      tEnv.executeSql("USE CATALOG default_catalog");
      tEnv.executeSql("DROP CATALOG strom");
    }
    if (strom != null) {
      strom.close();
    }
    if (node != null) {
      node.close();
    }
    JsonNode handles = Json.parse(StromNative.openHandles());
    assertEquals(0, handles.path("connections").asInt(), "the catalog closed its connection: " + handles);
  }

  @Test
  void aCatalogOnAnUnreachableNodeFailsNamingTheEndpoint() {
    // Port 1 on loopback: nothing listens there.
    String down = failure("CREATE CATALOG nowhere WITH ('type' = 'strom', 'endpoint' = 'grpc://127.0.0.1:1')");
    assertTrue(down.contains("grpc://127.0.0.1:1"), down);
    String noEndpoint = failure("CREATE CATALOG nowhere WITH ('type' = 'strom')");
    assertTrue(noEndpoint.contains("endpoint"), noEndpoint);
  }

  @Test
  void databasesAreCreatedListedAndDroppedOnTheNode() {
    assertTrue(strom.listDatabases().contains("strom"), "the default database is created on open");
    assertEquals("strom", single("SHOW CURRENT DATABASE"));

    sql("CREATE DATABASE ddl_db COMMENT 'for the test'");
    assertTrue(strom.listDatabases().contains("ddl_db"));
    assertTrue(column("SHOW DATABASES").contains("ddl_db"));

    String twice = failure("CREATE DATABASE ddl_db");
    assertTrue(twice.contains("ddl_db") && twice.contains("already exists"), twice);
    sql("CREATE DATABASE IF NOT EXISTS ddl_db");

    sql("CREATE TABLE ddl_db.t (id BIGINT)");
    String notEmpty = failure("DROP DATABASE ddl_db");
    assertTrue(notEmpty.contains("is not empty"), notEmpty);
    assertTrue(strom.listDatabases().contains("ddl_db"), "a refused drop drops nothing");

    sql("DROP DATABASE ddl_db CASCADE");
    assertFalse(strom.listDatabases().contains("ddl_db"));
    String missing = failure("DROP DATABASE ddl_db");
    assertTrue(missing.contains("ddl_db") && missing.contains("does not exist"), missing);
    sql("DROP DATABASE IF EXISTS ddl_db");
    String noTables = failure("SHOW TABLES FROM ddl_db");
    assertTrue(noTables.contains("ddl_db"), noTables);
  }

  @Test
  void logTableWithOptionsCommentsAndPartitionsReachesTheNode() {
    sql("CREATE DATABASE logs");
    sql(
        "CREATE TABLE logs.orders (\n"
            + "  order_id BIGINT NOT NULL COMMENT 'the id',\n"
            + "  user_id STRING,\n"
            + "  amount DECIMAL(10, 2),\n"
            + "  ts TIMESTAMP_LTZ(3),\n"
            + "  dt STRING\n"
            + ") COMMENT 'orders of the shop' PARTITIONED BY (dt) WITH (\n"
            + "  'bucket.num' = '3', 'bucket.key' = 'user_id',\n"
            + "  'table.log.ttl' = '2 d', 'table.log.arrow.compression.type' = 'LZ4_FRAME',\n"
            + "  'client.writer.bucket.no-key-assigner' = 'ROUND_ROBIN')");

    JsonNode info = strom.getTable("logs", "orders");
    assertEquals("log", info.path("kind").asText());
    assertEquals(3, info.path("bucket_num").asInt());
    assertEquals("[\"user_id\"]", info.path("bucket_key").toString());
    assertEquals("[\"dt\"]", info.path("partition_keys").toString());
    assertEquals("orders of the shop", info.path("comment").asText());
    assertEquals("2 d", info.path("options").path("table.log.ttl").asText());
    assertEquals("LZ4_FRAME", info.path("options").path("table.log.arrow.compression.type").asText());
    JsonNode id = info.path("columns").get(0);
    assertEquals("BIGINT", id.path("type").asText());
    assertFalse(id.path("nullable").asBoolean());
    assertEquals("the id", id.path("comment").asText());
    assertEquals("DECIMAL(10, 2)", info.path("columns").get(2).path("type").asText());
    assertEquals("TIMESTAMP_LTZ(3)", info.path("columns").get(3).path("type").asText());

    assertEquals(List.of("orders"), column("SHOW TABLES FROM logs"));
    List<Row> describe = rows("DESCRIBE logs.orders");
    assertEquals(5, describe.size());
    assertEquals(Row.of("order_id", "BIGINT", false, null, null, null, "the id"), describe.get(0));
    assertEquals("DECIMAL(10, 2)", describe.get(2).getField(1));
    assertEquals("TIMESTAMP_LTZ(3)", describe.get(3).getField(1));

    String ddl = single("SHOW CREATE TABLE logs.orders");
    assertTrue(ddl.contains("COMMENT 'orders of the shop'"), ddl);
    assertTrue(ddl.contains("PARTITIONED BY (`dt`)"), ddl);
    assertTrue(ddl.contains("'table.log.ttl' = '2 d'"), ddl);
    assertTrue(ddl.contains("'bucket.num' = '3'"), ddl);
    assertFalse(ddl.contains("'connector'"), "catalog tables need no connector option: " + ddl);

    sql("DROP TABLE logs.orders");
    assertEquals(List.of(), strom.listTables("logs"));
    String gone = failure("DROP TABLE logs.orders");
    assertTrue(gone.contains("orders") && gone.contains("does not exist"), gone);
    sql("DROP TABLE IF EXISTS logs.orders");
  }

  @Test
  void primaryKeyTableKeepsKeyBucketKeyAndMergeEngine() {
    sql("CREATE DATABASE pk");
    sql(
        "CREATE TABLE pk.order_dtm (user_id BIGINT, ds STRING, order_id BIGINT, amount DOUBLE,"
            + " ver BIGINT, PRIMARY KEY (user_id, ds, order_id) NOT ENFORCED) PARTITIONED BY (ds)"
            + " WITH ('bucket.key' = 'user_id', 'bucket.num' = '2',"
            + " 'table.merge-engine' = 'versioned', 'table.merge-engine.versioned.ver-column' = 'ver')");
    JsonNode info = strom.getTable("pk", "order_dtm");
    assertEquals("primary_key", info.path("kind").asText());
    assertEquals("[\"user_id\",\"ds\",\"order_id\"]", info.path("primary_key").toString());
    assertEquals("[\"user_id\"]", info.path("bucket_key").toString());
    assertEquals("versioned", info.path("options").path("table.merge-engine").asText());

    List<Row> describe = rows("DESCRIBE pk.order_dtm");
    assertEquals("PRI(user_id, ds, order_id)", describe.get(0).getField(3));
    assertEquals(false, describe.get(1).getField(2), "key columns are NOT NULL");
    assertTrue(single("SHOW CREATE TABLE pk.order_dtm").contains(
        "PRIMARY KEY (`user_id`, `ds`, `order_id`) NOT ENFORCED"));

    // CREATE TABLE ... LIKE copies columns, key, partitioning and options; WITH overrides.
    sql("CREATE TABLE pk.order_copy WITH ('bucket.num' = '5') LIKE pk.order_dtm");
    JsonNode copy = strom.getTable("pk", "order_copy");
    assertEquals(info.path("columns"), copy.path("columns"));
    assertEquals(info.path("primary_key"), copy.path("primary_key"));
    assertEquals(info.path("partition_keys"), copy.path("partition_keys"));
    assertEquals(5, copy.path("bucket_num").asInt());
    assertEquals("versioned", copy.path("options").path("table.merge-engine").asText());

    String twice = failure("CREATE TABLE pk.order_copy (a INT)");
    assertTrue(twice.contains("order_copy") && twice.contains("already exists"), twice);
    sql("CREATE TABLE IF NOT EXISTS pk.order_copy (a INT)");
    String noDb = failure("CREATE TABLE nowhere.t (a INT)");
    assertTrue(noDb.contains("nowhere") && noDb.contains("does not exist"), noDb);
  }

  @Test
  void theNodeValidatesOptionsAndItsMessageReachesTheUser() {
    sql("CREATE DATABASE bad");
    String ttl = failure("CREATE TABLE bad.t (a INT) WITH ('table.log.ttl' = 'soon')");
    assertTrue(ttl.contains("table.log.ttl") && ttl.contains("soon"), ttl);
    String unknown = failure("CREATE TABLE bad.t (a INT) WITH ('table.bogus' = '1')");
    assertTrue(unknown.contains("table.bogus"), unknown);
    String keyOnLog =
        failure("CREATE TABLE bad.t (a INT, b INT) WITH ('table.merge-engine' = 'first_row')");
    assertTrue(keyOnLog.contains("primary-key tables"), keyOnLog);
    String connector = failure("CREATE TABLE bad.t (a INT) WITH ('connector' = 'datagen')");
    assertTrue(connector.contains("'connector' = 'datagen'"), connector);
    String type = failure("CREATE TABLE bad.t (a INT, m MULTISET<INT>)");
    assertTrue(type.contains("'m'") && type.contains("MULTISET<INT>"), type);
    String computed = failure("CREATE TABLE bad.t (a INT, b AS a + 1)");
    assertTrue(computed.contains("'b'") && computed.contains("computed"), computed);
    assertEquals(List.of(), strom.listTables("bad"), "nothing was created");
  }

  @Test
  void partitionsAreAddedListedAndDropped() {
    sql("CREATE DATABASE parts");
    sql("CREATE TABLE parts.events (id BIGINT, dt STRING, region STRING) PARTITIONED BY (dt, region)");
    sql("ALTER TABLE parts.events ADD PARTITION (dt = '20261121', region = 'eu')"
        + " PARTITION (dt = '20261122', region = 'us')");
    List<String> names = new ArrayList<>();
    strom.listPartitions("parts", "events").forEach(p -> names.add(p.path("name").asText()));
    assertEquals(List.of("20261121$eu", "20261122$us"), names);
    assertEquals(
        List.of("dt=20261121/region=eu", "dt=20261122/region=us"), column("SHOW PARTITIONS parts.events"));
    assertEquals(
        List.of("dt=20261122/region=us"), column("SHOW PARTITIONS parts.events PARTITION (region = 'us')"));

    String twice = failure("ALTER TABLE parts.events ADD PARTITION (dt = '20261121', region = 'eu')");
    assertTrue(twice.contains("already exists"), twice);
    sql("ALTER TABLE parts.events ADD IF NOT EXISTS PARTITION (dt = '20261121', region = 'eu')");
    String partial = failure("ALTER TABLE parts.events ADD PARTITION (dt = '20261123')");
    assertTrue(partial.contains("dt") && partial.contains("region"), partial);

    sql("ALTER TABLE parts.events DROP PARTITION (dt = '20261121', region = 'eu')");
    assertEquals(List.of("dt=20261122/region=us"), column("SHOW PARTITIONS parts.events"));
    String gone = failure("ALTER TABLE parts.events DROP PARTITION (dt = '20261121', region = 'eu')");
    assertTrue(gone.contains("does not exist"), gone);

    sql("CREATE TABLE parts.flat (id BIGINT)");
    String flat = failure("SHOW PARTITIONS parts.flat");
    assertTrue(flat.contains("not partitioned") || flat.contains("not a partitioned"), flat);
  }

  @Test
  void alterTableAddsColumnsOnlineAndSetsOptions() {
    sql("CREATE DATABASE alt");
    sql("CREATE TABLE alt.clicks (id BIGINT, url STRING)");
    int schemaBefore = strom.getTable("alt", "clicks").path("schema_id").asInt();

    sql("ALTER TABLE alt.clicks ADD (channel STRING COMMENT 'where from', score DECIMAL(5, 1))");
    JsonNode info = strom.getTable("alt", "clicks");
    assertEquals(schemaBefore + 1, info.path("schema_id").asInt());
    JsonNode columns = info.path("columns");
    assertEquals(4, columns.size());
    assertEquals("channel", columns.get(2).path("name").asText());
    assertEquals("where from", columns.get(2).path("comment").asText());
    assertEquals("DECIMAL(5, 1)", columns.get(3).path("type").asText());
    assertEquals(Row.of("channel", "STRING", true, null, null, null, "where from"), rows("DESCRIBE alt.clicks").get(2));

    String notNull = failure("ALTER TABLE alt.clicks ADD (must INT NOT NULL)");
    assertTrue(notNull.contains("must") && notNull.contains("NOT NULL"), notNull);
    String first = failure("ALTER TABLE alt.clicks ADD (early INT FIRST)");
    assertTrue(first.contains("early"), first);
    String drop = failure("ALTER TABLE alt.clicks DROP url");
    assertTrue(drop.contains("alt.clicks"), drop);

    sql("ALTER TABLE alt.clicks SET ('table.log.ttl' = '3 d')");
    assertEquals("3 d", strom.getTable("alt", "clicks").path("options").path("table.log.ttl").asText());
    String offline = failure("ALTER TABLE alt.clicks SET ('bucket.num' = '8')");
    assertTrue(offline.contains("bucket.num"), offline);
    assertEquals(4, strom.getTable("alt", "clicks").path("columns").size(), "refused changes change nothing");
  }

  @Test
  void everyStorableTypeRoundTripsThroughTheNode() {
    sql("CREATE DATABASE types");
    Map<String, String> types = new LinkedHashMap<>();
    types.put("c_boolean", "BOOLEAN");
    types.put("c_tinyint", "TINYINT");
    types.put("c_smallint", "SMALLINT");
    types.put("c_int", "INT");
    types.put("c_bigint", "BIGINT");
    types.put("c_float", "FLOAT");
    types.put("c_double", "DOUBLE");
    types.put("c_decimal", "DECIMAL(38, 10)");
    types.put("c_char", "CHAR(4)");
    types.put("c_varchar", "VARCHAR(20)");
    types.put("c_string", "STRING");
    types.put("c_binary", "BINARY(16)");
    types.put("c_varbinary", "VARBINARY(32)");
    types.put("c_bytes", "BYTES");
    types.put("c_date", "DATE");
    types.put("c_time", "TIME(3)");
    types.put("c_ts0", "TIMESTAMP(0)");
    types.put("c_ts", "TIMESTAMP(6)");
    types.put("c_ts9", "TIMESTAMP(9)");
    types.put("c_ltz", "TIMESTAMP_LTZ(3)");
    types.put("c_array", "ARRAY<INT NOT NULL>");
    types.put("c_map", "MAP<STRING, ARRAY<BIGINT>>");
    types.put("c_row", "ROW<`a` INT NOT NULL, `b c` STRING>");
    types.put("c_not_null", "BIGINT NOT NULL");
    StringBuilder ddl = new StringBuilder("CREATE TABLE types.all_types (");
    types.forEach((name, type) -> ddl.append(name).append(' ').append(type).append(", "));
    ddl.setLength(ddl.length() - 2);
    sql(ddl.append(')').toString());

    List<Row> describe = rows("DESCRIBE types.all_types");
    assertEquals(types.size(), describe.size());
    for (Row row : describe) {
      String declared = types.get((String) row.getField(0));
      boolean nullable = !declared.endsWith(" NOT NULL");
      String expected = nullable ? declared : declared.substring(0, declared.length() - 9);
      assertEquals(expected, row.getField(1), "type of " + row.getField(0));
      assertEquals(nullable, row.getField(2), "nullability of " + row.getField(0));
    }
    assertEquals("VARCHAR(20)", strom.getTable("types", "all_types").path("columns").get(9).path("type").asText());
  }

  @Test
  void theUserStoryTablesOfTheFlinkGuideAreCreatedAsWritten() throws Exception {
    // The CREATE TABLE statements of docs/flink.md "Examples from the user stories", verbatim.
    String doc = java.nio.file.Files.readString(java.nio.file.Path.of("..", "docs", "flink.md"));
    String section = doc.substring(doc.indexOf("## Examples from the user stories"), doc.indexOf("## Not supported yet"));
    java.util.regex.Matcher blocks = java.util.regex.Pattern.compile("```sql\n(.*?)```", java.util.regex.Pattern.DOTALL).matcher(section);
    List<String> created = new ArrayList<>();
    sql("CREATE DATABASE stories");
    sql("USE stories");
    try {
      while (blocks.find()) {
        for (String statement : blocks.group(1).replaceAll("--[^\n]*", "").split(";")) {
          String trimmed = statement.strip();
          if (trimmed.startsWith("CREATE TABLE")) {
            sql(trimmed);
            created.add(trimmed.substring("CREATE TABLE ".length()).split("[ (]")[0]);
          }
        }
      }
    } finally {
      sql("USE strom");
    }
    assertEquals(List.of("shop_stat_wide", "order_dtm", "dpv_versioned_merge", "deal_kv", "ads_uv_agg"), created);
    assertEquals(created, strom.listTables("stories").stream().sorted(
        java.util.Comparator.comparingInt(created::indexOf)).toList());
    JsonNode uv = strom.getTable("stories", "ads_uv_agg").path("options");
    assertEquals("aggregation", uv.path("table.merge-engine").asText(), uv.toString());
    assertEquals("rbm32", uv.path("fields.uv_bitmap.agg").asText(), uv.toString());
    assertEquals("versioned", strom.getTable("stories", "dpv_versioned_merge").path("options").path("table.merge-engine").asText());
  }

  private static void sql(String statement) {
    try {
      tEnv.executeSql(statement).await();
    } catch (InterruptedException | java.util.concurrent.ExecutionException e) {
      throw new RuntimeException(statement, e);
    }
  }

  private static List<Row> rows(String statement) {
    TableResult result = tEnv.executeSql(statement);
    List<Row> rows = new ArrayList<>();
    try (CloseableIterator<Row> it = result.collect()) {
      it.forEachRemaining(rows::add);
    } catch (Exception e) {
      throw new RuntimeException(e);
    }
    return rows;
  }

  private static List<String> column(String statement) {
    List<String> values = new ArrayList<>();
    rows(statement).forEach(row -> values.add(String.valueOf(row.getField(0))));
    return values;
  }

  private static String single(String statement) {
    List<String> values = column(statement);
    assertEquals(1, values.size(), statement);
    return values.get(0);
  }

  /** Runs a statement that must fail; the messages of the whole cause chain, joined. */
  static String failure(String statement) {
    Throwable error = assertThrows(Throwable.class, () -> tEnv.executeSql(statement).await(), statement);
    StringBuilder messages = new StringBuilder();
    for (Throwable t = error; t != null; t = t.getCause()) {
      messages.append(t.getMessage()).append(" | ");
    }
    return messages.toString();
  }
}
