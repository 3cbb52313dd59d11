package io.strom.flink.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.strom.flink.client.internal.CData;
import io.strom.flink.client.internal.StromNative;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.apache.arrow.c.ArrowArray;
import org.apache.arrow.c.ArrowSchema;
import org.apache.arrow.c.Data;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.BitVector;
import org.apache.arrow.vector.DateDayVector;
import org.apache.arrow.vector.DecimalVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.SmallIntVector;
import org.apache.arrow.vector.TimeStampMicroTZVector;
import org.apache.arrow.vector.TinyIntVector;
import org.apache.arrow.vector.VarBinaryVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.complex.StructVector;
import org.apache.arrow.vector.complex.impl.UnionListWriter;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.apache.arrow.vector.util.Text;
import org.junit.jupiter.api.Test;

/**
 * The native library without a node: Arrow across the C Data Interface in both directions
 * (Java's exporter and importer running on natives that libstrom_jni provides), panics and
 * handle checks. Runs with the unit tests; the library is already in target/classes.
 */
class NativeBridgeTest {
  private static final int ROWS = 3;

  @Test
  void everyTypeCrossesBothWaysWithoutCopyAndIsReleased() {
    try (BufferAllocator allocator = new RootAllocator()) {
      try (VectorSchemaRoot in = sample(allocator);
          VectorSchemaRoot out = roundTrip(allocator, in)) {
        assertEquals(in.getSchema(), out.getSchema());
        // Value by value, incl. nulls and the nested children (VectorSchemaRoot.equals).
        assertTrue(in.equals(out), () -> "differs: " + out.contentToTSVString());
        assertEquals(ROWS, out.getRowCount());
        // Rust imported Java's buffers and exported them back: the same memory.
        assertEquals(
            in.getVector("big").getDataBuffer().memoryAddress(),
            out.getVector("big").getDataBuffer().memoryAddress(),
            "column data was copied");
      }
      // Every buffer went back to the allocator: Rust released what it imported (through
      // Java's PrivateData.close, called by our release callback) and Java released what Rust
      // exported. The RootAllocator's close would also fail on a leak.
      assertEquals(0, allocator.getAllocatedMemory());
    }
  }

  @Test
  void everyTypeImportsColumnByColumnIntoAHeldSchemaAndIsReleased() {
    // The scanner's path: the schema crosses with the first batch only, later batches are
    // imported column by column into vectors of the schema held from then.
    try (BufferAllocator allocator = new RootAllocator();
        VectorSchemaRoot in = sample(allocator)) {
      Schema held;
      try (CData.Incoming first = roundTripInto(allocator, in)) {
        assertTrue(first.hasSchema());
        held = first.importSchema();
      }
      assertEquals(in.getSchema(), held);
      for (int batch = 0; batch < 3; batch++) {
        try (CData.Incoming next = roundTripInto(allocator, in);
            VectorSchemaRoot out = next.importRoot(held)) {
          assertTrue(in.equals(out), () -> "differs: " + out.contentToTSVString());
          assertEquals(ROWS, out.getRowCount());
          assertEquals(
              in.getVector("big").getDataBuffer().memoryAddress(),
              out.getVector("big").getDataBuffer().memoryAddress(),
              "column data was copied");
        }
      }
      try (CData.Incoming narrower = roundTripInto(allocator, in)) {
        Schema fewer = new Schema(held.getFields().subList(0, 2));
        IllegalStateException e =
            assertThrows(IllegalStateException.class, () -> narrower.importRoot(fewer));
        assertTrue(e.getMessage().contains("does not fit its schema"), e.getMessage());
      }
      in.close();
      // The batch's exported columns and the parent struct were all released, also after
      // the refused import.
      assertEquals(0, allocator.getAllocatedMemory());
    }
  }

