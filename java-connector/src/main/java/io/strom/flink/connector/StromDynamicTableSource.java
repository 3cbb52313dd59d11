package io.strom.flink.connector;

import com.fasterxml.jackson.databind.JsonNode;
import io.strom.flink.client.StromConnection;
import io.strom.flink.client.StromException;
import io.strom.flink.lookup.LookupSettings;
import io.strom.flink.source.StartupMode;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.connector.source.abilities.SupportsPartitionPushDown;
import org.apache.flink.table.types.logical.RowType;

/**
 * SELECT from a Strom table in batch mode, or from a table without partitions: the {@link
 * StromScanSource} plus partition push-down (the planner prunes the partitions present at
 * planning time, which is all a bounded read ever reads). Streaming reads of partitioned tables
 * use {@link StromStreamingPartitionedSource}, which also reads partitions created later.
 */
public final class StromDynamicTableSource extends StromScanSource implements SupportsPartitionPushDown {
  StromDynamicTableSource(
      StromTableAddress address,
      RowType physicalType,
      StromTableInfo table,
      boolean bounded,
      StartupMode startupMode,
      long startupTimestampMillis,
      long discoveryIntervalMillis,
      LookupSettings lookupSettings) {
    super(address, physicalType, table, bounded, startupMode, startupTimestampMillis, discoveryIntervalMillis, lookupSettings);
  }

  @Override
  public Optional<List<Map<String, String>>> listPartitions() {
    // Asked from the node rather than left to the catalog: 'connector' tables have none.
    List<Map<String, String>> partitions = new ArrayList<>();
    try (StromConnection connection = StromConnection.connect(address.endpoint())) {
      for (JsonNode partition : connection.listPartitions(address.database(), address.table())) {
        Map<String, String> values = new LinkedHashMap<>();
        partition.path("values").fields().forEachRemaining(e -> values.put(e.getKey(), e.getValue().asText()));
        partitions.add(values);
      }
    } catch (StromException e) {
      throw new ValidationException("Cannot list the partitions of Strom table " + address + ": " + e.getMessage(), e);
    }
    return Optional.of(partitions);
  }

  @Override
  public void applyPartitions(List<Map<String, String>> remainingPartitions) {
    Set<String> names = new LinkedHashSet<>();
    for (Map<String, String> partition : remainingPartitions) {
      List<String> values = new ArrayList<>();
      for (String key : table.partitionKeys()) {
        String value = partition.get(key);
        if (value == null) {
          throw new ValidationException("Table " + address + ": partition " + partition + " misses key " + key);
        }
        values.add(value);
      }
      // Partition names are the values joined with '$' in key order (docs/partitions.md).
      names.add(String.join("$", values));
    }
    partitionFilter = names;
  }

  @Override
  public DynamicTableSource copy() {
    return withStateOf(
        new StromDynamicTableSource(
            address, physicalType, table, bounded, startupMode, startupTimestampMillis, discoveryIntervalMillis, lookupSettings));
  }
}
