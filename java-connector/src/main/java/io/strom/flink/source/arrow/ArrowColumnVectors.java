package io.strom.flink.source.arrow;

import java.math.BigDecimal;
import java.util.List;
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
import org.apache.arrow.vector.ValueVector;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.complex.MapVector;
import org.apache.arrow.vector.complex.StructVector;
import org.apache.arrow.vector.types.TimeUnit;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.DecimalData;
import org.apache.flink.table.data.MapData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.data.columnar.ColumnarArrayData;
import org.apache.flink.table.data.columnar.ColumnarMapData;
import org.apache.flink.table.data.columnar.ColumnarRowData;
import org.apache.flink.table.data.columnar.vector.ArrayColumnVector;
import org.apache.flink.table.data.columnar.vector.BooleanColumnVector;
import org.apache.flink.table.data.columnar.vector.ByteColumnVector;
import org.apache.flink.table.data.columnar.vector.BytesColumnVector;
import org.apache.flink.table.data.columnar.vector.ColumnVector;
import org.apache.flink.table.data.columnar.vector.DecimalColumnVector;
import org.apache.flink.table.data.columnar.vector.DoubleColumnVector;
import org.apache.flink.table.data.columnar.vector.FloatColumnVector;
import org.apache.flink.table.data.columnar.vector.IntColumnVector;
import org.apache.flink.table.data.columnar.vector.LongColumnVector;
import org.apache.flink.table.data.columnar.vector.MapColumnVector;
import org.apache.flink.table.data.columnar.vector.RowColumnVector;
import org.apache.flink.table.data.columnar.vector.ShortColumnVector;
import org.apache.flink.table.data.columnar.vector.TimestampColumnVector;
import org.apache.flink.table.data.columnar.vector.VectorizedColumnBatch;

/**
 * Flink's columnar vector interfaces over the Arrow vectors a scan imported through the C Data
 * Interface: a {@code ColumnarRowData} reads each value straight from the Arrow buffers (off
 * heap, shared with the Rust client), so rows are never built field by field. What Flink's own
 * data classes force to copy is copied when a value is read: strings and binaries (Flink's
 * {@code StringData} needs a {@code byte[]}), decimals wider than 18 digits.
 *
 * <p>Arrow values Flink represents differently are converted on read: TIME of any unit to
 * Flink's milliseconds of the day, TIMESTAMP of any unit to {@code TimestampData}.
 */
public final class ArrowColumnVectors {
  private ArrowColumnVectors() {}

  /** A batch over the vectors, for {@code new ColumnarRowData(batch)} and {@code setRowId}. */
  public static VectorizedColumnBatch batch(List<FieldVector> vectors) {
    ColumnVector[] columns = new ColumnVector[vectors.size()];
    for (int i = 0; i < columns.length; i++) {
      columns[i] = of(vectors.get(i));
    }
    return new VectorizedColumnBatch(columns);
  }

  /** The Flink vector reading {@code vector}; an Arrow type Strom never sends is refused. */
  public static ColumnVector of(ValueVector vector) {
    // Order matters: MapVector is a ListVector.
    if (vector instanceof BitVector v) {
      return new BooleanVector(v);
    } else if (vector instanceof TinyIntVector v) {
      return new TinyIntColumn(v);
    } else if (vector instanceof SmallIntVector v) {
      return new SmallIntColumn(v);
    } else if (vector instanceof IntVector v) {
      return new IntColumn(v);
    } else if (vector instanceof DateDayVector v) {
      return new DateColumn(v);
    } else if (vector instanceof BigIntVector v) {
      return new BigIntColumn(v);
    } else if (vector instanceof Float4Vector v) {
      return new FloatColumn(v);
    } else if (vector instanceof Float8Vector v) {
      return new DoubleColumn(v);
    } else if (vector instanceof DecimalVector v) {
      return new DecimalColumn(v);
    } else if (vector instanceof BaseVariableWidthVector v) {
      return new VariableWidthColumn(v);
    } else if (vector instanceof FixedSizeBinaryVector v) {
      return new FixedWidthBinaryColumn(v);
    } else if (vector instanceof TimeSecVector
        || vector instanceof TimeMilliVector
        || vector instanceof TimeMicroVector
        || vector instanceof TimeNanoVector) {
      return new TimeColumn(vector);
    } else if (vector instanceof TimeStampVector v) {
      return new TimestampColumn(v);
    } else if (vector instanceof MapVector v) {
      return new MapColumn(v);
    } else if (vector instanceof ListVector v) {
      return new ArrayColumn(v);
    } else if (vector instanceof StructVector v) {
      return new RowColumn(v);
    }
    throw new UnsupportedOperationException(
        "Arrow vector " + vector.getClass().getSimpleName() + " (" + vector.getField() + ") cannot be read by the Strom source");
  }

