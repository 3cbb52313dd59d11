package io.strom.flink.source;

import org.apache.flink.api.connector.source.SourceOutput;
import org.apache.flink.connector.base.source.reader.RecordEmitter;
import org.apache.flink.table.data.RowData;

/**
 * Emits a row and advances its split's state in the same step, so the state a checkpoint
 * takes always names the next row not yet emitted.
 */
final class StromRecordEmitter implements RecordEmitter<StromRecord, RowData, StromSplitState> {
  @Override
  public void emitRecord(StromRecord record, SourceOutput<RowData> output, StromSplitState state) {
    switch (record.kind) {
      case LOG_ROW -> {
        output.collect(record.row);
        state.logRowEmitted(record.offset);
      }
      case SNAPSHOT_ROW -> {
        output.collect(record.row);
        state.snapshotRowEmitted(record.key, record.offset);
      }
      case CATCH_UP_ROW -> {
        output.collect(record.row);
        state.catchUpRowEmitted(record.offset, record.endOffset, record.lastOfMessage);
      }
      case CATCH_UP_END -> state.catchUpFinished(record.offset);
      case SNAPSHOT_END -> state.snapshotFinished(record.offset);
    }
  }
}
