package io.strom.flink.lookup;

import io.strom.flink.client.StromConnection;
import io.strom.flink.client.StromException;
import io.strom.flink.client.StromLookuper;
import io.strom.flink.sink.ArrowRowWriter;
import io.strom.flink.source.arrow.ArrowColumnVectors;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.stream.IntStream;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.columnar.ColumnarRowData;
import org.apache.flink.table.runtime.typeutils.RowDataSerializer;

/**
 * What both lookup functions share: one connection per subtask, one lookuper (a pipelined
 * DoExchange stream) per partition looked into, the key row written as a one-row Arrow batch,
 * and the answer's rows copied out of the Arrow vectors. Lookups of one lookuper complete in
 * submission order; many are in flight at once (the async function does not wait for one
 * answer before sending the next key).
 *
 * <p>Synchronized: Flink calls from its task thread, and an async retry from the thread that
 * completed the failed lookup.
 */
final class StromLookups implements AutoCloseable {
  private final LookupPlan plan;
  private final StromConnection connection;
  private final Map<String, StromLookuper> lookupers = new HashMap<>();
  private final ArrowRowWriter keys;
  private final RowDataSerializer rows;
  private final RowData.FieldGetter[] partitionValues;

  StromLookups(LookupPlan plan) {
    this.plan = plan;
    this.connection = StromConnection.connect(plan.address().endpoint());
    int[] all = IntStream.range(0, plan.keyType().getFieldCount()).toArray();
    this.keys = new ArrowRowWriter(plan.keyType(), all, connection.allocator());
    this.rows = new RowDataSerializer(plan.resultType());
    int[] positions = plan.partitionKeyPositions();
    this.partitionValues = new RowData.FieldGetter[positions.length];
    for (int i = 0; i < positions.length; i++) {
      partitionValues[i] = RowData.createFieldGetter(plan.keyType().getTypeAt(positions[i]), positions[i]);
    }
  }

  /** Looks the key up and waits for the answer. */
  synchronized Collection<RowData> lookup(RowData key) {
    StromLookuper lookuper = lookuperFor(key);
    if (lookuper == null) {
      return List.of();
    }
    VectorSchemaRoot batch = keyBatch(key);
    try (VectorSchemaRoot answer = lookuper.lookup(batch)) {
      return rowsOf(answer);
    }
  }

  /** Sends the key and returns at once; the future completes with its rows. */
  synchronized CompletableFuture<Collection<RowData>> lookupAsync(RowData key) {
    StromLookuper lookuper = lookuperFor(key);
    if (lookuper == null) {
      return CompletableFuture.completedFuture(List.of());
    }
    // The key batch is exported (its buffers shared with Rust) before lookupAsync returns, so
    // the writer can be reset for the next key at once.
    CompletableFuture<VectorSchemaRoot> answer = lookuper.lookupAsync(keyBatch(key));
    return answer.thenApply(
        root -> {
          try (root) {
            return rowsOf(root);
          }
        });
  }

  private VectorSchemaRoot keyBatch(RowData key) {
    keys.reset();
    keys.write(key);
    return keys.batch();
  }

  /**
   * The lookuper of the key's partition; null when a partition value is null (no partition
   * can hold the key). Partitions are named by their values joined with '$' in key order.
   */
  private StromLookuper lookuperFor(RowData key) {
    String partition = null;
    if (partitionValues.length > 0) {
      List<String> values = new ArrayList<>();
      for (RowData.FieldGetter getter : partitionValues) {
        Object value = getter.getFieldOrNull(key);
        if (value == null) {
          return null;
        }
        values.add(value.toString());
      }
      partition = String.join("$", values);
    }
    String name = partition == null ? "" : partition;
    StromLookuper lookuper = lookupers.get(name);
    if (lookuper == null) {
      StromLookuper.Options options = new StromLookuper.Options().columns(plan.columns());
      if (plan.prefix()) {
        options.prefix();
      }
      if (plan.insertIfNotExists()) {
        options.insertIfNotExists();
      }
      if (partition != null) {
        options.partition(partition);
      }
      lookuper = connection.lookuper(plan.address().database(), plan.address().table(), options);
      lookupers.put(name, lookuper);
    }
    return lookuper;
  }

  /** The answer's rows as copies (the Arrow buffers are released right after). */
  private Collection<RowData> rowsOf(VectorSchemaRoot answer) {
    int count = answer.getRowCount();
    if (count == 0) {
      return List.of();
    }
    List<FieldVector> vectors = new ArrayList<>();
    for (String column : plan.columns()) {
      vectors.add(answer.getVector(column));
    }
    ColumnarRowData row = new ColumnarRowData(ArrowColumnVectors.batch(vectors));
    List<RowData> out = new ArrayList<>(count);
    for (int r = 0; r < count; r++) {
      row.setRowId(r);
      out.add(rows.copy(row));
    }
    return out;
  }

  /** A lookup that failed on the node or the connection (retried by the functions). */
  static boolean retriable(Throwable error) {
    return error instanceof StromException;
  }

  @Override
  public synchronized void close() {
    try {
      for (StromLookuper lookuper : lookupers.values()) {
        lookuper.close();
      }
    } finally {
      lookupers.clear();
      keys.close();
      connection.close();
    }
  }
}
