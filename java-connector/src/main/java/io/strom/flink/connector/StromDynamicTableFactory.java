package io.strom.flink.connector;

import io.strom.flink.client.StromConnection;
import io.strom.flink.client.StromException;
import io.strom.flink.lookup.LookupSettings;
import io.strom.flink.source.StartupMode;
import java.time.Duration;
import org.apache.flink.table.connector.source.lookup.LookupOptions;
import java.time.LocalDateTime;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.HashSet;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.apache.flink.api.common.RuntimeExecutionMode;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.ExecutionOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.api.config.TableConfigOptions;
import org.apache.flink.table.catalog.ObjectIdentifier;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.factories.DynamicTableSinkFactory;
import org.apache.flink.table.factories.DynamicTableSourceFactory;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.types.logical.RowType;

/**
 * {@code 'connector' = 'strom'}: a Strom table declared outside the catalog, with {@code
 * 'endpoint'}, {@code 'database'} and {@code 'table'}; and, built by {@link
 * io.strom.flink.catalog.StromCatalog#getFactory()} with the catalog's endpoint, the factory of
 * every table of a Strom catalog (whose options are the node's table options: only the {@code
 * sink.*} options it uses are checked here, the node has validated the rest).
 */
public class StromDynamicTableFactory implements DynamicTableSourceFactory, DynamicTableSinkFactory {
  public static final String IDENTIFIER = "strom";

  /** Set when the catalog created this factory; null when Flink discovered it by 'connector'. */
  private final String catalogEndpoint;

  public StromDynamicTableFactory() {
    this(null);
  }

  public StromDynamicTableFactory(String catalogEndpoint) {
    this.catalogEndpoint = catalogEndpoint;
  }

  @Override
  public String factoryIdentifier() {
    return IDENTIFIER;
  }

  @Override
  public Set<ConfigOption<?>> requiredOptions() {
    return Set.of(StromConnectorOptions.ENDPOINT, StromConnectorOptions.DATABASE, StromConnectorOptions.TABLE);
  }

  @Override
  public Set<ConfigOption<?>> optionalOptions() {
    return Set.of(
        StromConnectorOptions.SINK_BUFFER_FLUSH_MAX_ROWS,
        StromConnectorOptions.SINK_BUFFER_FLUSH_INTERVAL,
        StromConnectorOptions.SINK_IGNORE_DELETE,
        StromConnectorOptions.SCAN_STARTUP_MODE,
        StromConnectorOptions.SCAN_STARTUP_TIMESTAMP,
        StromConnectorOptions.SCAN_PARTITION_DISCOVERY_INTERVAL,
        StromConnectorOptions.LOOKUP_ASYNC,
        StromConnectorOptions.LOOKUP_INSERT_IF_NOT_EXISTS,
        StromConnectorOptions.LOOKUP_ANSWER_TIMEOUT,
        LookupOptions.CACHE_TYPE,
        LookupOptions.PARTIAL_CACHE_EXPIRE_AFTER_ACCESS,
        LookupOptions.PARTIAL_CACHE_EXPIRE_AFTER_WRITE,
        LookupOptions.PARTIAL_CACHE_CACHE_MISSING_KEY,
        LookupOptions.PARTIAL_CACHE_MAX_ROWS,
        LookupOptions.MAX_RETRIES);
  }

  @Override
  public DynamicTableSource createDynamicTableSource(Context context) {
    StromTableAddress address = resolve(context);
    ReadableConfig options = Configuration.fromMap(context.getCatalogTable().getOptions());
    boolean bounded =
        context.getConfiguration().get(ExecutionOptions.RUNTIME_MODE) == RuntimeExecutionMode.BATCH;
    StartupMode startupMode;
    try {
      startupMode = StartupMode.parse(options.get(StromConnectorOptions.SCAN_STARTUP_MODE));
    } catch (IllegalArgumentException e) {
      throw new ValidationException("Table " + address + ": " + e.getMessage());
    }
    long startupTimestamp = -1;
    if (startupMode == StartupMode.TIMESTAMP) {
      startupTimestamp = startupTimestamp(address, options, context.getConfiguration());
    }
    StromTableInfo table = tableInfo(address);
    if (bounded && table.primaryKeyTable() && startupMode != StartupMode.FULL) {
      throw new ValidationException(
          "Table " + address + ": a batch read of a primary-key table reads its snapshot, so"
              + " 'scan.startup.mode' must be 'full' there (got '"
              + startupMode.name().toLowerCase(Locale.ROOT) + "'); read its changelog in streaming mode");
    }
    Duration discovery = options.get(StromConnectorOptions.SCAN_PARTITION_DISCOVERY_INTERVAL);
    LookupSettings lookup = LookupSettings.from(options);
    if (!bounded && table.partitioned()) {
      return new StromStreamingPartitionedSource(
          address,
          (RowType) context.getPhysicalRowDataType().getLogicalType(),
          table,
          startupMode,
          startupTimestamp,
          discovery.toMillis(),
          lookup);
    }
    return new StromDynamicTableSource(
        address,
        (RowType) context.getPhysicalRowDataType().getLogicalType(),
        table,
        bounded,
        startupMode,
        startupTimestamp,
        discovery.toMillis(),
        lookup);
  }

