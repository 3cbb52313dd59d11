package io.strom.example;

import static io.strom.example.FlightExample.check;
import static io.strom.example.FlightExample.checkEquals;
import static io.strom.example.FlightExample.ticket;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.Schema;

/** The log table {@code events}: appends with DoPut, then reads with DoGet (count, scans). */
final class LogTable {
  static final int BATCHES = 4;
  static final int ROWS_PER_BATCH = 5_000;

  // docs:begin schema
  // BIGINT → Int64, STRING → Utf8, INT → Int32 (docs/protocol.md has the whole mapping).
  static final Schema EVENTS =
      new Schema(
          List.of(
              Field.notNullable("id", new ArrowType.Int(64, true)),
              Field.nullable("user_name", ArrowType.Utf8.INSTANCE),
              Field.nullable("amount", new ArrowType.Int(32, true))));
  // docs:end schema

  private LogTable() {}

  /** The row {@code id} of the data set, as a scan returns it (amount null every 13th row). */
  static Map<String, Object> row(long id) {
    Map<String, Object> row = new LinkedHashMap<>();
    row.put("id", id);
    row.put("user_name", "user-" + (id % 97));
    row.put("amount", id % 13 == 0 ? null : (int) (id * 7 % 1000));
    return row;
  }

  static void run(FlightExample example) throws Exception {
    String db = example.db();
    List<Map<String, Object>> written = new ArrayList<>();
    for (long id = 0; id < (long) BATCHES * ROWS_PER_BATCH; id++) {
      written.add(row(id));
    }

    // docs:begin append
    List<JsonNode> acks;
    try (VectorSchemaRoot root = VectorSchemaRoot.create(EVENTS, example.allocator())) {
      acks =
          example.put(
              FlightDescriptor.path(db, "events"), // PATH descriptor: append
              root,
              BATCHES,
              (batch, i) -> {
                batch.allocateNew(); // fresh buffers; the previous batch was already sent
                BigIntVector id = (BigIntVector) batch.getVector("id");
                VarCharVector user = (VarCharVector) batch.getVector("user_name");
                IntVector amount = (IntVector) batch.getVector("amount");
                for (int r = 0; r < ROWS_PER_BATCH; r++) {
                  Map<String, Object> row = written.get(i * ROWS_PER_BATCH + r);
                  id.setSafe(r, (Long) row.get("id"));
                  user.setSafe(r, ((String) row.get("user_name")).getBytes(StandardCharsets.UTF_8));
                  if (row.get("amount") == null) {
                    amount.setNull(r);
                  } else {
                    amount.setSafe(r, (Integer) row.get("amount"));
                  }
                }
                batch.setRowCount(ROWS_PER_BATCH);
              });
    }
    // acks.get(0): {"rows":5000,"buckets":[{"bucket":0,"base_offset":0,"count":2471},
    //                                      {"bucket":1,"base_offset":0,"count":2529}]}
    // docs:end append
    example.checkAcks(acks, ROWS_PER_BATCH, ROWS_PER_BATCH, ROWS_PER_BATCH, ROWS_PER_BATCH);
    long acked = 0;
    for (JsonNode ack : acks) {
      for (JsonNode bucket : ack.path("buckets")) {
        check(bucket.path("bucket").asInt(-1) == 0 || bucket.path("bucket").asInt(-1) == 1,
            "events has buckets 0 and 1: " + ack);
        acked += bucket.path("count").asLong();
      }
    }
    checkEquals((long) written.size(), acked, "rows acknowledged over the buckets");
    example.out().printf("appended %d rows to events in %d batches (%s)%n",
        written.size(), BATCHES, acks.get(0));

    // docs:begin count
    FlightExample.Rows count =
        example.get(ticket(Map.of("count", "log", "database", db, "table", "events")));
    long stored = (Long) count.rows().get(0).get("count"); // one row, one int64 column "count"
    // docs:end count
    checkEquals((long) written.size(), stored, "count of events");

    // Full-width scan: the stored ZSTD-compressed IPC bodies are sent as they are.
    // docs:begin scan
    FlightExample.Rows all =
        example.get(ticket(Map.of("scan", "log", "database", db, "table", "events")));
    // Projection: only these columns, in this order, are read from disk and sent.
    FlightExample.Rows projected =
        example.get(
            ticket(
                Map.of(
                    "scan", "log",
                    "database", db,
                    "table", "events",
                    "columns", List.of("amount", "id"),
                    "from", "earliest")));
    // Every batch's app_metadata: {"bucket":1,"base_offset":0,"high_watermark":10060}
    // docs:end scan
    checkEquals(List.of("id", "user_name", "amount"), all.columns(), "columns of a full scan");
    checkEquals(written, FlightExample.sortedBy(all.rows(), "id"), "rows of the full scan");
    check(!all.metadata().isEmpty(), "scan batches carry app_metadata");
    for (JsonNode meta : all.metadata()) {
      check(meta.has("bucket") && meta.has("base_offset") && meta.has("high_watermark"),
          "scan metadata is {bucket, base_offset, high_watermark}: " + meta);
    }

    checkEquals(List.of("amount", "id"), projected.columns(), "columns of the projected scan");
    List<Map<String, Object>> expectedProjection = new ArrayList<>();
    for (Map<String, Object> row : written) {
      Map<String, Object> kept = new LinkedHashMap<>();
      kept.put("amount", row.get("amount"));
      kept.put("id", row.get("id"));
      expectedProjection.add(kept);
    }
    checkEquals(expectedProjection, FlightExample.sortedBy(projected.rows(), "id"),
        "rows of the projected scan");
    example.out().printf(
        "read events back: count %d; full scan %d rows in %d batches (first %s); projected scan"
            + " [amount, id] %d rows; all equal to what was written%n",
        stored, all.rows().size(), all.metadata().size(), all.metadata().get(0),
        projected.rows().size());
  }
}
