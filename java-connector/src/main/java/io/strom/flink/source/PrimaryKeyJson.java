package io.strom.flink.source;

import com.fasterxml.jackson.databind.node.ArrayNode;
import io.strom.flink.client.internal.Json;
import java.math.BigDecimal;
import java.util.List;
import org.apache.arrow.vector.BaseFixedWidthVector;
import org.apache.arrow.vector.BaseIntVector;
import org.apache.arrow.vector.BitVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.Float8Vector;

/**
 * One row's primary key as the node's JSON key values (docs/protocol.md, "JSON values"), in
 * declared key order: integers for integer, date (days), time and timestamp columns (in the
 * column's unit, as stored, so no time zone or precision is lost), strings for strings,
 * DECIMAL as its plain string, BYTES as an array of byte values.
 */
final class PrimaryKeyJson {
  private PrimaryKeyJson() {}

  static String of(List<FieldVector> keyVectors, int row) {
    ArrayNode key = Json.MAPPER.createArrayNode();
    for (FieldVector vector : keyVectors) {
      if (vector.isNull(row)) {
        key.addNull();
        continue;
      }
      switch (vector.getField().getType().getTypeID()) {
        case Bool -> key.add(((BitVector) vector).get(row) != 0);
        case Int -> key.add(((BaseIntVector) vector).getValueAsLong(row));
        case Date, Time, Timestamp -> key.add(storedInteger((BaseFixedWidthVector) vector, row));
        case FloatingPoint -> {
          if (vector instanceof Float4Vector f) {
            key.add(f.get(row));
          } else {
            key.add(((Float8Vector) vector).get(row));
          }
        }
        case Decimal -> key.add(((BigDecimal) vector.getObject(row)).toPlainString());
        case Utf8, LargeUtf8 -> key.add(vector.getObject(row).toString());
        case Binary, LargeBinary, FixedSizeBinary -> addBytes(key, (byte[]) vector.getObject(row));
        default -> throw new IllegalStateException(
            "primary-key column " + vector.getName() + " has a type a snapshot read cannot resume after: "
                + vector.getField().getType());
      }
    }
    return Json.write(key);
  }

  /** A date, time or timestamp as stored: a 4- or 8-byte integer in the column's unit. */
  private static long storedInteger(BaseFixedWidthVector vector, int row) {
    return vector.getTypeWidth() == Integer.BYTES
        ? vector.getDataBuffer().getInt((long) row * Integer.BYTES)
        : vector.getDataBuffer().getLong((long) row * Long.BYTES);
  }

  private static void addBytes(ArrayNode key, byte[] bytes) {
    ArrayNode values = key.addArray();
    for (byte b : bytes) {
      values.add(b & 0xff);
    }
  }
}
