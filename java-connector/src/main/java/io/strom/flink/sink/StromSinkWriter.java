package io.strom.flink.sink;

import io.strom.flink.client.StromConnection;
import io.strom.flink.client.StromWriter;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.table.data.RowData;

/**
 * One sink subtask: rows go into an Arrow batch ({@link ArrowRowWriter}) that is sent with
 * {@code writeAsync} when it holds {@code sink.buffer-flush.max-rows} rows; {@link #flush}
 * (before every checkpoint barrier and at the end of input) sends the rest and waits until the
 * node acknowledged every batch. {@code writeAsync} blocks while the client's in-flight window
 * is full, which is the backpressure when the node is slower than the job.
 *
 * <p>Upserts and deletes of a primary-key table go through two writers (two DoPut streams). To
 * keep a key's changes in order, switching from one kind to the other first sends and awaits
 * everything of the other kind.
 */
final class StromSinkWriter implements SinkWriter<RowData> {
  private final StromSink.Plan plan;
  private final StromConnection connection;
  private final ArrowRowWriter rows;
  private final ArrowRowWriter deletedKeys;
  private StromWriter rowWriter;
  private StromWriter deleteWriter;
  private boolean deletesPending;
  private boolean rowsPending;

  StromSinkWriter(StromSink.Plan plan) {
    this.plan = plan;
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
        }
        break;
      default:
        throw new IllegalStateException("unknown row kind " + row.getRowKind());
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
