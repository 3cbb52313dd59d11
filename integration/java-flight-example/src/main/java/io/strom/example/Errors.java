package io.strom.example;

import static io.strom.example.FlightExample.check;
import static io.strom.example.FlightExample.command;
import static io.strom.example.FlightExample.expectError;
import static io.strom.example.FlightExample.ticket;

import java.util.List;
import java.util.Map;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * Rejected requests and the {@link FlightStatusCode} Arrow Java reports for them: the error
 * table of docs/java.md is checked here.
 */
final class Errors {
  private Errors() {}

  static void run(FlightExample example) throws Exception {
    String db = example.db();
    var out = example.out();

    // docs:begin errors
    try {
      example.action("create_database", Map.of("name", db)); // exists, no if_not_exists
    } catch (FlightRuntimeException e) {
      // e.status().code() == ALREADY_EXISTS; the description names the database
      out.println("  " + e.status().code() + ": " + e.status().description());
    }
    // docs:end errors
    String exists =
        expectError(FlightStatusCode.ALREADY_EXISTS,
            () -> example.action("create_database", Map.of("name", db)), "create_database twice");
    check(exists.contains(db), "the ALREADY_EXISTS message names the database: " + exists);

    // A DoGet error arrives with the stream (FlightStream.next()/getRoot()), not from getStream.
    String missing =
        expectError(FlightStatusCode.NOT_FOUND,
            () -> example.get(ticket(Map.of("scan", "log", "database", db, "table", "nope"))),
            "scan of an unknown table");
    check(missing.contains("nope"), "the NOT_FOUND message names the table: " + missing);

    // Unknown JSON fields are refused, so a typo never silently means "all columns".
    String typo =
        expectError(FlightStatusCode.INVALID_ARGUMENT,
            () -> example.get(ticket(Map.of("scan", "log", "database", db, "table", "events",
                "colums", List.of("id")))),
            "a ticket with a misspelt field");
    check(typo.contains("colums"), "the INVALID_ARGUMENT message names the field: " + typo);

    // "append" on a primary-key table is FAILED_PRECONDITION on the wire; Arrow Java maps that
    // gRPC code to INVALID_ARGUMENT (StatusUtils.fromGrpcStatusCode), so only the message tells
    // the two apart. A DoPut error is thrown by getResult().
    Schema keyOnly = new Schema(List.of(Field.notNullable("user_id", new ArrowType.Int(64, true))));
    String precondition;
    try (VectorSchemaRoot root = VectorSchemaRoot.create(keyOnly, example.allocator())) {
      precondition =
          expectError(FlightStatusCode.INVALID_ARGUMENT,
              () -> example.put(
                  command(Map.of("write", "append", "database", db, "table", "users")),
                  root, 1, (batch, i) -> {
                    batch.allocateNew();
                    ((BigIntVector) batch.getVector("user_id")).setSafe(0, 1);
                    batch.setRowCount(1);
                  }),
              "append to a primary-key table");
    }
    out.println("  FAILED_PRECONDITION seen as INVALID_ARGUMENT: " + precondition);
    out.println("rejected requests raised the expected FlightStatusCode: ALREADY_EXISTS, "
        + "NOT_FOUND, INVALID_ARGUMENT (twice)");
  }
}
