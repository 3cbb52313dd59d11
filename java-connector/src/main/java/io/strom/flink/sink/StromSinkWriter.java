package io.strom.flink.sink;

import io.strom.flink.client.StromConnection;
import io.strom.flink.client.StromWriter;
import org.apache.flink.api.common.operators.ProcessingTimeService;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.table.data.RowData;

/**
 * One sink subtask: rows go into an Arrow batch ({@link ArrowRowWriter}) that is sent with
 * {@code writeAsync} when it holds {@code sink.buffer-flush.max-rows} rows; {@link #flush}
 * (before every checkpoint barrier and at the end of input) sends the rest and waits until the
 * node acknowledged every batch. {@code writeAsync} blocks while the client's in-flight window
 * is full, which is the backpressure when the node is slower than the job. A processing-time
 * timer sends a buffer that has waited {@code sink.buffer-flush.interval} (without waiting for
 * its ack), so a slow stream reaches the node, and the node's readers, without waiting for a
 * full buffer or a checkpoint.
 *
 * <p>Upserts and deletes of a primary-key table go through two writers (two DoPut streams). To
 * keep a key's changes in order, switching from one kind to the other first sends and awaits
 * everything of the other kind.
 */
final class StromSinkWriter implements SinkWriter<RowData> {
  private final StromSink.Plan plan;
  private final ProcessingTimeService timers;
  private final StromConnection connection;
  private final ArrowRowWriter rows;
  private final ArrowRowWriter deletedKeys;
  private StromWriter rowWriter;
  private StromWriter deleteWriter;
  private boolean deletesPending;
  private boolean rowsPending;
  /** A flush timer is registered and has not fired yet. */
  private boolean timerPending;
  private boolean closed;

  StromSinkWriter(StromSink.Plan plan, ProcessingTimeService timers) {
    this.plan = plan;
    this.timers = timers;
    this.connection = StromConnection.connect(plan.address.endpoint());
    this.rows = new ArrowRowWriter(plan.rowType, plan.writePositions, connection.allocator());
    this.deletedKeys =
        plan.hasPrimaryKey()
            ? new ArrowRowWriter(plan.rowType, plan.keyPositions, connection.allocator())
            : null;
  }

  @Override
  public void write(RowData row, Context context) {
    switch (row.getRowKind()) {
      case INSERT:
      case UPDATE_AFTER:
        if (deletesPending) {
          sendDeletes();
          deleteWriter.flush();
          deletesPending = false;
        }
        rows.write(row);
        rowsPending = true;
        if (rows.rows() >= plan.maxBufferedRows) {
          sendRows();
        } else {
          startFlushTimer();
        }
        break;
      case UPDATE_BEFORE:
        // The planner drops UPDATE_BEFORE for upsert sinks unless the query needs it, e.g. a
        // filter after an aggregate: -U(a) with no +U(a) after it means 'a' left the result.
        // So it is a delete of the key (as in Flink's JDBC and upsert-kafka sinks); the
        // +U that usually follows writes the key again.
      case DELETE:
        if (plan.ignoreDelete || deletedKeys == null) {
          // A log table is insert-only (the planner refuses deletes before they get here).
          return;
        }
        if (rowsPending) {
          sendRows();
          rowWriter.flush();
          rowsPending = false;
        }
        deletedKeys.write(row);
        deletesPending = true;
        if (deletedKeys.rows() >= plan.maxBufferedRows) {
          sendDeletes();
        } else {
          startFlushTimer();
        }
        break;
      default:
        throw new IllegalStateException("unknown row kind " + row.getRowKind());
    }
  }

  /**
   * Makes sure a timer will send what is buffered now within the flush interval. One timer at a
   * time: rows buffered after it was registered wait less than the interval.
   */
  private void startFlushTimer() {
    if (plan.flushIntervalMs == 0 || timerPending) {
      return;
    }
    timerPending = true;
    // Timers fire on the task's mailbox thread, never concurrently with write() or flush().
    timers.registerTimer(timers.getCurrentProcessingTime() + plan.flushIntervalMs, time -> onFlushTimer());
  }

  private void onFlushTimer() {
    timerPending = false;
    if (closed) {
      return; // a timer that was already due when the task ended
    }
    // At most one of the two buffers holds rows (write() sends one kind before buffering the
    // other); the sends do not wait for acks: the next flush() collects them, and any failure.
    sendRows();
    if (deletedKeys != null) {
      sendDeletes();
    }
  }

  private void sendRows() {
    if (rows.rows() == 0) {
      return;
    }
    if (rowWriter == null) {
      rowWriter = plan.hasPrimaryKey()
          ? connection.upsertWriter(plan.address.database(), plan.address.table(), plan.targetColumns)
          : connection.appendWriter(plan.address.database(), plan.address.table());
    }
    rowWriter.writeAsync(rows.batch());
    rows.reset();
  }

  private void sendDeletes() {
    if (deletedKeys.rows() == 0) {
      return;
    }
    if (deleteWriter == null) {
      deleteWriter = connection.deleteWriter(plan.address.database(), plan.address.table());
    }
    deleteWriter.writeAsync(deletedKeys.batch());
    deletedKeys.reset();
  }

  /** Sends what is buffered and waits for the node's acks; throws the first failed write. */
  @Override
  public void flush(boolean endOfInput) {
    sendRows();
    if (deletedKeys != null) {
      sendDeletes();
    }
    if (rowWriter != null) {
      rowWriter.flush();
    }
    if (deleteWriter != null) {
      deleteWriter.flush();
    }
    rowsPending = false;
    deletesPending = false;
  }

  @Override
  public void close() {
    closed = true;
    // Unflushed rows are dropped on purpose: close without flush means the task failed, and
    // the rows will be replayed from the last checkpoint.
    try {
      if (rowWriter != null) {
        rowWriter.close();
      }
      if (deleteWriter != null) {
        deleteWriter.close();
      }
    } finally {
      rows.close();
      if (deletedKeys != null) {
        deletedKeys.close();
      }
      connection.close();
    }
  }
}