  /** {@code scan.startup.timestamp}: epoch milliseconds, or a local date-time in the session zone. */
  private static long startupTimestamp(
      StromTableAddress address, ReadableConfig options, ReadableConfig session) {
    String value = options.get(StromConnectorOptions.SCAN_STARTUP_TIMESTAMP);
    if (value == null) {
      throw new ValidationException(
          "Table " + address + ": 'scan.startup.mode' = 'timestamp' needs 'scan.startup.timestamp'"
              + " (epoch milliseconds or 'yyyy-MM-dd HH:mm:ss')");
    }
    String trimmed = value.trim();
    if (trimmed.matches("\\d+")) {
      return Long.parseLong(trimmed);
    }
    try {
      LocalDateTime local = LocalDateTime.parse(trimmed, DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss"));
      String zone = session.get(TableConfigOptions.LOCAL_TIME_ZONE);
      ZoneId zoneId =
          TableConfigOptions.LOCAL_TIME_ZONE.defaultValue().equals(zone) ? ZoneId.systemDefault() : ZoneId.of(zone);
      return local.atZone(zoneId).toInstant().toEpochMilli();
    } catch (DateTimeParseException e) {
      throw new ValidationException(
          "Table " + address + ": 'scan.startup.timestamp' = '" + value + "' is neither epoch"
              + " milliseconds nor 'yyyy-MM-dd HH:mm:ss'");
    }
  }

  /** The table as the node has it now (kind, partitions, buckets, changelog options). */
  private static StromTableInfo tableInfo(StromTableAddress address) {
    try (StromConnection connection = StromConnection.connect(address.endpoint())) {
      return StromTableInfo.fromJson(connection.getTable(address.database(), address.table()));
    } catch (StromException e) {
      throw new ValidationException(
          "Cannot read Strom table " + address + ": " + e.getMessage(), e);
    }
  }

  @Override
  public DynamicTableSink createDynamicTableSink(Context context) {
    StromTableAddress address = resolve(context);
    ReadableConfig options = Configuration.fromMap(context.getCatalogTable().getOptions());
    int maxRows = options.get(StromConnectorOptions.SINK_BUFFER_FLUSH_MAX_ROWS);
    if (maxRows < 1) {
      throw new ValidationException(
          "'" + StromConnectorOptions.SINK_BUFFER_FLUSH_MAX_ROWS.key() + "' must be >= 1, got " + maxRows);
    }
    Duration flushInterval = options.get(StromConnectorOptions.SINK_BUFFER_FLUSH_INTERVAL);
    if (flushInterval.isNegative()) {
      throw new ValidationException(
          "'" + StromConnectorOptions.SINK_BUFFER_FLUSH_INTERVAL.key() + "' must not be negative, got "
              + flushInterval);
    }
    return new StromDynamicTableSink(
        address,
        context.getPhysicalRowDataType(),
        context.getPrimaryKeyIndexes(),
        maxRows,
        flushInterval.toMillis(),
        options.get(StromConnectorOptions.SINK_IGNORE_DELETE));
  }

  /** Where the table lives, after checking the options of either kind of table. */
  StromTableAddress resolve(Context context) {
    if (catalogEndpoint == null) {
      FactoryUtil.TableFactoryHelper helper = FactoryUtil.createTableFactoryHelper(this, context);
      helper.validate();
      ReadableConfig options = helper.getOptions();
      return new StromTableAddress(
          options.get(StromConnectorOptions.ENDPOINT),
          options.get(StromConnectorOptions.DATABASE),
          options.get(StromConnectorOptions.TABLE));
    }
    validateClientOptions(context.getCatalogTable().getOptions());
    ObjectIdentifier id = context.getObjectIdentifier();
    return new StromTableAddress(catalogEndpoint, id.getDatabaseName(), id.getObjectName());
  }

  /**
   * The node stores {@code sink.*} and {@code scan.*} options for the clients that use them
   * without checking them (docs/protocol.md): this client refuses those it does not know,
   * naming them, so a typo never silently means the default.
   */
  private void validateClientOptions(Map<String, String> options) {
    Set<String> known = new HashSet<>();
    optionalOptions().forEach(option -> known.add(option.key()));
    for (String key : options.keySet()) {
      if ((key.startsWith("sink.") || key.startsWith("scan.") || key.startsWith("lookup.")) && !known.contains(key)) {
        throw new ValidationException(
            "Unsupported option '" + key + "' of a Strom table. Supported source, sink and lookup options: " + known);
      }
    }
  }
}
