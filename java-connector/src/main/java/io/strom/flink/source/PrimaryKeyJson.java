package io.strom.flink.source;

import com.fasterxml.jackson.databind.node.ArrayNode;
import io.strom.flink.client.internal.Json;
import java.util.List;
import org.apache.arrow.vector.BaseIntVector;
import org.apache.arrow.vector.BaseLargeVariableWidthVector;
import org.apache.arrow.vector.BaseVariableWidthVector;
import org.apache.arrow.vector.BitVector;
import org.apache.arrow.vector.DateDayVector;
import org.apache.arrow.vector.DecimalVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.FixedSizeBinaryVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.LargeVarCharVector;
import org.apache.arrow.vector.TimeMicroVector;
import org.apache.arrow.vector.TimeMilliVector;
import org.apache.arrow.vector.TimeNanoVector;
import org.apache.arrow.vector.TimeSecVector;
import org.apache.arrow.vector.TimeStampVector;
import org.apache.arrow.vector.VarCharVector;

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
      } else if (vector instanceof BitVector v) {
        key.add(v.get(row) != 0);
      } else if (vector instanceof TimeStampVector v) {
        key.add(v.get(row));
      } else if (vector instanceof DateDayVector v) {
        key.add(v.get(row));
      } else if (vector instanceof TimeSecVector v) {
        key.add(v.get(row));
      } else if (vector instanceof TimeMilliVector v) {
        key.add(v.get(row));
      } else if (vector instanceof TimeMicroVector v) {
        key.add(v.get(row));
      } else if (vector instanceof TimeNanoVector v) {
        key.add(v.get(row));
      } else if (vector instanceof BaseIntVector v) {
        key.add(v.getValueAsLong(row));
      } else if (vector instanceof Float4Vector v) {
        key.add(v.get(row));
      } else if (vector instanceof Float8Vector v) {
        key.add(v.get(row));
      } else if (vector instanceof DecimalVector v) {
        key.add(v.getObject(row).toPlainString());
      } else if (vector instanceof VarCharVector v) {
        key.add(new String(v.get(row), java.nio.charset.StandardCharsets.UTF_8));
      } else if (vector instanceof LargeVarCharVector v) {
        key.add(new String(v.get(row), java.nio.charset.StandardCharsets.UTF_8));
      } else if (vector instanceof BaseVariableWidthVector v) {
        addBytes(key, v.get(row));
      } else if (vector instanceof BaseLargeVariableWidthVector v) {
        addBytes(key, v.get(row));
      } else if (vector instanceof FixedSizeBinaryVector v) {
        addBytes(key, v.get(row));
      } else {
        throw new IllegalStateException(
            "primary-key column " + vector.getName() + " has a type a snapshot read cannot resume after: "
                + vector.getField().getType());
      }
    }
    return Json.write(key);
  }

  private static void addBytes(ArrayNode key, byte[] bytes) {
    ArrayNode values = key.addArray();
    for (byte b : bytes) {
      values.add(b & 0xff);
    }
  }
}
