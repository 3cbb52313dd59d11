package io.strom.flink.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.TextNode;
import io.strom.flink.client.internal.Json;

/** Which offset {@code list_offsets} resolves, or where a log scan starts. */
public final class OffsetSpec {
  private final JsonNode json;

  private OffsetSpec(JsonNode json) {
    this.json = json;
  }

  /** The first offset still stored. */
  public static OffsetSpec earliest() {
    return new OffsetSpec(TextNode.valueOf("earliest"));
  }

  /** The high watermark: the offset the next committed record gets. */
  public static OffsetSpec latest() {
    return new OffsetSpec(TextNode.valueOf("latest"));
  }

  /** The first offset committed at or after {@code epochMillis}. */
  public static OffsetSpec timestamp(long epochMillis) {
    return new OffsetSpec(Json.object().put("timestamp", epochMillis));
  }

  /** An exact offset (scans only). */
  public static OffsetSpec offset(long offset) {
    return new OffsetSpec(Json.object().put("offset", offset));
  }

  JsonNode toJson() {
    return json.deepCopy();
  }

  @Override
  public String toString() {
    return json.toString();
  }
}
