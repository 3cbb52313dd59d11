package io.strom.example;

import static io.strom.example.FlightExample.TIMEOUT;
import static io.strom.example.FlightExample.check;
import static io.strom.example.FlightExample.checkEquals;
import static io.strom.example.FlightExample.command;
import static io.strom.example.FlightExample.ticket;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.arrow.flight.FlightClient.ClientStreamListener;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.FlightStream;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * The primary-key table {@code users}: upserts, a partial update and a delete with DoPut, then
 * lookups over one DoExchange stream, checked against a model of the expected rows.
 */
final class PkTable {
  static final int USERS = 100;

  private static final Field USER_ID = Field.notNullable("user_id", new ArrowType.Int(64, true));
  private static final Field NAME = Field.nullable("name", ArrowType.Utf8.INSTANCE);
  private static final Field SCORE = Field.nullable("score", new ArrowType.Int(64, true));

  private PkTable() {}

  static void run(FlightExample example) throws Exception {
    String db = example.db();
    // The rows the table should hold afterwards, by key.
    TreeMap<Long, Map<String, Object>> model = new TreeMap<>();

    // Full rows for users 1..100: a PATH descriptor on a primary-key table upserts.
    try (VectorSchemaRoot root =
        VectorSchemaRoot.create(new Schema(List.of(USER_ID, NAME, SCORE)), example.allocator())) {
      List<JsonNode> acks =
          example.put(FlightDescriptor.path(db, "users"), root, 1, (batch, i) -> {
            batch.allocateNew();
            for (int r = 0; r < USERS; r++) {
              long id = r + 1;
              ((BigIntVector) batch.getVector("user_id")).setSafe(r, id);
              ((VarCharVector) batch.getVector("name"))
                  .setSafe(r, ("user-" + id).getBytes(StandardCharsets.UTF_8));
              ((BigIntVector) batch.getVector("score")).setSafe(r, id * 10);
              model.put(id, user(id, "user-" + id, id * 10));
            }
            batch.setRowCount(USERS);
          });
      example.checkAcks(acks, USERS);
    }

    // A partial update of users 1..10: the batch holds the key and the target column only;
    // the names keep their stored values.
    // docs:begin partial
    FlightDescriptor partial =
        command(
            Map.of(
                "write", "upsert",
                "database", db,
                "table", "users",
                "target_columns", List.of("score")));
    List<JsonNode> partialAcks;
    try (VectorSchemaRoot root =
        VectorSchemaRoot.create(new Schema(List.of(USER_ID, SCORE)), example.allocator())) {
      partialAcks =
          example.put(partial, root, 1, (batch, i) -> {
            batch.allocateNew();
            for (int r = 0; r < 10; r++) {
              ((BigIntVector) batch.getVector("user_id")).setSafe(r, r + 1);
              ((BigIntVector) batch.getVector("score")).setSafe(r, 1000 + r + 1);
            }
            batch.setRowCount(10);
          });
    }
    // docs:end partial
    example.checkAcks(partialAcks, 10);
    for (long id = 1; id <= 10; id++) {
      model.get(id).put("score", 1000 + id);
    }

    // A delete: the batch holds the key columns.
    // docs:begin delete
    FlightDescriptor delete =
        command(Map.of("write", "delete", "database", db, "table", "users"));
    List<JsonNode> deleteAcks;
    try (VectorSchemaRoot root =
        VectorSchemaRoot.create(new Schema(List.of(USER_ID)), example.allocator())) {
      deleteAcks =
          example.put(delete, root, 1, (batch, i) -> {
            batch.allocateNew();
            ((BigIntVector) batch.getVector("user_id")).setSafe(0, USERS);
            batch.setRowCount(1);
          });
    }
    // docs:end delete
    example.checkAcks(deleteAcks, 1);
    model.remove((long) USERS);
    example.out().printf(
        "users: upserted %d rows, partial update of score for 10, deleted user %d%n", USERS, USERS);

    // Lookups: one DoExchange stream, one key batch per request. Request 1 mixes found keys,
    // the deleted one and one that never existed; request 2 asks for every key.
    List<long[]> requests = new ArrayList<>();
    requests.add(new long[] {5, 50, USERS, 12_345});
    long[] everyKey = new long[USERS];
    for (int i = 0; i < USERS; i++) {
      everyKey[i] = i + 1;
    }
    requests.add(everyKey);
    List<List<Map<String, Object>>> answers = lookup(example, requests);
    for (int i = 0; i < requests.size(); i++) {
      List<Map<String, Object>> expected = new ArrayList<>();
      for (long key : requests.get(i)) {
        if (model.containsKey(key)) {
          expected.add(model.get(key));
        }
      }
      checkEquals(expected, answers.get(i), "answer to lookup request " + i);
    }
    example.out().printf(
        "DoExchange lookups: %d keys -> %d rows (user 5: %s), %d keys -> %d rows; all as expected%n",
        requests.get(0).length, answers.get(0).size(), answers.get(0).get(0),
        requests.get(1).length, answers.get(1).size());

    // A snapshot scan (DoGet) sees the same rows.
    FlightExample.Rows snapshot =
        example.get(ticket(Map.of("scan", "snapshot", "database", db, "table", "users")));
    checkEquals(new ArrayList<>(model.values()), FlightExample.sortedBy(snapshot.rows(), "user_id"),
        "snapshot of users");
    example.out().printf("snapshot scan of users: %d rows, as expected%n", snapshot.rows().size());
  }

