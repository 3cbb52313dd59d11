package io.strom.flink.source;

import io.strom.flink.client.ScanBatch;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.flink.connector.base.source.reader.RecordsWithSplitIds;
import org.apache.flink.table.data.columnar.ColumnarRowData;
import org.apache.flink.table.data.columnar.vector.VectorizedColumnBatch;
import org.apache.flink.types.RowKind;

/**
 * One fetch's worth of a split: the rows of one Arrow batch as a {@link ColumnarRowData}
 * moved over the imported vectors (no row is materialized here), or the end of a phase of the
 * split (its snapshot, a resumed snapshot's catch-up); or only the ids of splits that
 * finished. The Arrow batch is released in {@link #recycle()}, once Flink emitted every row of
 * it.
 *
 * <p>Snapshot rows name their primary key to the split state through {@link #keyJson()}: the
 * key of the last row handed out, read from the vectors only when a checkpoint asks for it, and
 * kept as JSON when the batch is released (a checkpoint may come after that).
 */
final class ScanRecords implements RecordsWithSplitIds<StromRecord>, StromSplitState.KeySource {
  private final String splitId;
  private final ScanBatch batch;
  private final StromRecord.Kind rowKind;
  private final ColumnarRowData row;
  private final VarCharVector changeTypes;
  private final int rowCount;
  private int position;
  /** The primary-key vectors of a snapshot batch (null otherwise). */
  private List<FieldVector> keyVectors;
  private int lastReturned = -1;
  private String releasedKey;
  private StromRecord.Kind endKind;
  private long endOffset = -1;
  private org.apache.flink.table.data.RowData singleRow;
  private final Set<String> finished;
  private final StromRecord record = new StromRecord();
  private boolean splitReturned;

  private ScanRecords(
      String splitId, ScanBatch batch, StromRecord.Kind rowKind, int producedFields, int skip, Set<String> finished) {
    this.splitId = splitId;
    this.batch = batch;
    this.rowKind = rowKind;
    this.finished = finished;
    if (batch != null) {
      List<FieldVector> vectors = batch.root().getFieldVectors();
      VectorizedColumnBatch columns = io.strom.flink.source.arrow.ArrowColumnVectors.batch(vectors.subList(0, producedFields));
      this.row = new ColumnarRowData(columns);
      FieldVector last = vectors.isEmpty() ? null : vectors.get(vectors.size() - 1);
      this.changeTypes =
          last instanceof VarCharVector v && "_change_type".equals(last.getName()) ? v : null;
      this.rowCount = batch.root().getRowCount();
      this.position = Math.min(skip, rowCount);
    } else {
      this.row = null;
      this.changeTypes = null;
      this.rowCount = 0;
    }
  }

  /** Log (changelog) rows of one batch of {@code splitId}, the first {@code skip} left out (already emitted). */
  static ScanRecords logRows(String splitId, ScanBatch batch, int producedFields, int skip) {
    return new ScanRecords(splitId, batch, StromRecord.Kind.LOG_ROW, producedFields, skip, Set.of());
  }

  /**
   * Snapshot rows of one batch, the first {@code skip} left out; {@code keyColumns} are the
   * primary-key columns (in declared key order) among the batch's columns.
   */
  static ScanRecords snapshotRows(String splitId, ScanBatch batch, int producedFields, int skip, List<String> keyColumns) {
    ScanRecords records = new ScanRecords(splitId, batch, StromRecord.Kind.SNAPSHOT_ROW, producedFields, skip, Set.of());
    records.keyVectors = new ArrayList<>(keyColumns.size());
    for (String column : keyColumns) {
      FieldVector vector = batch.root().getVector(column);
      if (vector == null) {
        throw new IllegalStateException("the snapshot batch lacks primary-key column " + column);
      }
      records.keyVectors.add(vector);
    }
    return records;
  }

  /** A resumed snapshot's catch-up: changelog rows of one (filtered) message, the first {@code skip} left out. */
  static ScanRecords catchUpRows(String splitId, ScanBatch batch, int producedFields, int skip) {
    return new ScanRecords(splitId, batch, StromRecord.Kind.CATCH_UP_ROW, producedFields, skip, Set.of());
  }

  /** Only the end of a phase: {@link StromRecord.Kind#SNAPSHOT_END} or {@link StromRecord.Kind#CATCH_UP_END}. */
  static ScanRecords end(String splitId, StromRecord.Kind kind, long offset) {
    ScanRecords records = new ScanRecords(splitId, null, null, 0, 0, Set.of());
    records.endKind = kind;
    records.endOffset = offset;
    return records;
  }

  /** One row that is not from a scan (a count answered from offsets) at offset 0. */
  static ScanRecords single(String splitId, org.apache.flink.table.data.RowData row) {
    ScanRecords records = new ScanRecords(splitId, null, null, 0, 0, Set.of());
    records.singleRow = row;
    return records;
  }

  static ScanRecords finished(Set<String> splitIds) {
    return new ScanRecords(null, null, null, 0, 0, splitIds);
  }

  static ScanRecords nothing() {
    return finished(Set.of());
  }

  int remainingRows() {
    return rowCount - position;
  }

  @Override
  public String nextSplit() {
    if (splitReturned || splitId == null) {
      return null;
    }
    splitReturned = true;
    return splitId;
  }

  @Override
  public StromRecord nextRecordFromSplit() {
    if (position < rowCount) {
      int rowId = position++;
      row.setRowId(rowId);
      row.setRowKind(changeTypes == null ? RowKind.INSERT : kindAt(rowId));
      record.kind = rowKind;
      record.row = row;
      switch (rowKind) {
        case SNAPSHOT_ROW -> {
          lastReturned = rowId;
          record.offset = batch.logOffset();
          record.key = this;
        }
        case CATCH_UP_ROW -> {
          record.offset = batch.baseOffset();
          record.endOffset = batch.endOffset();
          record.lastOfMessage = position == rowCount;
        }
        default -> record.offset = batch.baseOffset() + rowId;
      }
      return record;
    }
    if (singleRow != null) {
      record.kind = StromRecord.Kind.LOG_ROW;
      record.row = singleRow;
      record.offset = 0;
      singleRow = null;
      return record;
    }
    if (endKind != null) {
      record.kind = endKind;
      record.row = null;
      record.offset = endOffset;
      endKind = null;
      return record;
    }
    return null;
  }

  /** {@code +I}, {@code -U}, {@code +U}, {@code -D}, read from the buffer without a String. */
  private RowKind kindAt(int rowId) {
    long start = changeTypes.getStartOffset(rowId);
    byte sign = changeTypes.getDataBuffer().getByte(start);
    byte letter = changeTypes.getDataBuffer().getByte(start + 1);
    return switch (letter) {
      case 'I' -> RowKind.INSERT;
      case 'D' -> RowKind.DELETE;
      case 'U' -> sign == '-' ? RowKind.UPDATE_BEFORE : RowKind.UPDATE_AFTER;
      default -> throw new IllegalStateException("unknown _change_type at row " + rowId + ": " + changeTypes.getObject(rowId));
    };
  }

  @Override
  public Set<String> finishedSplits() {
    return finished;
  }

  @Override
  public String keyJson() {
    if (releasedKey != null) {
      return releasedKey;
    }
    return PrimaryKeyJson.of(keyVectors, lastReturned);
  }

  @Override
  public void recycle() {
    if (batch != null) {
      if (keyVectors != null && lastReturned >= 0) {
        releasedKey = PrimaryKeyJson.of(keyVectors, lastReturned); // the state may still ask
        keyVectors = null;
      }
      batch.close();
    }
  }
}
