package io.strom.flink.lookup;

import java.util.Collection;
import java.util.concurrent.CompletableFuture;
import org.apache.flink.table.runtime.typeutils.RowDataSerializer;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.AsyncLookupFunction;
import org.apache.flink.table.functions.FunctionContext;

/**
 * The asynchronous lookup function (the default, {@code 'lookup.async' = 'true'}): each key
 * is sent on the subtask's DoExchange stream without waiting for earlier answers, and Flink's
 * future completes from the Rust client's answer (no thread per request). Flink's async
 * operator bounds how many are in flight ({@code table.exec.async-lookup.buffer-capacity}). A
 * lookup that failed on the node or its connection is sent again, batched with other keys,
 * up to {@code lookup.max-retries} times ({@link StromLookups#lookupAsync}).
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
    try {
      return lookups.lookupAsync(keyCopier.copy(keyRow), plan.maxRetries());
    } catch (RuntimeException e) {
      return CompletableFuture.failedFuture(e);
    }
  }

  @Override
  public void close() {
    if (lookups != null) {
      lookups.close();
      lookups = null;
    }
  }
}
