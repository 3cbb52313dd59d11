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
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.columnar.ColumnarRowData;
import org.apache.flink.table.runtime.typeutils.InternalSerializers;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.RowType;

/**
 * What both lookup functions share: one connection per subtask, one lookuper (a pipelined
 * DoExchange stream) per partition looked into, the key row written as a one-row Arrow batch,
 * and the answer's rows copied out of the Arrow vectors. Lookups of one lookuper complete in
 * submission order; many are in flight at once (the async function does not wait for one
 * answer before sending the next key).
 *
 * <p>Synchronized: Flink calls from its task thread, and the completion thread sends the keys
 * that waited for an answer (and async retries).
 *
 * <p><b>Where async lookups complete.</b> Each instance has one completion thread of its own
 * (a daemon, {@code strom-lookup-<table>-N}): the answer of a request crosses from the Rust
 * client's runtime thread to it, and there the answer is imported and copied into rows, the
 * keys that waited are sent as the next request, and Flink's futures are completed. Not on
 * the Rust runtime threads: they drive every call of the process's connection to the node
 * (lookups, writes and scans of every subtask), so nothing that can block may run there, and
 * completing Flink's future runs code we cannot bound: in Flink 2.3 the async lookup join
 * ({@code AsyncLookupJoinRunner.JoinedRowResultFuture#complete}) evaluates the generated join
 * condition and calc of the temporal table (user-defined functions included) on the
 * completing thread before {@code AsyncWaitOperator}'s result handler enqueues a mail;
 * {@code CachingAsyncLookupFunction} fills the partial cache there; the delta join's runner
 * updates its cache and evaluates the remaining join condition; and the next request's JNI
 * submit blocks while the lookuper has {@code max_in_flight} requests unanswered. Not on
 * the JVM's common pool either (the previous choice): with 2 cores its parallelism is 1 and it
 * is shared with the rest of the JVM; its hand-off took 0.4-1.6 ms per request against 0.17 ms
 * for a dedicated thread, which more than doubled a lookup join at Flink's default buffer
 * (docs/benchmarks.md, "Async lookup join after the completion fix"). A dedicated thread costs
 * one hand-off per request and keeps one subtask's completions in submission order.
 */
final class StromLookups implements AutoCloseable {
  private final LookupPlan plan;
  private final BufferAllocator allocator;
  private final ExecutorService completions;
  private final StromConnection connection;
  private final Map<String, StromLookuper> lookupers = new HashMap<>();
  private final Map<StromLookuper, Batcher> batchers = new HashMap<>();
  private boolean closed;
  private final ArrowRowWriter keys;
  private final RowData.FieldGetter[] resultValues;
  /** Per result column: the serializer that deep-copies it (nested types), or null. */
  private final TypeSerializer<Object>[] nestedCopiers;
  private final RowData.FieldGetter[] partitionValues;
  /** Join keys beyond the index: their values in the key row and in the node's rows. */
  private final RowData.FieldGetter[] extraKeyValues;
  private final RowData.FieldGetter[] extraRowValues;

  StromLookups(LookupPlan plan) {
    this.plan = plan;
    this.allocator = new RootAllocator();
    this.completions = completionThread(plan.address().table());
    try {
      this.connection = StromConnection.connect(plan.address().endpoint(), allocator, completions);
    } catch (RuntimeException | Error e) {
      completions.shutdown();
      allocator.close();
      throw e;
    }
    this.keys = new ArrowRowWriter(plan.keyType(), plan.indexKeys(), connection.allocator());
    RowType resultType = plan.resultType();
    this.resultValues = getters(resultType, java.util.stream.IntStream.range(0, resultType.getFieldCount()).toArray());
    this.nestedCopiers = nestedCopiers(resultType);
    this.extraKeyValues = getters(plan.keyType(), plan.extraKeys());
    this.extraRowValues = getters(plan.requestType(), plan.extraColumns());
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
    VectorSchemaRoot answer = lookuper.lookup(batch);
    try {
      return rows(rowsPerKey(answer, List.of(new Pending(key, 0)))[0]);
    } finally {
      lookuper.recycle(answer);
    }
  }

