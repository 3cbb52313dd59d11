package io.strom.flink.client;

import com.fasterxml.jackson.databind.JsonNode;
import io.strom.flink.client.internal.Json;
import java.util.ArrayList;
import java.util.List;

/**
 * The node's acknowledgement of one written batch, sent once it is durable: how many rows and
 * where they landed. {@code duplicate} is true when the batch was a retry the node had
 * already written (it was not written again).
 */
public record WriteAck(long rows, List<BucketAppend> buckets, boolean duplicate) {

  /** Where the rows of one batch landed in one bucket. */
  public record BucketAppend(int bucket, String partition, long baseOffset, long count) {}

  static WriteAck fromJson(String json) {
    JsonNode ack = Json.parse(json);
    List<BucketAppend> buckets = new ArrayList<>();
    for (JsonNode b : ack.path("buckets")) {
      JsonNode partition = b.get("partition");
      buckets.add(
          new BucketAppend(
              b.path("bucket").asInt(),
              partition == null || partition.isNull() ? null : partition.asText(),
              b.path("base_offset").asLong(),
              b.path("count").asLong()));
    }
    return new WriteAck(ack.path("rows").asLong(), List.copyOf(buckets), ack.path("duplicate").asBoolean());
  }
}
