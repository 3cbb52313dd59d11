package io.strom.flink.lookup;

import io.strom.flink.connector.StromConnectorOptions;
import java.io.Serializable;
import java.time.Duration;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.connector.source.LookupTableSource.LookupRuntimeProvider;
import org.apache.flink.table.connector.source.lookup.AsyncLookupFunctionProvider;
import org.apache.flink.table.connector.source.lookup.LookupFunctionProvider;
import org.apache.flink.table.connector.source.lookup.LookupOptions;
import org.apache.flink.table.connector.source.lookup.PartialCachingAsyncLookupProvider;
import org.apache.flink.table.connector.source.lookup.PartialCachingLookupProvider;
import org.apache.flink.table.connector.source.lookup.cache.DefaultLookupCache;

/**
 * How a lookup join reads a Strom table, from its options (stored with the table or given as
 * hints): {@code lookup.async} (default true), Flink's standard cache options ({@code
 * lookup.cache} = NONE | PARTIAL with {@code lookup.partial-cache.*}), {@code
 * lookup.max-retries}, {@code lookup.insert-if-not-exists} and {@code lookup.answer-timeout}.
 */
public final class LookupSettings implements Serializable {
  private static final long serialVersionUID = 1L;

  private final boolean async;
  private final boolean insertIfNotExists;
  private final int maxRetries;
  private final Duration answerTimeout;
  /** The cache, when {@code lookup.cache} = PARTIAL (a serializable template, built per task). */
  private final DefaultLookupCache cache;

  private LookupSettings(
      boolean async, boolean insertIfNotExists, int maxRetries, Duration answerTimeout, DefaultLookupCache cache) {
    this.async = async;
    this.insertIfNotExists = insertIfNotExists;
    this.maxRetries = maxRetries;
    this.answerTimeout = answerTimeout;
    this.cache = cache;
  }

  public static LookupSettings from(ReadableConfig options) {
    DefaultLookupCache cache = null;
    if (options.get(LookupOptions.CACHE_TYPE) == LookupOptions.LookupCacheType.PARTIAL) {
      cache = DefaultLookupCache.fromConfig(options);
    } else if (options.get(LookupOptions.CACHE_TYPE) == LookupOptions.LookupCacheType.FULL) {
      throw new org.apache.flink.table.api.ValidationException(
          "'lookup.cache' = 'FULL' is not supported by Strom tables: use 'PARTIAL' (the node answers lookups directly)");
    }
    // Flink's duration parser already refuses negative values, naming the option.
    Duration answerTimeout = options.get(StromConnectorOptions.LOOKUP_ANSWER_TIMEOUT);
    return new LookupSettings(
        options.get(StromConnectorOptions.LOOKUP_ASYNC),
        options.get(StromConnectorOptions.LOOKUP_INSERT_IF_NOT_EXISTS),
        options.get(LookupOptions.MAX_RETRIES),
        answerTimeout,
        cache);
  }

  public boolean insertIfNotExists() {
    return insertIfNotExists;
  }

  public int maxRetries() {
    return maxRetries;
  }

  public Duration answerTimeout() {
    return answerTimeout;
  }

  /** The runtime provider of a lookup join with this plan. */
  public LookupRuntimeProvider provider(LookupPlan plan) {
    if (async) {
      StromAsyncLookupFunction function = new StromAsyncLookupFunction(plan);
      return cache == null ? AsyncLookupFunctionProvider.of(function) : PartialCachingAsyncLookupProvider.of(function, cache);
    }
    StromLookupFunction function = new StromLookupFunction(plan);
    return cache == null ? LookupFunctionProvider.of(function) : PartialCachingLookupProvider.of(function, cache);
  }
}