  /**
   * Sends the key and returns at once; the future completes with its rows. The key row must
   * not change after this call (it may be sent later, batched with others, or sent again).
   * Keys are batched per partition without adding latency: a key goes out at once while fewer
   * than {@link #REQUESTS_IN_FLIGHT} requests of its lookuper are unanswered; otherwise it
   * waits and leaves with the other waiting keys, as one request, when an answer arrives.
   * Under load a subtask thus sends batches of keys (the node's batched lookup path), idle it
   * sends each key alone. A key whose request failed on the node or its connection ({@link
   * #retriable}) is sent again, batched like a new one, up to {@code retries} times; then its
   * future fails. (Retrying here rather than composing futures around each lookup saves a
   * future and a completion stage per key.)
   */
  synchronized CompletableFuture<Collection<RowData>> lookupAsync(RowData key, int retries) {
    if (closed) {
      return CompletableFuture.failedFuture(new IllegalStateException("the lookup function is closed"));
    }
    StromLookuper lookuper = lookuperFor(key);
    if (lookuper == null) {
      return CompletableFuture.completedFuture(List.of());
    }
    Batcher batcher = batchers.computeIfAbsent(lookuper, Batcher::new);
    Pending pending = new Pending(key, retries);
    batcher.waiting.add(pending);
    if (batcher.inFlight < REQUESTS_IN_FLIGHT || batcher.waiting.size() >= MAX_KEYS_PER_REQUEST) {
      send(batcher);
    }
    return pending.rows;
  }

  /** Async requests sent and the keys they carried, in this JVM (tests read the ratio). */
  static final java.util.concurrent.atomic.AtomicLong REQUESTS_SENT = new java.util.concurrent.atomic.AtomicLong();
  static final java.util.concurrent.atomic.AtomicLong KEYS_SENT = new java.util.concurrent.atomic.AtomicLong();

  /**
   * Most unanswered requests per lookuper before keys wait to be batched: the node's default
   * {@code server.lookup_pipeline_depth}, so that it looks them all up at once. (At 2, with the
   * node at depth 4, a one-subtask join at buffer capacity 2000 kept only 2 batches at the node:
   * 123.6K rows/s against 139.1K at 4; against a node at depth 1, 4 was slower than 2 —
   * docs/benchmarks.md.)
   */
  static final int REQUESTS_IN_FLIGHT = 4;
  /** A batch is sent at this size even when the lookuper has requests in flight. */
  static final int MAX_KEYS_PER_REQUEST = 1024;

  /** One key's lookup: its future and the attempts it has left after a failure. */
  private static final class Pending {
    final RowData key;
    final CompletableFuture<Collection<RowData>> rows = new CompletableFuture<>();
    int retriesLeft;

    Pending(RowData key, int retries) {
      this.key = key;
      this.retriesLeft = retries;
    }
  }

  /** The keys of one lookuper waiting for a request, and its requests in flight. */
  private static final class Batcher {
    final StromLookuper lookuper;
    List<Pending> waiting = new ArrayList<>();
    int inFlight;

    Batcher(StromLookuper lookuper) {
      this.lookuper = lookuper;
    }
  }

  /** Sends the batcher's waiting keys as one request (under this object's lock). */
  private void send(Batcher batcher) {
    List<Pending> sent = batcher.waiting;
    batcher.waiting = new ArrayList<>();
    keys.reset();
    for (Pending pending : sent) {
      keys.write(pending.key);
    }
    CompletableFuture<VectorSchemaRoot> answer;
    try {
      // The key batch is exported (its buffers shared with Rust) before this returns, so the
      // writer can be reset for the next request at once.
      answer = batcher.lookuper.lookupAsync(keys.batch());
    } catch (RuntimeException e) {
      // Failed before anything was sent: keys with attempts left wait for the next request
      // (sent at once if none is in flight), the others fail.
      List<Pending> failed = retryOrFail(batcher, sent, e);
      if (batcher.inFlight == 0 && !batcher.waiting.isEmpty() && failed.size() < sent.size()) {
        send(batcher);
      }
      failed.forEach(pending -> pending.rows.completeExceptionally(e));
      return;
    }
    batcher.inFlight++;
    REQUESTS_SENT.incrementAndGet();
    KEYS_SENT.addAndGet(sent.size());
    answer.whenComplete((root, error) -> answered(batcher, sent, root, error));
  }

