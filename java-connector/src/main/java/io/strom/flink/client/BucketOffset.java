package io.strom.flink.client;

import com.fasterxml.jackson.databind.JsonNode;

/** One bucket's offset in the answer of {@code list_offsets}. */
public record BucketOffset(int bucket, String partition, long offset) {
  static BucketOffset fromJson(JsonNode row) {
    JsonNode partition = row.get("partition");
    return new BucketOffset(
        row.path("bucket").asInt(),
        partition == null || partition.isNull() ? null : partition.asText(),
        row.path("offset").asLong());
  }
}
