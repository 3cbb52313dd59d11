package io.strom.flink.sink;

import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.BaseFixedWidthVector;
import org.apache.arrow.vector.BaseVariableWidthVector;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.BitVector;
import org.apache.arrow.vector.DateDayVector;
import org.apache.arrow.vector.DecimalVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.FixedSizeBinaryVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.SmallIntVector;
import org.apache.arrow.vector.TimeMicroVector;
import org.apache.arrow.vector.TimeMilliVector;
import org.apache.arrow.vector.TimeNanoVector;
import org.apache.arrow.vector.TimeSecVector;
import org.apache.arrow.vector.TimeStampVector;
import org.apache.arrow.vector.TinyIntVector;
import org.apache.arrow.vector.VarBinaryVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.complex.MapVector;
import org.apache.arrow.vector.complex.StructVector;
import org.apache.arrow.vector.types.DateUnit;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.TimeUnit;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.DecimalData;
import org.apache.flink.table.data.MapData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.types.logical.ArrayType;
import org.apache.flink.table.types.logical.BinaryType;
import org.apache.flink.table.types.logical.DecimalType;
import org.apache.flink.table.types.logical.LocalZonedTimestampType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.MapType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.TimeType;
import org.apache.flink.table.types.logical.TimestampType;

/**
 * Appends Flink {@link RowData} rows (selected columns) to one reusable Arrow {@link
 * VectorSchemaRoot}, column by column. The Arrow types follow the Flink types the way the node
 * maps SQL types (docs/protocol.md, create_table); the node converts compatible types safely
 * when a declared Flink table differs from the stored one.
 */
public final class ArrowRowWriter implements AutoCloseable {
  private final VectorSchemaRoot root;
  private final int[] positions;
  private final RowData.FieldGetter[] getters;
  private final ValueWriter[] writers;
  private int rows;

  /** Writes the columns at {@code positions} of rows of {@code rowType}. */
  public ArrowRowWriter(RowType rowType, int[] positions, BufferAllocator allocator) {
    List<Field> fields = new ArrayList<>();
    this.positions = positions;
    this.getters = new RowData.FieldGetter[positions.length];
    this.writers = new ValueWriter[positions.length];
    for (int i = 0; i < positions.length; i++) {
      LogicalType type = rowType.getTypeAt(positions[i]);
      fields.add(arrowField(rowType.getFieldNames().get(positions[i]), type));
      getters[i] = RowData.createFieldGetter(type, positions[i]);
      writers[i] = writerFor(type);
    }
    this.root = VectorSchemaRoot.create(new Schema(fields), allocator);
    root.allocateNew();
  }

  public void write(RowData row) {
    for (int i = 0; i < positions.length; i++) {
      writeValue(writers[i], root.getVector(i), rows, getters[i].getFieldOrNull(row));
    }
    rows++;
  }

  public int rows() {
    return rows;
  }

  /** The buffered rows as a batch; valid until {@link #reset()}. */
  public VectorSchemaRoot batch() {
    root.setRowCount(rows);
    return root;
  }

  public void reset() {
    root.clear();
    root.allocateNew();
    rows = 0;
  }

  @Override
  public void close() {
    root.close();
  }

  // --- Flink type -> Arrow field ---------------------------------------------------------

  static Field arrowField(String name, LogicalType type) {
    List<Field> children = new ArrayList<>();
    switch (type.getTypeRoot()) {
      case ARRAY:
        children.add(arrowField("element", ((ArrayType) type).getElementType()));
        break;
      case MAP:
        MapType map = (MapType) type;
        Field key = arrowField(MapVector.KEY_NAME, map.getKeyType().copy(false));
        Field value = arrowField(MapVector.VALUE_NAME, map.getValueType());
        children.add(new Field(MapVector.DATA_VECTOR_NAME,
            FieldType.notNullable(ArrowType.Struct.INSTANCE), List.of(key, value)));
        break;
      case ROW:
        for (RowType.RowField field : ((RowType) type).getFields()) {
          children.add(arrowField(field.getName(), field.getType()));
        }
        break;
      default:
        break;
    }
    return new Field(name, new FieldType(type.isNullable(), arrowType(type), null), children);
  }