  static Map<String, Object> user(long id, String name, Long score) {
    Map<String, Object> row = new LinkedHashMap<>();
    row.put("user_id", id);
    row.put("name", name);
    row.put("score", score);
    return row;
  }

  /**
   * Looks the keys of each request up over one DoExchange stream; returns, per request, the rows
   * found in request order (each row as user_id, name, score).
   */
  static List<List<Map<String, Object>>> lookup(FlightExample example, List<long[]> requests)
      throws Exception {
    FlightClient client = example.client();
    List<List<Map<String, Object>>> results = new ArrayList<>();
    // docs:begin exchange
    // The lookup JSON without "keys": the keys come as Arrow record batches.
    FlightDescriptor lookup =
        command(Map.of("lookup", "primary_key", "database", example.db(), "table", "users"));
    ReadyGate gate = new ReadyGate();
    try (FlightClient.ExchangeReaderWriter exchange = client.doExchange(lookup, gate, TIMEOUT);
        VectorSchemaRoot keys =
            VectorSchemaRoot.create(new Schema(List.of(USER_ID)), example.allocator())) {
      ClientStreamListener writer = exchange.getWriter();
      FlightStream answers = exchange.getReader();
      writer.start(keys); // sends the key schema: the key columns, by name
      for (long[] request : requests) {
        keys.allocateNew();
        BigIntVector userId = (BigIntVector) keys.getVector("user_id");
        for (int i = 0; i < request.length; i++) {
          userId.setSafe(i, request[i]);
        }
        keys.setRowCount(request.length);
        gate.awaitReady(writer);
        writer.putNext();
        // One answer batch per key batch: _key_index (int32, the request row it answers)
        // first, then the row's columns; keys not found have no row.
        check(answers.next(), "an answer for every key batch");
        VectorSchemaRoot answer = answers.getRoot();
        IntVector keyIndex = (IntVector) answer.getVector("_key_index");
        List<Map<String, Object>> found = new ArrayList<>();
        for (int row = 0; row < answer.getRowCount(); row++) {
          long key = request[keyIndex.get(row)];
          checkEquals(key, FlightExample.value(answer, "user_id", row), "_key_index names the key");
          found.add(user(key, (String) FlightExample.value(answer, "name", row),
              (Long) FlightExample.value(answer, "score", row)));
        }
        results.add(found);
      }
      writer.completed(); // no more keys: the node ends the stream
      exchange.getResult(); // drains the reader; throws FlightRuntimeException on an error
    }
    // docs:end exchange
    return results;
  }
}
