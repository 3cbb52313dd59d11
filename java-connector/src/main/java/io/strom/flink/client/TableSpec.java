package io.strom.flink.client;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.strom.flink.client.internal.Json;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The body of {@code create_table}: columns with SQL type names, keys, buckets and options,
 * which the node validates (an unknown option or type is a {@link
 * StromInvalidArgumentException} naming it).
 */
public final class TableSpec {
  private final String database;
  private final String table;
  private final ArrayNode columns = Json.MAPPER.createArrayNode();
  private final List<String> primaryKey = new ArrayList<>();
  private final List<String> partitionKeys = new ArrayList<>();
  private final List<String> bucketKey = new ArrayList<>();
  private final Map<String, String> options = new LinkedHashMap<>();
  private Integer bucketNum;
  private boolean ifNotExists;
  private String comment;

  private TableSpec(String database, String table) {
    this.database = database;
    this.table = table;
  }

  public static TableSpec of(String database, String table) {
    return new TableSpec(database, table);
  }

  /** A nullable column of a SQL type ({@code BIGINT}, {@code STRING}, {@code DECIMAL(10,2)}...). */
  public TableSpec column(String name, String sqlType) {
    return column(name, sqlType, true);
  }

  public TableSpec column(String name, String sqlType, boolean nullable) {
    return column(name, sqlType, nullable, null);
  }

  /** A column with a comment (null: none), which {@code get_table} returns. */
  public TableSpec column(String name, String sqlType, boolean nullable, String comment) {
    ObjectNode column =
        columns.addObject().put("name", name).put("type", sqlType).put("nullable", nullable);
    if (comment != null) {
      column.put("comment", comment);
    }
    return this;
  }

  public TableSpec primaryKey(String... columns) {
    primaryKey.addAll(List.of(columns));
    return this;
  }

  public TableSpec partitionKeys(String... columns) {
    partitionKeys.addAll(List.of(columns));
    return this;
  }

  public TableSpec bucketKey(String... columns) {
    bucketKey.addAll(List.of(columns));
    return this;
  }

  public TableSpec bucketNum(int buckets) {
    this.bucketNum = buckets;
    return this;
  }

  public TableSpec option(String key, String value) {
    options.put(key, value);
    return this;
  }

  public TableSpec ifNotExists() {
    this.ifNotExists = true;
    return this;
  }

  public TableSpec comment(String comment) {
    this.comment = comment;
    return this;
  }

  ObjectNode toJson() {
    ObjectNode body = Json.object().put("database", database).put("table", table);
    body.set("columns", columns.deepCopy());
    putList(body, "primary_key", primaryKey);
    putList(body, "partition_keys", partitionKeys);
    putList(body, "bucket_key", bucketKey);
    if (bucketNum != null) {
      body.put("bucket_num", bucketNum);
    }
    if (!options.isEmpty()) {
      ObjectNode opts = body.putObject("options");
      options.forEach(opts::put);
    }
    if (ifNotExists) {
      body.put("if_not_exists", true);
    }
    if (comment != null) {
      body.put("comment", comment);
    }
    return body;
  }

  private static void putList(ObjectNode body, String field, List<String> values) {
    if (!values.isEmpty()) {
      ArrayNode array = body.putArray(field);
      values.forEach(array::add);
    }
  }
}