  @Test
  void aClosedBatchsRootTakesTheNextBatchWithoutStaleValuesAndEverythingIsReleased() {
    // The scanner's reuse: a closed batch's root (buffers released, vectors kept) receives the
    // next batch. Batches of 3 and 6 rows alternate, so a validity bit, an offset, a value
    // count or a list or struct child left from the batch before shows.
    BufferAllocator allocator = new RootAllocator();
    VectorSchemaRoot full = sample(allocator, 6);
    VectorSchemaRoot tail = sample(allocator, 3);
    Schema held;
    try (CData.Incoming first = roundTripInto(allocator, full)) {
      held = first.importSchema();
    }
    VectorSchemaRoot reused = null;
    for (VectorSchemaRoot in : List.of(full, tail, full, tail, tail, full)) {
      try (CData.Incoming next = roundTripInto(allocator, in)) {
        VectorSchemaRoot out = next.importRoot(held, reused);
        if (reused != null) {
          assertSame(reused, out, "the closed batch's vectors were reused");
        }
        assertTrue(in.equals(out), () -> "differs from the batch sent (" + in.getRowCount() + " rows): " + in.contentToTSVString() + " got " + out.getRowCount() + " rows: " + out.contentToTSVString());
        assertEquals(in.getRowCount(), out.getRowCount());
        out.clear();
        reused = out;
      }
    }
    reused.close();
    tail.close();
    full.close();
    assertEquals(0, allocator.getAllocatedMemory(), "every imported buffer was released");
    allocator.close();
  }

  /** {@code in} exported to Rust and back into fresh structs (the schema filled too). */
  private static CData.Incoming roundTripInto(BufferAllocator allocator, VectorSchemaRoot in) {
    CData.Incoming incoming = new CData.Incoming(allocator);
    CData.exportTo(
        allocator,
        in,
        (array, schema) -> {
          StromNative.roundTripForTesting(
              array, schema, incoming.arrayAddress(), incoming.schemaAddress());
          return null;
        });
    return incoming;
  }

  @Test
  void aPanicBecomesAStromExceptionAndTheLibraryKeepsWorking() {
    StromException panic =
        assertThrows(StromException.class, () -> StromNative.panicForTesting("boom 42"));
    assertEquals("INTERNAL", panic.status());
    assertTrue(panic.nodeMessage().contains("boom 42"), panic.getMessage());
    try (BufferAllocator allocator = new RootAllocator();
        VectorSchemaRoot in = sample(allocator);
        VectorSchemaRoot out = roundTrip(allocator, in)) {
      assertEquals(ROWS, out.getRowCount());
    }
  }

  @Test
  void handlesThatNeverExistedOrHaveTheWrongKindAreIllegalState() {
    IllegalStateException zero =
        assertThrows(IllegalStateException.class, () -> StromNative.flush(0));
    assertTrue(zero.getMessage().contains("closed"), zero.getMessage());
    IllegalStateException wrongKind =
        assertThrows(IllegalStateException.class, () -> StromNative.flush(Long.MAX_VALUE));
    assertTrue(wrongKind.getMessage().contains("not a writer"), wrongKind.getMessage());
    assertThrows(IllegalStateException.class, () -> StromNative.closeScanner(12345));
  }

  @Test
  void unreachableNodeIsUnavailableAndRetriable() throws Exception {
    int freePort;
    try (java.net.ServerSocket socket = new java.net.ServerSocket(0)) {
      freePort = socket.getLocalPort();
    }
    StromUnavailableException e =
        assertThrows(
            StromUnavailableException.class,
            () -> StromConnection.connect("grpc://127.0.0.1:" + freePort));
    assertTrue(e.isRetriable());
    assertTrue(e.nodeMessage().contains(String.valueOf(freePort)), e.getMessage());
  }

  @Test
  void badArgumentsAreInvalidArgumentNotACrash() {
    assertThrows(
        StromInvalidArgumentException.class, () -> StromNative.roundTripForTesting(0, 0, 0, 0));
    assertThrows(StromInvalidArgumentException.class, () -> StromNative.connect(null));
  }

  private static VectorSchemaRoot roundTrip(BufferAllocator allocator, VectorSchemaRoot in) {
    try (ArrowArray inArray = ArrowArray.allocateNew(allocator);
        ArrowSchema inSchema = ArrowSchema.allocateNew(allocator);
        ArrowArray outArray = ArrowArray.allocateNew(allocator);
        ArrowSchema outSchema = ArrowSchema.allocateNew(allocator)) {
      Data.exportVectorSchemaRoot(allocator, in, null, inArray, inSchema);
      try {
        StromNative.roundTripForTesting(
            inArray.memoryAddress(),
            inSchema.memoryAddress(),
            outArray.memoryAddress(),
            outSchema.memoryAddress());
      } finally {
        inSchema.release();
        inArray.release();
      }
      return Data.importVectorSchemaRoot(allocator, outArray, outSchema, null);
    }
  }