  /** isNullAt for every adapter. */
  private abstract static class Column<V extends ValueVector> implements ColumnVector {
    final V vector;

    Column(V vector) {
      this.vector = vector;
    }

    @Override
    public boolean isNullAt(int i) {
      return vector.isNull(i);
    }
  }

  private static final class BooleanVector extends Column<BitVector> implements BooleanColumnVector {
    BooleanVector(BitVector v) {
      super(v);
    }

    @Override
    public boolean getBoolean(int i) {
      return vector.get(i) != 0;
    }
  }

  private static final class TinyIntColumn extends Column<TinyIntVector> implements ByteColumnVector {
    TinyIntColumn(TinyIntVector v) {
      super(v);
    }

    @Override
    public byte getByte(int i) {
      return vector.get(i);
    }
  }

  private static final class SmallIntColumn extends Column<SmallIntVector> implements ShortColumnVector {
    SmallIntColumn(SmallIntVector v) {
      super(v);
    }

    @Override
    public short getShort(int i) {
      return vector.get(i);
    }
  }

  private static final class IntColumn extends Column<IntVector> implements IntColumnVector {
    IntColumn(IntVector v) {
      super(v);
    }

    @Override
    public int getInt(int i) {
      return vector.get(i);
    }
  }

  /** Flink's DATE is days since the epoch, as Arrow's Date32. */
  private static final class DateColumn extends Column<DateDayVector> implements IntColumnVector {
    DateColumn(DateDayVector v) {
      super(v);
    }

    @Override
    public int getInt(int i) {
      return vector.get(i);
    }
  }

  private static final class BigIntColumn extends Column<BigIntVector> implements LongColumnVector {
    BigIntColumn(BigIntVector v) {
      super(v);
    }

    @Override
    public long getLong(int i) {
      return vector.get(i);
    }
  }

  private static final class FloatColumn extends Column<Float4Vector> implements FloatColumnVector {
    FloatColumn(Float4Vector v) {
      super(v);
    }

    @Override
    public float getFloat(int i) {
      return vector.get(i);
    }
  }

  private static final class DoubleColumn extends Column<Float8Vector> implements DoubleColumnVector {
    DoubleColumn(Float8Vector v) {
      super(v);
    }

    @Override
    public double getDouble(int i) {
      return vector.get(i);
    }
  }

  private static final class DecimalColumn extends Column<DecimalVector> implements DecimalColumnVector {
    DecimalColumn(DecimalVector v) {
      super(v);
    }

    @Override
    public DecimalData getDecimal(int i, int precision, int scale) {
      if (precision <= 18) {
        // Decimal128 little-endian: the low 8 bytes hold any unscaled value of <= 18 digits.
        long unscaled = vector.getDataBuffer().getLong((long) i * DecimalVector.TYPE_WIDTH);
        return DecimalData.fromUnscaledLong(unscaled, precision, scale);
      }
      BigDecimal value = vector.getObject(i);
      return DecimalData.fromBigDecimal(value, precision, scale);
    }
  }

  /** Utf8 and Binary: Flink's StringData and byte[] need their own copy of the bytes. */
  private static final class VariableWidthColumn extends Column<BaseVariableWidthVector> implements BytesColumnVector {
    VariableWidthColumn(BaseVariableWidthVector v) {
      super(v);
    }

