package io.strom.flink.lookup;

import io.strom.flink.connector.StromTableAddress;
import java.io.Serializable;
import java.util.List;
import org.apache.flink.table.types.logical.RowType;

/**
 * One lookup join's use of a Strom table, decided at planning time.
 *
 * @param address the table on its node
 * @param keyType the lookup key row Flink hands the function: the join's key columns, named
 *     as the table's columns
 * @param resultType the rows the join receives (the table's columns after projection)
 * @param prefix the keys are the bucket key (a strict prefix of the primary key): every row
 *     of the prefix is returned; otherwise the keys are the whole primary key
 * @param partitionKeyPositions positions in the key row of the table's partition keys, in
 *     partition-key order (empty for a table without partitions): a key is looked up in the
 *     partition its values name
 * @param maxRetries attempts after a failed lookup ({@code lookup.max-retries})
 * @param insertIfNotExists a key not found is inserted and its new row returned ({@code
 *     lookup.insert-if-not-exists})
 */
public record LookupPlan(
    StromTableAddress address,
    RowType keyType,
    RowType resultType,
    boolean prefix,
    int[] partitionKeyPositions,
    int maxRetries,
    boolean insertIfNotExists)
    implements Serializable {

  /** The columns asked from the node, in the order of {@link #resultType()}. */
  public List<String> columns() {
    return resultType.getFieldNames();
  }
}
