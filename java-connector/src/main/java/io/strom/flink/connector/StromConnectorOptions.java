package io.strom.flink.connector;

import java.time.Duration;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;

/** Options of {@code 'connector' = 'strom'} tables, of the Strom source and of the sink. */
public final class StromConnectorOptions {
  private StromConnectorOptions() {}

  public static final ConfigOption<String> ENDPOINT =
      ConfigOptions.key("endpoint")
          .stringType()
          .noDefaultValue()
          .withDescription("The Strom node, grpc://host:port (implied inside a Strom catalog).");

  public static final ConfigOption<String> DATABASE =
      ConfigOptions.key("database")
          .stringType()
          .noDefaultValue()
          .withDescription("The Strom database of the table (implied inside a Strom catalog).");

  public static final ConfigOption<String> TABLE =
      ConfigOptions.key("table")
          .stringType()
          .noDefaultValue()
          .withDescription("The Strom table (implied inside a Strom catalog).");

  public static final ConfigOption<Integer> SINK_BUFFER_FLUSH_MAX_ROWS =
      ConfigOptions.key("sink.buffer-flush.max-rows")
          .intType()
          .defaultValue(4096)
          .withDescription(
              "Rows buffered per sink subtask before they are sent as one Arrow batch; every"
                  + " checkpoint also sends what is buffered and waits for the node's ack.");

  public static final ConfigOption<Duration> SINK_BUFFER_FLUSH_INTERVAL =
      ConfigOptions.key("sink.buffer-flush.interval")
          .durationType()
          .defaultValue(Duration.ofMillis(100))
          .withDescription(
              "Longest time a row waits in a sink subtask's buffer before it is sent, when"
                  + " 'sink.buffer-flush.max-rows' is not reached first (a slow stream still"
                  + " reaches the node, and its readers, within this time); 0 sends only on"
                  + " full buffers and checkpoints.");

  public static final ConfigOption<Boolean> SINK_IGNORE_DELETE =
      ConfigOptions.key("sink.ignore-delete")
          .booleanType()
          .defaultValue(false)
          .withDescription(
              "Drop DELETE and UPDATE_BEFORE rows instead of deleting keys of a primary-key table.");

  public static final ConfigOption<Boolean> LOOKUP_ASYNC =
      ConfigOptions.key("lookup.async")
          .booleanType()
          .defaultValue(true)
          .withDescription(
              "Lookup joins use the asynchronous lookup function (many keys in flight on one"
                  + " DoExchange stream per subtask); false: the synchronous one.");

  public static final ConfigOption<Duration> LOOKUP_ANSWER_TIMEOUT =
      ConfigOptions.key("lookup.answer-timeout")
          .durationType()
          .defaultValue(Duration.ofSeconds(30))
          .withDescription(
              "Longest wait for the node's answer to a batch of lookup keys. Past it the"
                  + " subtask's lookup stream is dropped and the keys unanswered on it are sent"
                  + " again on a new one; a node that keeps not answering fails the lookups"
                  + " (then 'lookup.max-retries' applies). One timer per stream, not per row:"
                  + " with it, Flink's per-row timer can be turned off"
                  + " ('table.exec.async-lookup.timeout' = '0'), which speeds up async lookup"
                  + " joins. 0 waits forever.");

  public static final ConfigOption<Boolean> LOOKUP_INSERT_IF_NOT_EXISTS =
      ConfigOptions.key("lookup.insert-if-not-exists")
          .booleanType()
          .defaultValue(false)
          .withDescription(
              "A lookup that finds no row inserts the key (with the next id of the table's"
                  + " 'auto-increment.fields' column, the other columns null) and returns the new"
                  + " row, in the same round trip. Full-key lookups only.");

  public static final ConfigOption<String> SCAN_STARTUP_MODE =
      ConfigOptions.key("scan.startup.mode")
          .stringType()
          .defaultValue("full")
          .withDescription(
              "Where a streaming read starts: 'full' (primary-key tables: the snapshot, then the"
                  + " changelog from it; log tables: the earliest offset), 'earliest', 'latest',"
                  + " 'timestamp' (with 'scan.startup.timestamp').");

  public static final ConfigOption<String> SCAN_STARTUP_TIMESTAMP =
      ConfigOptions.key("scan.startup.timestamp")
          .stringType()
          .noDefaultValue()
          .withDescription(
              "For 'scan.startup.mode' = 'timestamp': milliseconds since the epoch, or"
                  + " 'yyyy-MM-dd HH:mm:ss' in the session time zone ('table.local-time-zone').");

  public static final ConfigOption<Duration> SCAN_PARTITION_DISCOVERY_INTERVAL =
      ConfigOptions.key("scan.partition.discovery.interval")
          .durationType()
          .defaultValue(Duration.ofMinutes(1))
          .withDescription(
              "How often a streaming read of a partitioned table looks for new partitions (read"
                  + " from their start) and dropped ones (retired); 0 turns discovery off.");
}
