package io.strom.flink.lookup;

import java.util.Collection;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import org.apache.flink.table.runtime.typeutils.RowDataSerializer;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.AsyncLookupFunction;
import org.apache.flink.table.functions.FunctionContext;

/**
 * The asynchronous lookup function (the default, {@code 'lookup.async' = 'true'}): each key
 * is sent on the subtask's DoExchange stream without waiting for earlier answers, and Flink's
 * future completes from the Rust client's answer (no thread per request). Flink's async
 * operator bounds how many are in flight ({@code table.exec.async-lookup.buffer-capacity}). A
 * lookup that failed on the node or its connection is sent again (from the thread that saw
 * the failure: {@link StromLookups} is synchronized) up to {@code lookup.max-retries} times.
 */
public final class StromAsyncLookupFunction extends AsyncLookupFunction {
  private static final long serialVersionUID = 1L;

  private final LookupPlan plan;
  private transient StromLookups lookups;
  private transient RowDataSerializer keyCopier;

  public StromAsyncLookupFunction(LookupPlan plan) {
    this.plan = plan;
  }

  @Override
  public void open(FunctionContext context) {
    lookups = new StromLookups(plan);
    keyCopier = new RowDataSerializer(plan.keyType());
  }

  @Override
  public CompletableFuture<Collection<RowData>> asyncLookup(RowData keyRow) {
    // Flink may reuse the key row once this returns, while the key may wait to be batched or
    // be sent again by a retry: one copy serves both.
    return attempt(keyCopier.copy(keyRow), 0);
  }

  private CompletableFuture<Collection<RowData>> attempt(RowData key, int attempt) {
    CompletableFuture<Collection<RowData>> answer;
    try {
      answer = lookups.lookupAsync(key);
    } catch (RuntimeException e) {
      answer = CompletableFuture.failedFuture(e);
    }
    if (attempt >= plan.maxRetries()) {
      return answer;
    }
    return answer.exceptionallyCompose(
        e -> StromLookups.retriable(unwrap(e)) ? attempt(key, attempt + 1) : CompletableFuture.failedFuture(e));
  }

  private static Throwable unwrap(Throwable e) {
    return e instanceof CompletionException && e.getCause() != null ? e.getCause() : e;
  }

  @Override
  public void close() {
    if (lookups != null) {
      lookups.close();
      lookups = null;
    }
  }
}
