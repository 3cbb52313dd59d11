package io.strom.flink.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.strom.flink.client.internal.Json;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The JSON the client layer sends must be the contract's (docs/protocol.md). */
class RequestJsonTest {

  @Test
  void logScanTicketCarriesEveryOption() {
    JsonNode ticket =
        Json.parse(
            ScanRequest.log("shop", "orders")
                .from(OffsetSpec.offset(42))
                .to(OffsetSpec.latest())
                .buckets(0, 2)
                .columns(List.of("id", "amount"))
                .limit(10)
                .follow()
                .toJson());
    assertEquals("log", ticket.get("scan").asText());
    assertEquals("shop", ticket.get("database").asText());
    assertEquals(42, ticket.get("from").get("offset").asLong());
    assertEquals("latest", ticket.get("to").asText());
    assertEquals(2, ticket.get("buckets").get(1).asInt());
    assertEquals("amount", ticket.get("columns").get(1).asText());
    assertEquals(10, ticket.get("limit").asLong());
    assertTrue(ticket.get("follow").asBoolean());
  }

  @Test
  void snapshotTicketAndTimestampStart() {
    JsonNode ticket = Json.parse(ScanRequest.snapshot("shop", "users").toJson());
    assertEquals("snapshot", ticket.get("scan").asText());
    assertNull(ticket.get("from"));
    assertEquals(
        1700000000000L, OffsetSpec.timestamp(1700000000000L).toJson().get("timestamp").asLong());
  }

  @Test
  void tableSpecUsesTheContractFieldNames() {
    JsonNode body =
        TableSpec.of("shop", "users")
            .column("id", "BIGINT", false)
            .column("name", "STRING")
            .primaryKey("id")
            .bucketKey("id")
            .bucketNum(4)
            .option("table.merge-engine", "first_row")
            .ifNotExists()
            .toJson();
    assertEquals("BIGINT", body.get("columns").get(0).get("type").asText());
    assertEquals(false, body.get("columns").get(0).get("nullable").asBoolean());
    assertEquals("id", body.get("primary_key").get(0).asText());
    assertEquals(4, body.get("bucket_num").asInt());
    assertEquals("first_row", body.get("options").get("table.merge-engine").asText());
    assertTrue(body.get("if_not_exists").asBoolean());
    assertNull(body.get("partition_keys"), "empty lists are left out");
  }

  @Test
  void writerAndLookuperOptions() {
    JsonNode upsert = Json.parse(StromWriter.Options.upsert(List.of("id", "c")).partition("2024").toJson());
    assertEquals("upsert", upsert.get("kind").asText());
    assertEquals("c", upsert.get("target_columns").get(1).asText());
    assertEquals("2024", upsert.get("partition").asText());
    assertNull(Json.parse(StromWriter.Options.upsert(List.of()).toJson()).get("target_columns"));
    JsonNode lookup = Json.parse(new StromLookuper.Options().prefix().insertIfNotExists().toJson());
    assertTrue(lookup.get("prefix").asBoolean());
    assertTrue(lookup.get("insert_if_not_exists").asBoolean());
    assertNull(lookup.get("answer_timeout_ms"), "absent unless set: the client's default applies");
    JsonNode timed = Json.parse(new StromLookuper.Options().answerTimeout(java.time.Duration.ofSeconds(2)).toJson());
    assertEquals(2000, timed.get("answer_timeout_ms").asLong());
    assertThrows(IllegalArgumentException.class, () -> new StromLookuper.Options().answerTimeout(java.time.Duration.ofMillis(-1)));
  }

  @Test
  void writeAckParsesBucketsAndDuplicates() {
    WriteAck ack =
        WriteAck.fromJson(
            "{\"rows\":5,\"buckets\":[{\"bucket\":1,\"base_offset\":10,\"count\":5}],\"duplicate\":true}");
    assertEquals(5, ack.rows());
    assertEquals(new WriteAck.BucketAppend(1, null, 10, 5), ack.buckets().get(0));
    assertTrue(ack.duplicate());
  }
}
