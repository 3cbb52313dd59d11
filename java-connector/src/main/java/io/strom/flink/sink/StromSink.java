package io.strom.flink.sink;

import io.strom.flink.connector.StromTableAddress;
import java.io.Serializable;
import java.util.List;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.types.logical.RowType;

/**
 * The Sink V2 of Strom tables: each subtask writes through its own in-process client ({@link
 * StromSinkWriter}). At-least-once: every checkpoint sends what is buffered and waits for the
 * node's acknowledgements (durable) before the barrier passes. Replays after a failure are
 * harmless for primary-key tables (upserts are idempotent) and duplicate rows of log tables.
 */
public final class StromSink implements Sink<RowData> {
  private static final long serialVersionUID = 1L;

  /** What a subtask writes, decided at planning time. */
  public static final class Plan implements Serializable {
    private static final long serialVersionUID = 1L;

    final StromTableAddress address;
    final RowType rowType;
    /** Columns sent by appends and upserts (all, or the partial-update targets incl. keys). */
    final int[] writePositions;
    /** Primary-key columns; empty for a log table. */
    final int[] keyPositions;
    /** Names of a partial update's target columns; null for full rows. */
    final List<String> targetColumns;
    final boolean ignoreDelete;
    final int maxBufferedRows;
    /** Longest a buffered row waits before it is sent; 0: only full buffers and checkpoints. */
    final long flushIntervalMs;

    public Plan(
        StromTableAddress address,
        RowType rowType,
        int[] writePositions,
        int[] keyPositions,
        List<String> targetColumns,
        boolean ignoreDelete,
        int maxBufferedRows,
        long flushIntervalMs) {
      this.address = address;
      this.rowType = rowType;
      this.writePositions = writePositions;
      this.keyPositions = keyPositions;
      this.targetColumns = targetColumns;
      this.ignoreDelete = ignoreDelete;
      this.maxBufferedRows = maxBufferedRows;
      this.flushIntervalMs = flushIntervalMs;
    }

    boolean hasPrimaryKey() {
      return keyPositions.length > 0;
    }
  }

  private final Plan plan;

  public StromSink(Plan plan) {
    this.plan = plan;
  }

  @Override
  public SinkWriter<RowData> createWriter(WriterInitContext context) {
    return new StromSinkWriter(plan, context.getProcessingTimeService());
  }
}
