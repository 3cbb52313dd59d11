package io.strom.flink.catalog;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.strom.flink.client.TableSpec;
import io.strom.flink.client.internal.Json;
import io.strom.flink.types.StromTypes;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.table.api.Schema;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.catalog.CatalogTable;
import org.apache.flink.table.catalog.Column;
import org.apache.flink.table.catalog.ResolvedCatalogTable;
import org.apache.flink.table.catalog.ResolvedSchema;
import org.apache.flink.table.catalog.TableDistribution;
import org.apache.flink.table.catalog.UniqueConstraint;
import org.apache.flink.table.types.DataType;

/**
 * Flink's table definitions ↔ the node's: a {@link ResolvedCatalogTable} becomes the body of
 * {@code create_table}, and the node's table info ({@code get_table}) becomes a {@link
 * CatalogTable}. The node is the only validator of storage options: everything in WITH is
 * forwarded as it is, so an unknown or malformed option fails with the node's message naming it.
 */
final class StromTableDefinitions {
  /** The connector option: implied inside the catalog, allowed only with our own value. */
  static final String CONNECTOR = "connector";

  static final String IDENTIFIER = "strom";

  private StromTableDefinitions() {}

  /** The {@code create_table} request for a table Flink resolved from DDL. */
  static TableSpec toTableSpec(
      String database, String table, ResolvedCatalogTable catalogTable, boolean ifNotExists) {
    ResolvedSchema schema = catalogTable.getResolvedSchema();
    if (!schema.getWatermarkSpecs().isEmpty()) {
      throw new ValidationException(
          "Table " + database + "." + table + ": WATERMARK definitions are not stored by the"
              + " Strom catalog yet; declare the watermark in a view or a temporary table"
              + " (CREATE TEMPORARY TABLE ... LIKE) instead.");
    }
    TableSpec spec = TableSpec.of(database, table);
    List<String> primaryKey =
        schema.getPrimaryKey().map(UniqueConstraint::getColumns).orElse(List.of());
    for (Column column : schema.getColumns()) {
      if (!column.isPhysical()) {
        throw new ValidationException(
            "Table " + database + "." + table + ": column '" + column.getName() + "' is a "
                + (column instanceof Column.ComputedColumn ? "computed" : "metadata")
                + " column; the Strom catalog stores physical columns only.");
      }
      String type = StromTypes.toStromType(column.getName(), column.getDataType().getLogicalType());
      // Flink makes primary-key columns NOT NULL itself; the node insists on it too.
      boolean nullable =
          column.getDataType().getLogicalType().isNullable() && !primaryKey.contains(column.getName());
      spec.column(column.getName(), type, nullable, column.getComment().orElse(null));
    }
    spec.primaryKey(primaryKey.toArray(new String[0]));
    spec.partitionKeys(catalogTable.getPartitionKeys().toArray(new String[0]));
    catalogTable.getDistribution().ifPresent(distribution -> applyDistribution(spec, distribution));
    for (Map.Entry<String, String> option : catalogTable.getOptions().entrySet()) {
      if (option.getKey().equals(CONNECTOR)) {
        if (!option.getValue().equals(IDENTIFIER)) {
          throw new ValidationException(
              "Table " + database + "." + table + " of a Strom catalog is stored in Strom, but"
                  + " it says 'connector' = '" + option.getValue() + "'. Remove the option, or"
                  + " create the table in another catalog.");
        }
        continue;
      }
      spec.option(option.getKey(), option.getValue());
    }
    if (catalogTable.getComment() != null && !catalogTable.getComment().isEmpty()) {
      spec.comment(catalogTable.getComment());
    }
    if (ifNotExists) {
      spec.ifNotExists();
    }
    return spec;
  }

  /** {@code DISTRIBUTED BY HASH(k) INTO n BUCKETS} is Strom's bucket key and bucket count. */
  private static void applyDistribution(TableSpec spec, TableDistribution distribution) {
    if (distribution.getKind() == TableDistribution.Kind.RANGE) {
      throw new ValidationException(
          "Strom distributes rows by hash only; DISTRIBUTED BY RANGE is not supported.");
    }
    spec.bucketKey(distribution.getBucketKeys().toArray(new String[0]));
    distribution.getBucketCount().ifPresent(spec::bucketNum);
  }

  /** The Flink view of the node's table info. */
  static CatalogTable toCatalogTable(JsonNode info) {
    Schema.Builder schema = Schema.newBuilder();
    for (JsonNode column : info.path("columns")) {
      String name = column.path("name").asText();
      DataType type =
          StromTypes.toFlinkType(
              name, column.path("type").asText(), column.path("nullable").asBoolean(true));
      schema.column(name, type);
      if (column.hasNonNull("comment")) {
        schema.withComment(column.path("comment").asText());
      }
    }
    List<String> primaryKey = strings(info.path("primary_key"));
    if (!primaryKey.isEmpty()) {
      schema.primaryKey(primaryKey);
      // The lookup indexes, declared for Flink's delta join (FLIP-486): the primary key, and
      // the bucket key plus the partition keys when the bucket key is a strict prefix of the
      // primary key (a prefix lookup returns every row of such a prefix).
      schema.index(primaryKey);
      List<String> bucketKey = strings(info.path("bucket_key"));
      if (!bucketKey.isEmpty() && !bucketKey.containsAll(primaryKey)) {
        List<String> prefixIndex = new ArrayList<>(bucketKey);
        for (String partitionKey : strings(info.path("partition_keys"))) {
          if (!prefixIndex.contains(partitionKey)) {
            prefixIndex.add(partitionKey);
          }
        }
        // A partitioned table's default bucket key is the primary key without the partition
        // keys: with them added back it is the primary key, already an index.
        if (!new java.util.HashSet<>(prefixIndex).equals(new java.util.HashSet<>(primaryKey))) {
          schema.index(prefixIndex);
        }
      }
    }
    Map<String, String> options = new LinkedHashMap<>();
    info.path("options").fields().forEachRemaining(e -> options.put(e.getKey(), e.getValue().asText()));
    return CatalogTable.newBuilder()
        .schema(schema.build())
        .comment(info.hasNonNull("comment") ? info.path("comment").asText() : null)
        .partitionKeys(strings(info.path("partition_keys")))
        .options(options)
        .build();
  }

  static List<String> partitionKeys(JsonNode info) {
    return strings(info.path("partition_keys"));
  }

  /**
   * The {@code alter_table} body that adds {@code column} (appended, nullable, online: the node
   * allows nothing else, see docs/schema-evolution.md).
   */
  static ObjectNode addColumnJson(String table, Column column) {
    if (!column.isPhysical()) {
      throw new ValidationException(
          "Table " + table + ": cannot add '" + column.getName()
              + "': the Strom catalog stores physical columns only.");
    }
    if (!column.getDataType().getLogicalType().isNullable()) {
      throw new ValidationException(
          "Table " + table + ": cannot add column '" + column.getName() + "' as NOT NULL:"
              + " rows written before it have no value there. Add it as a nullable column.");
    }
    ObjectNode json =
        Json.object()
            .put("name", column.getName())
            .put("type", StromTypes.toStromType(column.getName(), column.getDataType().getLogicalType()));
    column.getComment().ifPresent(comment -> json.put("comment", comment));
    return json;
  }

  static List<String> strings(JsonNode array) {
    List<String> out = new ArrayList<>();
    if (array instanceof ArrayNode) {
      array.forEach(node -> out.add(node.asText()));
    }
    return out;
  }
}
