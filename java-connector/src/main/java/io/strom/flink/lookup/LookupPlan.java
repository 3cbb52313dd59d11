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
 * @param indexKeys positions in the key row of the columns sent to the node: the index the
 *     lookup uses (the primary key, or the bucket key plus partition keys)
 * @param resultType the rows the join receives (the table's columns after projection)
 * @param requestType the columns asked from the node: {@code resultType}'s, then the extra
 *     key columns the join does not read
 * @param extraKeys positions in the key row of join keys beyond the index, compared on the
 *     rows the node returns
 * @param extraColumns for each of {@code extraKeys}, its position in {@code requestType}
 * @param prefix the keys are the bucket key (a strict prefix of the primary key): every row
 *     of the prefix is returned; otherwise the keys are the whole primary key
 * @param partitionKeyPositions positions in the key row of the table's partition keys, in
 *     partition-key order (empty for a table without partitions): a key is looked up in the
 *     partition its values name
 * @param maxRetries attempts after a failed lookup ({@code lookup.max-retries})
 * @param insertIfNotExists a key not found is inserted and its new row returned ({@code
 *     lookup.insert-if-not-exists})
 * @param answerTimeout longest wait for the node's answer to a key batch ({@code
 *     lookup.answer-timeout}; zero waits forever)
 */
public record LookupPlan(
    StromTableAddress address,
    RowType keyType,
    int[] indexKeys,
    RowType resultType,
    RowType requestType,
    int[] extraKeys,
    int[] extraColumns,
    boolean prefix,
    int[] partitionKeyPositions,
    int maxRetries,
    boolean insertIfNotExists,
    java.time.Duration answerTimeout)
    implements Serializable {

  /** The columns asked from the node, in the order of {@link #requestType()}. */
  public List<String> columns() {
    return requestType.getFieldNames();
  }
}
