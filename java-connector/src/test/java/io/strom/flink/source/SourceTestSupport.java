package io.strom.flink.source;

import io.strom.flink.client.BucketOffset;
import io.strom.flink.client.OffsetSpec;
import io.strom.flink.client.StromConnection;
import io.strom.flink.client.StromWriter;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.function.BooleanSupplier;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.apache.flink.types.Row;

/**
 * Writes rows to the node with the client (not with Flink, so a test controls exactly when a
 * change happens relative to a running job) and waits for conditions.
 */
final class SourceTestSupport {
  private SourceTestSupport() {}

  /**
   * Writes rows of BIGINT and STRING columns (a Java Long or String per value, null allowed)
   * through {@code writer} as one batch, and waits for the node's ack.
   */
  static void write(StromConnection strom, StromWriter writer, List<String> columns, Object[]... rows) {
    List<Field> fields = new ArrayList<>();
    for (int c = 0; c < columns.size(); c++) {
      boolean isString = false;
      for (Object[] row : rows) {
        isString |= row[c] instanceof String;
      }
      ArrowType type = isString ? ArrowType.Utf8.INSTANCE : new ArrowType.Int(64, true);
      fields.add(new Field(columns.get(c), FieldType.nullable(type), null));
    }
    try (VectorSchemaRoot root = VectorSchemaRoot.create(new Schema(fields), strom.allocator())) {
      root.allocateNew();
      for (int c = 0; c < columns.size(); c++) {
        FieldVector vector = root.getVector(c);
        for (int r = 0; r < rows.length; r++) {
          Object value = rows[r][c];
          if (value == null) {
            vector.setNull(r);
          } else if (vector instanceof VarCharVector strings) {
            strings.setSafe(r, ((String) value).getBytes(StandardCharsets.UTF_8));
          } else {
            ((BigIntVector) vector).setSafe(r, ((Number) value).longValue());
          }
        }
      }
      root.setRowCount(rows.length);
      writer.write(root);
    }
  }

  /** Rows {@code {id, "n" + id}} for ids from {@code from} (inclusive) to {@code to}. */
  static Object[][] idNameRows(long from, long to) {
    Object[][] rows = new Object[(int) (to - from)][];
    for (long id = from; id < to; id++) {
      rows[(int) (id - from)] = new Object[] {id, "n" + id};
    }
    return rows;
  }

  static void append(StromConnection strom, String db, String table, List<String> columns, Object[]... rows) {
    try (StromWriter writer = strom.appendWriter(db, table)) {
      write(strom, writer, columns, rows);
    }
  }

  static void upsert(StromConnection strom, String db, String table, List<String> columns, Object[]... rows) {
    try (StromWriter writer = strom.upsertWriter(db, table, null)) {
      write(strom, writer, columns, rows);
    }
  }

  static void delete(StromConnection strom, String db, String table, List<String> keyColumns, Object[]... keys) {
    try (StromWriter writer = strom.deleteWriter(db, table)) {
      write(strom, writer, keyColumns, keys);
    }
  }

  /** Records stored in a table (every bucket and partition): latest minus earliest offsets. */
  static long storedRecords(StromConnection strom, String db, String table) {
    long records = 0;
    for (BucketOffset offset : strom.listOffsets(db, table, null, OffsetSpec.latest())) {
      records += offset.offset();
    }
    return records;
  }

  /** Polls {@code condition} until it holds; fails with {@code what} after {@code timeout}. */
  static void await(String what, Duration timeout, BooleanSupplier condition) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out waiting for: " + what);
      }
      Thread.sleep(20); // polling interval of the condition, not a synchronisation
    }
  }

  /** The next {@code count} rows of a (streaming) result, as "+I[1, a]" strings. */
  static List<String> take(Iterator<Row> rows, int count) {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      out.add(rows.next().toString());
    }
    return out;
  }

  /** Every row of a bounded result, as strings. */
  static List<String> all(Iterator<Row> rows) {
    List<String> out = new ArrayList<>();
    rows.forEachRemaining(row -> out.add(row.toString()));
    return out;
  }

  static String messages(Throwable error) {
    StringBuilder out = new StringBuilder();
    for (Throwable t = error; t != null; t = t.getCause()) {
      out.append(t.getMessage()).append(" | ");
    }
    return out.toString();
  }
}
