package io.strom.flink.connector;

import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;

/** Options of {@code 'connector' = 'strom'} tables and of the Strom sink. */
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

  public static final ConfigOption<Boolean> SINK_IGNORE_DELETE =
      ConfigOptions.key("sink.ignore-delete")
          .booleanType()
          .defaultValue(false)
          .withDescription(
              "Drop DELETE and UPDATE_BEFORE rows instead of deleting keys of a primary-key table.");
}