  private static Field field(String name, ArrowType type) {
    return new Field(name, FieldType.nullable(type), null);
  }

  /** Three rows of scalar, temporal, decimal, list and struct columns; row 1 is all nulls. */
  private static VectorSchemaRoot sample(BufferAllocator allocator) {
    return sample(allocator, ROWS);
  }

  /** {@code rows} rows: values in the even ones, nulls in the odd ones (lists at 0 and 2). */
  private static VectorSchemaRoot sample(BufferAllocator allocator, int rows) {
    List<Field> fields =
        List.of(
            field("tiny", new ArrowType.Int(8, true)),
            field("small", new ArrowType.Int(16, true)),
            field("int", new ArrowType.Int(32, true)),
            field("big", new ArrowType.Int(64, true)),
            field("float", new ArrowType.FloatingPoint(org.apache.arrow.vector.types.FloatingPointPrecision.SINGLE)),
            field("double", new ArrowType.FloatingPoint(org.apache.arrow.vector.types.FloatingPointPrecision.DOUBLE)),
            field("bool", ArrowType.Bool.INSTANCE),
            field("text", ArrowType.Utf8.INSTANCE),
            field("bytes", ArrowType.Binary.INSTANCE),
            field("decimal", new ArrowType.Decimal(10, 2, 128)),
            field("date", new ArrowType.Date(org.apache.arrow.vector.types.DateUnit.DAY)),
            field(
                "ts",
                new ArrowType.Timestamp(org.apache.arrow.vector.types.TimeUnit.MICROSECOND, "UTC")),
            new Field(
                "list",
                FieldType.nullable(ArrowType.List.INSTANCE),
                List.of(field("item", new ArrowType.Int(32, true)))),
            new Field(
                "struct",
                FieldType.nullable(ArrowType.Struct.INSTANCE),
                List.of(field("x", new ArrowType.Int(32, true)), field("y", ArrowType.Utf8.INSTANCE))));
    VectorSchemaRoot root =
        VectorSchemaRoot.create(new org.apache.arrow.vector.types.pojo.Schema(fields), allocator);
    root.allocateNew();
    for (int row = 0; row < rows; row += 2) {
      int v = row + 1;
      ((TinyIntVector) root.getVector("tiny")).setSafe(row, v);
      ((SmallIntVector) root.getVector("small")).setSafe(row, v * 100);
      ((IntVector) root.getVector("int")).setSafe(row, v * 10_000);
      ((BigIntVector) root.getVector("big")).setSafe(row, v * 10_000_000_000L);
      ((Float4Vector) root.getVector("float")).setSafe(row, v * 0.5f);
      ((Float8Vector) root.getVector("double")).setSafe(row, v * 0.25);
      ((BitVector) root.getVector("bool")).setSafe(row, v % 2);
      ((VarCharVector) root.getVector("text")).setSafe(row, new Text("text-" + v + "-ü"));
      ((VarBinaryVector) root.getVector("bytes"))
          .setSafe(row, ("b" + v).getBytes(StandardCharsets.UTF_8));
      ((DecimalVector) root.getVector("decimal")).setSafe(row, new BigDecimal(v + ".25"));
      ((DateDayVector) root.getVector("date")).setSafe(row, 19_000 + v);
      ((TimeStampMicroTZVector) root.getVector("ts")).setSafe(row, 1_700_000_000_000_000L + v);
      StructVector struct = (StructVector) root.getVector("struct");
      ((IntVector) struct.getChild("x")).setSafe(row, v);
      ((VarCharVector) struct.getChild("y")).setSafe(row, new Text("y" + v));
      struct.setIndexDefined(row);
    }
    for (int row = 1; row < rows; row += 2) {
      for (FieldVector vector : root.getFieldVectors()) {
        if (!(vector instanceof ListVector) && !(vector instanceof StructVector)) {
          vector.setNull(row);
        }
      }
      ((StructVector) root.getVector("struct")).setNull(row);
    }
    ListVector list = (ListVector) root.getVector("list");
    UnionListWriter writer = list.getWriter();
    writer.setPosition(0);
    writer.startList();
    writer.integer().writeInt(1);
    writer.integer().writeInt(2);
    writer.endList();
    writer.setPosition(2);
    writer.startList();
    writer.integer().writeInt(3);
    writer.endList();
    list.setValueCount(rows);
    root.setRowCount(rows);
    return root;
  }
}
