package io.strom.flink.connector;

import io.strom.flink.lookup.LookupSettings;
import io.strom.flink.source.StartupMode;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.connector.source.abilities.SupportsFilterPushDown;
import org.apache.flink.table.expressions.ResolvedExpression;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.RowType;

/**
 * SELECT from a partitioned Strom table in streaming mode. It does not take Flink's partition
 * push-down, which hands a source the partitions matching at planning time and drops the
 * predicate: a streaming job would never read a partition created later. Instead it takes the
 * filters ({@link SupportsFilterPushDown}), keeps the conjuncts on partition keys as a {@link
 * PartitionPredicate} that the enumerator applies to every partition it finds (at start and by
 * discovery), and leaves every filter to Flink as well, so rows are always filtered exactly.
 */
public final class StromStreamingPartitionedSource extends StromScanSource implements SupportsFilterPushDown {
  StromStreamingPartitionedSource(
      StromTableAddress address,
      RowType physicalType,
      StromTableInfo table,
      StartupMode startupMode,
      long startupTimestampMillis,
      long discoveryIntervalMillis,
      LookupSettings lookupSettings) {
    super(address, physicalType, table, false, startupMode, startupTimestampMillis, discoveryIntervalMillis, lookupSettings);
  }

  @Override
  public Result applyFilters(List<ResolvedExpression> filters) {
    List<LogicalType> keyTypes = new ArrayList<>();
    for (String key : table.partitionKeys()) {
      keyTypes.add(physicalType.getTypeAt(physicalType.getFieldIndex(key)));
    }
    List<ResolvedExpression> onPartitions = new ArrayList<>();
    for (ResolvedExpression filter : filters) {
      if (PartitionPredicate.of(List.of(filter), table.partitionKeys(), keyTypes).isPresent()) {
        onPartitions.add(filter);
      }
    }
    partitionPredicate = PartitionPredicate.of(onPartitions, table.partitionKeys(), keyTypes).orElse(null);
    // The conjuncts on partition keys are accepted (EXPLAIN lists them as the scan's filter)
    // and all of them stay with Flink too: the predicate only skips partitions.
    return Result.of(onPartitions, filters);
  }

  @Override
  public DynamicTableSource copy() {
    return withStateOf(
        new StromStreamingPartitionedSource(
            address, physicalType, table, startupMode, startupTimestampMillis, discoveryIntervalMillis, lookupSettings));
  }
}
