package io.strom.flink.connector;

import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.catalog.ObjectIdentifier;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.factories.DynamicTableSinkFactory;
import org.apache.flink.table.factories.DynamicTableSourceFactory;
import org.apache.flink.table.factories.FactoryUtil;

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
    return Set.of(StromConnectorOptions.SINK_BUFFER_FLUSH_MAX_ROWS, StromConnectorOptions.SINK_IGNORE_DELETE);
  }

  @Override
  public DynamicTableSource createDynamicTableSource(Context context) {
    StromTableAddress address = resolve(context);
    throw new ValidationException(
        "Reading Strom table " + address + " from Flink is not supported by this connector"
            + " version yet (the source is the next slice); writing with INSERT INTO works.");
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
    return new StromDynamicTableSink(
        address,
        context.getPhysicalRowDataType(),
        context.getPrimaryKeyIndexes(),
        maxRows,
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
   * The node stores {@code sink.*} options for the clients that use them without checking
   * them (docs/protocol.md): this client refuses those it does not know, naming them, so a typo
   * never silently means the default.
   */
  private void validateClientOptions(Map<String, String> options) {
    Set<String> known = new HashSet<>();
    optionalOptions().forEach(option -> known.add(option.key()));
    for (String key : options.keySet()) {
      if (key.startsWith("sink.") && !known.contains(key)) {
        throw new ValidationException(
            "Unsupported option '" + key + "' of a Strom table. Supported sink options: " + known);
      }
    }
  }
}
