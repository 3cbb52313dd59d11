package io.strom.flink.source;

import io.strom.flink.client.ScanBatch;
import java.util.Set;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.flink.connector.base.source.reader.RecordsWithSplitIds;
import org.apache.flink.table.data.columnar.ColumnarRowData;
import org.apache.flink.table.data.columnar.vector.VectorizedColumnBatch;
import org.apache.flink.types.RowKind;

/**
 * One fetch's worth of a split: the rows of one Arrow batch as a {@link ColumnarRowData}
 * moved over the imported vectors (no row is materialized here), optionally followed by the
 * end of the split's snapshot; or only the ids of splits that finished. The Arrow batch is
 * released in {@link #recycle()}, once Flink emitted every row of it.
 */
final class ScanRecords implements RecordsWithSplitIds<StromRecord> {
  private final String splitId;
  private final ScanBatch batch;
  private final StromRecord.Kind rowKind;
  private final ColumnarRowData row;
  private final VarCharVector changeTypes;
  private final int rowCount;
  private int position;
  private long snapshotEndOffset = -1;
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
      java.util.List<FieldVector> vectors = batch.root().getFieldVectors();
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

  /** Rows of one batch of {@code splitId}, the first {@code skip} left out (already emitted). */
  static ScanRecords rows(String splitId, ScanBatch batch, StromRecord.Kind kind, int producedFields, int skip) {
    return new ScanRecords(splitId, batch, kind, producedFields, skip, Set.of());
  }

  /** Only the end of a split's snapshot. */
  static ScanRecords snapshotEnd(String splitId, long logOffset) {
    ScanRecords records = new ScanRecords(splitId, null, null, 0, 0, Set.of());
    records.snapshotEndOffset = logOffset;
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
      record.offset = batch.baseOffset() + rowId;
      return record;
    }
    if (singleRow != null) {
      record.kind = StromRecord.Kind.LOG_ROW;
      record.row = singleRow;
      record.offset = 0;
      singleRow = null;
      return record;
    }
    if (snapshotEndOffset >= 0) {
      record.kind = StromRecord.Kind.SNAPSHOT_END;
      record.row = null;
      record.offset = snapshotEndOffset;
      snapshotEndOffset = -1;
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
  public void recycle() {
    if (batch != null) {
      batch.close();
    }
  }
}