  /**
   * A request's answer (or failure), on the completion thread: rows are copied out, the keys
   * that waited are sent, then Flink's futures complete (outside the lock: that runs Flink's
   * join code).
   */
  private void answered(Batcher batcher, List<Pending> sent, VectorSchemaRoot root, Throwable error) {
    Object[] perKey = null;
    Throwable failure = error;
    if (failure == null) {
      try {
        perKey = rowsPerKey(root, sent);
      } catch (RuntimeException e) {
        failure = e;
      } finally {
        batcher.lookuper.recycle(root);
      }
    }
    List<Pending> failed = List.of();
    synchronized (this) {
      batcher.inFlight--;
      if (failure != null) {
        failed = retryOrFail(batcher, sent, failure);
      }
      if (closed) {
        notifyAll();
      } else if (!batcher.waiting.isEmpty()) {
        send(batcher);
      }
    }
    if (failure != null) {
      for (Pending pending : failed) {
        pending.rows.completeExceptionally(failure);
      }
      return;
    }
    for (int i = 0; i < sent.size(); i++) {
      sent.get(i).rows.complete(rows(perKey[i]));
    }
  }

  /**
   * Puts the keys of a failed request that may be retried back in line (under this object's
   * lock) and answers the ones that may not.
   */
  private List<Pending> retryOrFail(Batcher batcher, List<Pending> sent, Throwable failure) {
    boolean retriable = !closed && retriable(unwrap(failure));
    List<Pending> failed = new ArrayList<>();
    for (Pending pending : sent) {
      if (retriable && pending.retriesLeft > 0) {
        pending.retriesLeft--;
        batcher.waiting.add(pending);
      } else {
        failed.add(pending);
      }
    }
    return failed;
  }

  private static Throwable unwrap(Throwable e) {
    return e instanceof java.util.concurrent.CompletionException && e.getCause() != null ? e.getCause() : e;
  }

