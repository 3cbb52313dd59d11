package io.strom.flink.client.internal;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.util.JsonRecyclerPools;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

/** The JSON of the Flight contract (docs/protocol.md), with one shared mapper. */
public final class Json {
  /**
   * Jackson's default buffer recycling keeps a buffer in a {@code ThreadLocal} of every thread
   * that parsed or wrote JSON. Those values are instances of the connector's (relocated)
   * Jackson classes, so each such thread — Flink's, living longer than the job — would hold
   * the job's class loader forever after a job restart (TwoClassLoadersIT caught it). A pool
   * shared through a static field of the connector's own classes goes away with them.
   */
  public static final ObjectMapper MAPPER =
      new ObjectMapper(
          JsonFactory.builder()
              .recyclerPool(JsonRecyclerPools.sharedConcurrentDequePool())
              .build());

  private Json() {}

  public static ObjectNode object() {
    return MAPPER.createObjectNode();
  }

  public static JsonNode parse(String json) {
    try {
      return MAPPER.readTree(json);
    } catch (JsonProcessingException e) {
      // The node and the bridge only send JSON they produced: this is a bug, not bad input.
      throw new IllegalStateException("the Strom bridge returned malformed JSON: " + json, e);
    }
  }

  public static String write(Object value) {
    try {
      return MAPPER.writeValueAsString(value);
    } catch (JsonProcessingException e) {
      throw new IllegalArgumentException("cannot encode as JSON: " + value, e);
    }
  }
}
