package io.strom.flink.source;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.BitVector;
import org.apache.arrow.vector.DateDayVector;
import org.apache.arrow.vector.DecimalVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.TimeStampMicroTZVector;
import org.apache.arrow.vector.TimeStampMilliVector;
import org.apache.arrow.vector.VarBinaryVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.types.TimeUnit;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.junit.jupiter.api.Test;

/** Snapshot rows' keys as the node's JSON key values (docs/protocol.md), in declared key order. */
class PrimaryKeyJsonTest {
  @Test
  void givenEachKeyTypeWhenWrittenShouldGiveTheNodesJsonValues() {
    try (BufferAllocator allocator = new RootAllocator();
        BigIntVector id = new BigIntVector("id", allocator);
        IntVector small = new IntVector("small", allocator);
        DateDayVector day = new DateDayVector("day", allocator);
        VarCharVector name = new VarCharVector("name", allocator);
        DecimalVector price = new DecimalVector("price", allocator, 10, 2);
        TimeStampMilliVector at = new TimeStampMilliVector("at", allocator);
        TimeStampMicroTZVector ltz = new TimeStampMicroTZVector(
            "ltz", FieldType.notNullable(new ArrowType.Timestamp(TimeUnit.MICROSECOND, "UTC")), allocator);
        VarBinaryVector bytes = new VarBinaryVector("bytes", allocator);
        BitVector flag = new BitVector("flag", allocator)) {
      id.setSafe(1, -42L);
      small.setSafe(1, 7);
      day.setSafe(1, 20_000);
      name.setSafe(1, "caf\u00e9 \"q\"".getBytes(StandardCharsets.UTF_8));
      price.setSafe(1, new BigDecimal("12.50"));
      at.setSafe(1, 1_700_000_000_123L);
      ltz.setSafe(1, 1_700_000_000_123_456L);
      bytes.setSafe(1, new byte[] {0, 1, (byte) 0xff});
      flag.setSafe(1, 1);
      List<FieldVector> vectors = List.of(id, small, day, name, price, at, ltz, bytes, flag);
      for (FieldVector vector : vectors) {
        vector.setValueCount(2);
      }
      assertEquals(
          "[-42,7,20000,\"caf\u00e9 \\\"q\\\"\",\"12.50\",1700000000123,1700000000123456,[0,1,255],true]",
          PrimaryKeyJson.of(vectors, 1));
    }
  }
}