  /** A key's rows from {@link #rowsPerKey}'s slot: none, one row, or a list. */
  @SuppressWarnings("unchecked") // Slots hold a RowData or the List<RowData> rowsPerKey built.
  private static Collection<RowData> rows(Object slot) {
    if (slot == null) {
      return List.of();
    }
    if (slot instanceof RowData row) {
      return java.util.Collections.singletonList(row);
    }
    return (List<RowData>) slot;
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
      StromLookuper.Options options = new StromLookuper.Options().columns(plan.columns()).answerTimeout(plan.answerTimeout());
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

  /**
   * The answer's rows (copies of the result columns) grouped by the key they answer ({@code
   * _key_index}), keeping only rows whose extra join keys equal the key's: per key null (no
   * row), its one row, or a list of rows (see {@link #rows}). Most keys of a full-key lookup
   * have one row or none, which then costs no list.
   */
  @SuppressWarnings("unchecked") // Slots hold a RowData or a List<RowData>, nothing else.
  private Object[] rowsPerKey(VectorSchemaRoot answer, List<Pending> sent) {
    Object[] perKey = new Object[sent.size()];
    int count = answer.getRowCount();
    if (count == 0) {
      return perKey;
    }
    org.apache.arrow.vector.IntVector keyIndex = (org.apache.arrow.vector.IntVector) answer.getVector("_key_index");
    ColumnarRowData row = columnar(answer, plan.resultType().getFieldNames());
    ColumnarRowData requested = extraRowValues.length == 0 ? null : columnar(answer, plan.columns());
    for (int r = 0; r < count; r++) {
      int key = keyIndex.get(r);
      if (requested != null) {
        requested.setRowId(r);
        if (!extraKeysMatch(sent.get(key).key, requested)) {
          continue;
        }
      }
      row.setRowId(r);
      RowData copy = copyOut(row);
      Object slot = perKey[key];
      if (slot == null) {
        perKey[key] = copy;
      } else if (slot instanceof RowData first) {
        List<RowData> rows = new ArrayList<>(4);
        rows.add(first);
        rows.add(copy);
        perKey[key] = rows;
      } else {
        ((List<RowData>) slot).add(copy);
      }
    }
    return perKey;
  }

  /**
   * A row that outlives the answer's vectors, copied once. The columnar getters of atomic types
   * already return values of their own (strings and binaries are read into fresh arrays that
   * {@code BinaryStringData} wraps, decimals and timestamps are new objects), so only nested
   * values, which still point into the vectors, go through their serializer's deep copy.
   * ({@code RowDataSerializer.copy} copied every string twice: 14 % of the completion thread in
   * a lookup-join profile.)
   */
  private GenericRowData copyOut(ColumnarRowData row) {
    GenericRowData copy = new GenericRowData(resultValues.length);
    for (int i = 0; i < resultValues.length; i++) {
      Object value = resultValues[i].getFieldOrNull(row);
      TypeSerializer<Object> nested = nestedCopiers[i];
      copy.setField(i, value != null && nested != null ? nested.copy(value) : value);
    }
    return copy;
  }

  @SuppressWarnings("unchecked") // InternalSerializers.create answers the serializer of the type's internal class.
  private static TypeSerializer<Object>[] nestedCopiers(RowType type) {
    TypeSerializer<Object>[] copiers = new TypeSerializer[type.getFieldCount()];
    for (int i = 0; i < copiers.length; i++) {
      LogicalType field = type.getTypeAt(i);
      boolean nested =
          switch (field.getTypeRoot()) {
            case ARRAY, MAP, MULTISET, ROW, STRUCTURED_TYPE, RAW -> true;
            default -> false;
          };
      copiers[i] = nested ? (TypeSerializer<Object>) InternalSerializers.create(field) : null;
    }
    return copiers;
  }

  /** SQL equality of every extra join key (a null never matches). */
  private boolean extraKeysMatch(RowData key, RowData row) {
    for (int i = 0; i < extraKeyValues.length; i++) {
      Object want = extraKeyValues[i].getFieldOrNull(key);
      Object got = extraRowValues[i].getFieldOrNull(row);
      if (want == null || got == null) {
        return false;
      }
      boolean equal = want instanceof byte[] w && got instanceof byte[] g ? java.util.Arrays.equals(w, g) : want.equals(got);
      if (!equal) {
        return false;
      }
    }
    return true;
  }

  private static RowData.FieldGetter[] getters(RowType type, int[] positions) {
    RowData.FieldGetter[] getters = new RowData.FieldGetter[positions.length];
    for (int i = 0; i < positions.length; i++) {
      getters[i] = RowData.createFieldGetter(type.getTypeAt(positions[i]), positions[i]);
    }
    return getters;
  }

  private static ColumnarRowData columnar(VectorSchemaRoot answer, List<String> columns) {
    List<FieldVector> vectors = new ArrayList<>();
    for (String column : columns) {
      vectors.add(answer.getVector(column));
    }
    return new ColumnarRowData(ArrowColumnVectors.batch(vectors));
  }

  /** A lookup that failed on the node or the connection (retried by the functions). */
  static boolean retriable(Throwable error) {
    return error instanceof StromException;
  }

  /**
   * Waits for the answers of every request sent (the lookupers' close) and for their
   * completions to have run, then frees everything. Keys still waiting for a request are
   * cancelled.
   */
  @Override
  public void close() {
    List<StromLookuper> open;
    synchronized (this) {
      if (closed) {
        return;
      }
      // From here on, completions send nothing more.
      closed = true;
      open = new ArrayList<>(lookupers.values());
    }
    try {
      for (StromLookuper lookuper : open) {
        lookuper.close();
      }
      awaitCompletions();
    } finally {
      synchronized (this) {
        lookupers.clear();
        batchers.values().forEach(b -> b.waiting.forEach(pending -> pending.rows.cancel(false)));
        batchers.clear();
      }
      completions.shutdown();
      keys.close();
      connection.close();
      allocator.close();
    }
  }

  /**
   * Until every request's completion has imported and freed its answer (the allocator is
   * closed next), at most {@link #CLOSE_WAIT_MILLIS}: the lookupers' close returns once every
   * request is answered, but the completions may still be on their way to this JVM.
   */
  private synchronized void awaitCompletions() {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(CLOSE_WAIT_MILLIS);
    while (batchers.values().stream().anyMatch(b -> b.inFlight > 0)) {
      long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
      if (left <= 0) {
        return;
      }
      try {
        wait(left);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }

  private static final long CLOSE_WAIT_MILLIS = 10_000;
  private static final AtomicInteger THREADS = new AtomicInteger();

  /**
   * The instance's completion thread. A completion that arrives after close (only if the
   * close gave up waiting) runs on the thread that delivers it: then it only frees the answer
   * and completes futures nobody waits for, nothing that can block.
   */
  private static ExecutorService completionThread(String table) {
    String name = "strom-lookup-" + table + "-" + THREADS.incrementAndGet();
    return new ThreadPoolExecutor(
        1,
        1,
        0,
        TimeUnit.MILLISECONDS,
        new LinkedBlockingQueue<>(),
        task -> {
          Thread thread = new Thread(task, name);
          thread.setDaemon(true);
          return thread;
        },
        // Not CallerRunsPolicy: it discards tasks once the executor is shut down.
        (task, executor) -> task.run());
  }
}
