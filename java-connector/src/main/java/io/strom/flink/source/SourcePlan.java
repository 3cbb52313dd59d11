package io.strom.flink.source;

import io.strom.flink.connector.PartitionPredicate;
import io.strom.flink.connector.StromTableAddress;
import java.io.Serializable;
import java.util.List;
import java.util.Set;
import org.apache.flink.table.types.logical.RowType;

/**
 * Everything the planner decided about one read of a Strom table, shipped to the enumerator
 * and the readers: which table, which columns (after projection push-down), how it starts,
 * whether it is bounded, which partitions (after partition push-down) and a row limit.
 *
 * @param address the table on its node
 * @param producedType the row type Flink receives (the projected columns, in order)
 * @param requestedColumns the columns asked from the node; equal to the produced columns except
 *     for an empty projection (COUNT(*) without push-down), where one column is still read so
 *     that the node has something to count rows by
 * @param primaryKeyTable whether the table has a primary key (changelog with _change_type)
 * @param partitioned whether the table is partitioned
 * @param bucketCount buckets per table (per partition)
 * @param bounded batch mode: log tables end at the offsets of job start, primary-key tables
 *     are read as their snapshot
 * @param startupMode where an unbounded read starts
 * @param startupTimestampMillis for {@link StartupMode#TIMESTAMP}
 * @param partitionFilter the partitions to read (partition push-down of a bounded read); null:
 *     all, including partitions created while the job runs
 * @param partitionPredicate a streaming read's filter on partition keys, applied to every
 *     partition found (at start and by discovery); null: none
 * @param discoveryIntervalMillis how often a streaming read of a partitioned table looks for
 *     new and dropped partitions
 * @param limit rows per split (LIMIT push-down; the planner still applies the limit on top);
 *     -1: none
 * @param pushedCount COUNT(*) push-down: the one row to produce instead of reading, or -1
 * @param primaryKey the primary-key columns in declared order (empty for a log table)
 */
public record SourcePlan(
    StromTableAddress address,
    RowType producedType,
    List<String> requestedColumns,
    boolean primaryKeyTable,
    boolean partitioned,
    int bucketCount,
    boolean bounded,
    StartupMode startupMode,
    long startupTimestampMillis,
    Set<String> partitionFilter,
    PartitionPredicate partitionPredicate,
    long discoveryIntervalMillis,
    long limit,
    long pushedCount,
    List<String> primaryKey)
    implements Serializable {

  /**
   * The columns of a snapshot scan: the requested ones, then the primary-key columns the query
   * does not read (the split state records the last key emitted; the row Flink sees ends before
   * them).
   */
  public List<String> snapshotColumns() {
    List<String> columns = new java.util.ArrayList<>(requestedColumns);
    for (String key : primaryKey) {
      if (!columns.contains(key)) {
        columns.add(key);
      }
    }
    return columns;
  }

  /** Whether the read is answered by a count resolved at planning (no rows are read). */
  public boolean countOnly() {
    return pushedCount >= 0;
  }

  /** Whether this read covers the partition of that name (the node's name: values joined by '$'). */
  public boolean readsPartition(String name) {
    return (partitionFilter == null || partitionFilter.contains(name))
        && (partitionPredicate == null || partitionPredicate.testName(name));
  }

  /** Whether a split starts with a snapshot of its bucket (then, unbounded, its changelog). */
  public boolean startsWithSnapshot() {
    return primaryKeyTable && startupMode == StartupMode.FULL;
  }
}
