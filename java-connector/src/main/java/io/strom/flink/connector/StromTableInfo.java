package io.strom.flink.connector;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;

/**
 * What the source needs to know of a table, from the node's {@code get_table} at planning
 * time (tables declared with {@code 'connector' = 'strom'} do not carry the node's options).
 *
 * @param deletesDropped {@code table.delete.behavior} is IGNORE or DISABLE: the changelog has no
 *     {@code -D}
 * @param walChangelogImage {@code table.changelog.image} = WAL: updates are only {@code +U}
 * @param primaryKey the primary-key columns (empty for a log table)
 * @param bucketKey the bucket-key columns (a strict prefix of the primary key is the
 *     prefix-lookup index)
 */
public record StromTableInfo(
    boolean primaryKeyTable,
    List<String> partitionKeys,
    int bucketCount,
    boolean firstRowMergeEngine,
    boolean deletesDropped,
    boolean walChangelogImage,
    List<String> primaryKey,
    List<String> bucketKey)
    implements Serializable {

  public static StromTableInfo fromJson(JsonNode info) {
    List<String> partitionKeys = new ArrayList<>();
    info.path("partition_keys").forEach(key -> partitionKeys.add(key.asText()));
    JsonNode options = info.path("options");
    String deletes = options.path("table.delete.behavior").asText("ALLOW");
    return new StromTableInfo(
        "primary_key".equals(info.path("kind").asText()),
        partitionKeys,
        info.path("bucket_num").asInt(1),
        "first_row".equalsIgnoreCase(options.path("table.merge-engine").asText("")),
        deletes.equalsIgnoreCase("IGNORE") || deletes.equalsIgnoreCase("DISABLE"),
        "WAL".equalsIgnoreCase(options.path("table.changelog.image").asText("FULL")),
        strings(info.path("primary_key")),
        strings(info.path("bucket_key")));
  }

  private static List<String> strings(JsonNode array) {
    List<String> out = new ArrayList<>();
    array.forEach(value -> out.add(value.asText()));
    return out;
  }

  public boolean partitioned() {
    return !partitionKeys.isEmpty();
  }
}