    @Override
    public Bytes getBytes(int i) {
      int start = vector.getStartOffset(i);
      int length = vector.getValueLength(i);
      byte[] bytes = new byte[length];
      vector.getDataBuffer().getBytes(start, bytes, 0, length);
      return new Bytes(bytes, 0, length);
    }
  }

  private static final class FixedWidthBinaryColumn extends Column<FixedSizeBinaryVector> implements BytesColumnVector {
    FixedWidthBinaryColumn(FixedSizeBinaryVector v) {
      super(v);
    }

    @Override
    public Bytes getBytes(int i) {
      byte[] bytes = vector.get(i);
      return new Bytes(bytes, 0, bytes.length);
    }
  }

  /** Flink runs TIME as milliseconds of the day (an int) whatever the declared precision. */
  private static final class TimeColumn extends Column<ValueVector> implements IntColumnVector {
    private final TimeUnit unit;

    TimeColumn(ValueVector v) {
      super(v);
      this.unit = ((ArrowType.Time) v.getField().getType()).getUnit();
    }

    @Override
    public int getInt(int i) {
      return switch (unit) {
        case SECOND -> ((TimeSecVector) vector).get(i) * 1000;
        case MILLISECOND -> ((TimeMilliVector) vector).get(i);
        case MICROSECOND -> (int) (((TimeMicroVector) vector).get(i) / 1000);
        case NANOSECOND -> (int) (((TimeNanoVector) vector).get(i) / 1_000_000);
      };
    }
  }

  /** Both TIMESTAMP and TIMESTAMP_LTZ (Arrow's "UTC" zone): Flink's TimestampData is UTC-based. */
  private static final class TimestampColumn extends Column<TimeStampVector> implements TimestampColumnVector {
    private final TimeUnit unit;

    TimestampColumn(TimeStampVector v) {
      super(v);
      this.unit = ((ArrowType.Timestamp) v.getField().getType()).getUnit();
    }

    @Override
    public TimestampData getTimestamp(int i, int precision) {
      long raw = vector.get(i);
      return switch (unit) {
        case SECOND -> TimestampData.fromEpochMillis(raw * 1000);
        case MILLISECOND -> TimestampData.fromEpochMillis(raw);
        case MICROSECOND ->
            TimestampData.fromEpochMillis(
                Math.floorDiv(raw, 1000), (int) Math.floorMod(raw, 1000) * 1000);
        case NANOSECOND ->
            TimestampData.fromEpochMillis(
                Math.floorDiv(raw, 1_000_000), (int) Math.floorMod(raw, 1_000_000));
      };
    }
  }

  private static final class ArrayColumn extends Column<ListVector> implements ArrayColumnVector {
    private final ColumnVector elements;

    ArrayColumn(ListVector v) {
      super(v);
      this.elements = of(v.getDataVector());
    }

    @Override
    public ArrayData getArray(int i) {
      int start = vector.getElementStartIndex(i);
      return new ColumnarArrayData(elements, start, vector.getElementEndIndex(i) - start);
    }
  }

  /** Arrow's Map is a list of {key, value} structs. */
  private static final class MapColumn extends Column<MapVector> implements MapColumnVector {
    private final ColumnVector keys;
    private final ColumnVector values;

    MapColumn(MapVector v) {
      super(v);
      StructVector entries = (StructVector) v.getDataVector();
      this.keys = of(entries.getChildByOrdinal(0));
      this.values = of(entries.getChildByOrdinal(1));
    }

    @Override
    public MapData getMap(int i) {
      int start = vector.getElementStartIndex(i);
      return new ColumnarMapData(keys, values, start, vector.getElementEndIndex(i) - start);
    }
  }

  private static final class RowColumn extends Column<StructVector> implements RowColumnVector {
    private final VectorizedColumnBatch fields;

    RowColumn(StructVector v) {
      super(v);
      ColumnVector[] children = new ColumnVector[v.size()];
      for (int c = 0; c < children.length; c++) {
        children[c] = of(v.getChildByOrdinal(c));
      }
      this.fields = new VectorizedColumnBatch(children);
    }

    @Override
    public ColumnarRowData getRow(int i) {
      // A fresh row per call: callers may hold nested rows while reading another one.
      return new ColumnarRowData(fields, i);
    }
  }
}
