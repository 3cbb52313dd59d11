package io.strom.flink.lookup;

import java.io.IOException;
import java.util.Collection;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.LookupFunction;

/**
 * The synchronous lookup function ({@code 'lookup.async' = 'false'}): one key at a time, the
 * task thread waiting for each answer. Flink retries a failed lookup itself up to {@code
 * lookup.max-retries} times ({@link LookupFunction} does not; this does, then fails the task).
 */
public final class StromLookupFunction extends LookupFunction {
  private static final long serialVersionUID = 1L;

  private final LookupPlan plan;
  private transient StromLookups lookups;

  public StromLookupFunction(LookupPlan plan) {
    this.plan = plan;
  }

  @Override
  public void open(FunctionContext context) {
    lookups = new StromLookups(plan);
  }

  @Override
  public Collection<RowData> lookup(RowData keyRow) throws IOException {
    for (int attempt = 0; ; attempt++) {
      try {
        return lookups.lookup(keyRow);
      } catch (RuntimeException e) {
        if (attempt >= plan.maxRetries() || !StromLookups.retriable(e)) {
          throw new IOException("Strom lookup in " + plan.address() + " failed for key " + keyRow, e);
        }
      }
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