  private static ArrowType arrowType(LogicalType type) {
    switch (type.getTypeRoot()) {
      case BOOLEAN: return ArrowType.Bool.INSTANCE;
      case TINYINT: return new ArrowType.Int(8, true);
      case SMALLINT: return new ArrowType.Int(16, true);
      case INTEGER: return new ArrowType.Int(32, true);
      case BIGINT: return new ArrowType.Int(64, true);
      case FLOAT: return new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE);
      case DOUBLE: return new ArrowType.FloatingPoint(FloatingPointPrecision.DOUBLE);
      case DECIMAL:
        DecimalType decimal = (DecimalType) type;
        return new ArrowType.Decimal(decimal.getPrecision(), decimal.getScale(), 128);
      case CHAR:
      case VARCHAR: return ArrowType.Utf8.INSTANCE;
      case BINARY: return new ArrowType.FixedSizeBinary(((BinaryType) type).getLength());
      case VARBINARY: return ArrowType.Binary.INSTANCE;
      case DATE: return new ArrowType.Date(DateUnit.DAY);
      case TIME_WITHOUT_TIME_ZONE:
        TimeUnit timeUnit = unit(((TimeType) type).getPrecision());
        return new ArrowType.Time(timeUnit, timeUnit == TimeUnit.SECOND || timeUnit == TimeUnit.MILLISECOND ? 32 : 64);
      case TIMESTAMP_WITHOUT_TIME_ZONE:
        return new ArrowType.Timestamp(unit(((TimestampType) type).getPrecision()), null);
      case TIMESTAMP_WITH_LOCAL_TIME_ZONE:
        return new ArrowType.Timestamp(unit(((LocalZonedTimestampType) type).getPrecision()), "UTC");
      case ARRAY: return ArrowType.List.INSTANCE;
      case MAP: return new ArrowType.Map(false);
      case ROW: return ArrowType.Struct.INSTANCE;
      default:
        throw new ValidationException("Strom cannot store " + type.asSummaryString());
    }
  }

  /** The node's units: precision 0 → s, 1-3 → ms, 4-6 → µs, 7-9 → ns. */
  private static TimeUnit unit(int precision) {
    return precision == 0 ? TimeUnit.SECOND
        : precision <= 3 ? TimeUnit.MILLISECOND
        : precision <= 6 ? TimeUnit.MICROSECOND
        : TimeUnit.NANOSECOND;
  }

  // --- Flink internal value -> Arrow vector ----------------------------------------------

  /** Writes one non-null Flink internal value (the classes of {@link RowData}'s getters). */
  @FunctionalInterface
  private interface ValueWriter {
    void write(FieldVector vector, int index, Object value);
  }

  private static void writeValue(ValueWriter writer, FieldVector vector, int index, Object value) {
    if (value == null) {
      setNull(vector, index);
    } else {
      writer.write(vector, index, value);
    }
  }

  private static void setNull(FieldVector vector, int index) {
    if (vector instanceof BaseFixedWidthVector) {
      ((BaseFixedWidthVector) vector).setNull(index);
    } else if (vector instanceof BaseVariableWidthVector) {
      ((BaseVariableWidthVector) vector).setNull(index);
    } else if (vector instanceof ListVector) {
      ((ListVector) vector).setNull(index);
    } else if (vector instanceof StructVector) {
      ((StructVector) vector).setNull(index);
    } else {
      throw new IllegalStateException("no null for " + vector.getClass().getSimpleName());
    }
  }

  private static ValueWriter writerFor(LogicalType type) {
    switch (type.getTypeRoot()) {
      case BOOLEAN: return (v, i, x) -> ((BitVector) v).setSafe(i, (Boolean) x ? 1 : 0);
      case TINYINT: return (v, i, x) -> ((TinyIntVector) v).setSafe(i, (Byte) x);
      case SMALLINT: return (v, i, x) -> ((SmallIntVector) v).setSafe(i, (Short) x);
      case INTEGER:
      case DATE: // days since the epoch in both
        return (v, i, x) -> {
          if (v instanceof DateDayVector) {
            ((DateDayVector) v).setSafe(i, (Integer) x);
          } else {
            ((IntVector) v).setSafe(i, (Integer) x);
          }
        };
      case BIGINT: return (v, i, x) -> ((BigIntVector) v).setSafe(i, (Long) x);
      case FLOAT: return (v, i, x) -> ((Float4Vector) v).setSafe(i, (Float) x);
      case DOUBLE: return (v, i, x) -> ((Float8Vector) v).setSafe(i, (Double) x);
      case DECIMAL: return (v, i, x) -> ((DecimalVector) v).setSafe(i, ((DecimalData) x).toBigDecimal());
      case CHAR:
      case VARCHAR: return (v, i, x) -> ((VarCharVector) v).setSafe(i, ((StringData) x).toBytes());
      case BINARY: return (v, i, x) -> ((FixedSizeBinaryVector) v).setSafe(i, (byte[]) x);
      case VARBINARY: return (v, i, x) -> ((VarBinaryVector) v).setSafe(i, (byte[]) x);
      case TIME_WITHOUT_TIME_ZONE: return ArrowRowWriter::writeTime;
      case TIMESTAMP_WITHOUT_TIME_ZONE:
      case TIMESTAMP_WITH_LOCAL_TIME_ZONE: return ArrowRowWriter::writeTimestamp;
      case ARRAY: return arrayWriter(((ArrayType) type).getElementType());
      case MAP: return mapWriter((MapType) type);
      case ROW: return rowWriter((RowType) type);
      default:
        throw new ValidationException("Strom cannot store " + type.asSummaryString());
    }
  }

  /** Flink keeps TIME as milliseconds of the day (an int), whatever the declared precision. */
  private static void writeTime(FieldVector vector, int index, Object value) {
    int millis = (Integer) value;
    if (vector instanceof TimeSecVector) {
      ((TimeSecVector) vector).setSafe(index, millis / 1000);
    } else if (vector instanceof TimeMilliVector) {
      ((TimeMilliVector) vector).setSafe(index, millis);
    } else if (vector instanceof TimeMicroVector) {
      ((TimeMicroVector) vector).setSafe(index, millis * 1000L);
    } else {
      ((TimeNanoVector) vector).setSafe(index, millis * 1_000_000L);
    }
  }

  private static void writeTimestamp(FieldVector vector, int index, Object value) {
    TimestampData ts = (TimestampData) value;
    long millis = ts.getMillisecond();
    TimeUnit unit = ((ArrowType.Timestamp) vector.getField().getType()).getUnit();
    long stored;
    switch (unit) {
      case SECOND: stored = Math.floorDiv(millis, 1000); break;
      case MILLISECOND: stored = millis; break;
      case MICROSECOND: stored = millis * 1000 + ts.getNanoOfMillisecond() / 1000; break;
      default: stored = millis * 1_000_000 + ts.getNanoOfMillisecond(); break;
    }
    ((TimeStampVector) vector).setSafe(index, stored);
  }

  private static ValueWriter arrayWriter(LogicalType elementType) {
    ArrayData.ElementGetter getter = ArrayData.createElementGetter(elementType);
    ValueWriter element = writerFor(elementType);
    return (v, i, x) -> {
      ListVector list = (ListVector) v;
      ArrayData array = (ArrayData) x;
      int start = list.startNewValue(i);
      FieldVector data = list.getDataVector();
      for (int k = 0; k < array.size(); k++) {
        writeValue(element, data, start + k, getter.getElementOrNull(array, k));
      }
      list.endValue(i, array.size());
    };
  }

  private static ValueWriter mapWriter(MapType type) {
    ArrayData.ElementGetter keyGetter = ArrayData.createElementGetter(type.getKeyType());
    ArrayData.ElementGetter valueGetter = ArrayData.createElementGetter(type.getValueType());
    ValueWriter keyWriter = writerFor(type.getKeyType());
    ValueWriter valueWriter = writerFor(type.getValueType());
    return (v, i, x) -> {
      MapVector map = (MapVector) v;
      MapData data = (MapData) x;
      ArrayData keys = data.keyArray();
      ArrayData values = data.valueArray();
      int start = map.startNewValue(i);
      StructVector entries = (StructVector) map.getDataVector();
      FieldVector keyVector = (FieldVector) entries.getChildByOrdinal(0);
      FieldVector valueVector = (FieldVector) entries.getChildByOrdinal(1);
      for (int k = 0; k < data.size(); k++) {
        entries.setIndexDefined(start + k);
        Object key = keyGetter.getElementOrNull(keys, k);
        if (key == null) {
          throw new IllegalArgumentException("Strom map keys cannot be null");
        }
        keyWriter.write(keyVector, start + k, key);
        writeValue(valueWriter, valueVector, start + k, valueGetter.getElementOrNull(values, k));
      }
      map.endValue(i, data.size());
    };
  }

  private static ValueWriter rowWriter(RowType type) {
    int arity = type.getFieldCount();
    RowData.FieldGetter[] getters = new RowData.FieldGetter[arity];
    ValueWriter[] writers = new ValueWriter[arity];
    for (int f = 0; f < arity; f++) {
      getters[f] = RowData.createFieldGetter(type.getTypeAt(f), f);
      writers[f] = writerFor(type.getTypeAt(f));
    }
    return (v, i, x) -> {
      StructVector struct = (StructVector) v;
      RowData row = (RowData) x;
      struct.setIndexDefined(i);
      for (int f = 0; f < arity; f++) {
        writeValue(writers[f], (FieldVector) struct.getChildByOrdinal(f), i, getters[f].getFieldOrNull(row));
      }
    };
  }
}
