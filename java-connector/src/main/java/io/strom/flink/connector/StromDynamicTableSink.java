package io.strom.flink.connector;

import io.strom.flink.sink.StromSink;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.IntStream;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.SinkV2Provider;
import org.apache.flink.table.connector.sink.abilities.SupportsPartitioning;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.RowType;

/**
 * INSERT INTO a Strom table: appends to log tables; upserts and deletes to primary-key tables,
 * and a partial update when the INSERT names its columns ({@code INSERT INTO t (k, c) ...}
 * writes only {@code c} of key {@code k}; the key columns must be in the list).
 */
public final class StromDynamicTableSink implements DynamicTableSink, SupportsPartitioning {
  private final StromTableAddress address;
  private final DataType physicalRowType;
  private final int[] primaryKey;
  private final int maxBufferedRows;
  private final long flushIntervalMs;
  private final boolean ignoreDelete;

  StromDynamicTableSink(
      StromTableAddress address,
      DataType physicalRowType,
      int[] primaryKey,
      int maxBufferedRows,
      long flushIntervalMs,
      boolean ignoreDelete) {
    this.address = address;
    this.physicalRowType = physicalRowType;
    this.primaryKey = primaryKey;
    this.maxBufferedRows = maxBufferedRows;
    this.flushIntervalMs = flushIntervalMs;
    this.ignoreDelete = ignoreDelete;
  }

  @Override
  public ChangelogMode getChangelogMode(ChangelogMode requestedMode) {
    // Without a key there is nothing to update or delete by: the planner refuses updating
    // queries into log tables, naming the table.
    return primaryKey.length > 0 ? ChangelogMode.upsert() : ChangelogMode.insertOnly();
  }

  @Override
  public SinkRuntimeProvider getSinkRuntimeProvider(Context context) {
    RowType rowType = (RowType) physicalRowType.getLogicalType();
    int[] all = IntStream.range(0, rowType.getFieldCount()).toArray();
    int[] writePositions = all;
    List<String> targetColumns = null;
    if (primaryKey.length > 0 && context.getTargetColumns().isPresent()) {
      int[] targets = topLevel(context.getTargetColumns().get(), rowType);
      if (targets.length < all.length) {
        requireKeyColumns(targets, rowType);
        writePositions = targets;
        targetColumns = new ArrayList<>();
        for (int position : targets) {
          targetColumns.add(rowType.getFieldNames().get(position));
        }
      }
    }
    // A log table's INSERT with a column list gets the other columns as NULL from the
    // planner: full rows are written.
    return SinkV2Provider.of(
        new StromSink(
            new StromSink.Plan(
                address, rowType, writePositions, primaryKey, targetColumns, ignoreDelete, maxBufferedRows,
                flushIntervalMs)));
  }

  private int[] topLevel(int[][] paths, RowType rowType) {
    Set<Integer> positions = new LinkedHashSet<>();
    for (int[] path : paths) {
      if (path.length != 1) {
        throw new ValidationException(
            "Table " + address + ": partial updates of nested fields are not supported; list"
                + " top-level columns in INSERT INTO");
      }
      positions.add(path[0]);
    }
    return positions.stream().mapToInt(Integer::intValue).toArray();
  }

  private void requireKeyColumns(int[] targets, RowType rowType) {
    List<String> missing = new ArrayList<>();
    for (int key : primaryKey) {
      if (Arrays.stream(targets).noneMatch(t -> t == key)) {
        missing.add(rowType.getFieldNames().get(key));
      }
    }
    if (!missing.isEmpty()) {
      throw new ValidationException(
          "Table " + address + ": a partial update (INSERT INTO with a column list) must list"
              + " every primary-key column; missing " + missing);
    }
  }

  @Override
  public void applyStaticPartition(Map<String, String> partition) {
    // The planner puts the static values into the rows' partition columns; the node routes
    // every row to its partition by those values, so nothing is needed here.
  }

  @Override
  public DynamicTableSink copy() {
    return new StromDynamicTableSink(address, physicalRowType, primaryKey, maxBufferedRows, flushIntervalMs, ignoreDelete);
  }

  @Override
  public String asSummaryString() {
    return "Strom(" + address + ")";
  }
}
