package io.strom.flink.lookup;

/**
 * The async lookup function's request and key counters ({@link StromLookups}, package-private),
 * for the benches in other packages: keys per request says how well lookups were batched.
 */
public final class LookupCounters {
  private LookupCounters() {}

  /** Async lookup requests sent by this JVM so far. */
  public static long requests() {
    return StromLookups.REQUESTS_SENT.get();
  }

  /** Keys those requests carried. */
  public static long keys() {
    return StromLookups.KEYS_SENT.get();
  }
}
