package io.strom.flink.catalog;

import java.util.Set;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.table.catalog.Catalog;
import org.apache.flink.table.catalog.CommonCatalogOptions;
import org.apache.flink.table.factories.CatalogFactory;
import org.apache.flink.table.factories.FactoryUtil;

/**
 * {@code CREATE CATALOG strom WITH ('type' = 'strom', 'endpoint' = 'grpc://host:port'
 * [, 'default-database' = 'strom'])}. Found by Flink through META-INF/services.
 */
public class StromCatalogFactory implements CatalogFactory {
  public static final String IDENTIFIER = "strom";

  public static final ConfigOption<String> ENDPOINT =
      ConfigOptions.key("endpoint")
          .stringType()
          .noDefaultValue()
          .withDescription("The Strom node, grpc://host:port.");

  /** As in Fluss, whose catalog's default database is named after the system. */
  public static final ConfigOption<String> DEFAULT_DATABASE =
      ConfigOptions.key(CommonCatalogOptions.DEFAULT_DATABASE_KEY)
          .stringType()
          .defaultValue("strom")
          .withDescription(
              "The database USE CATALOG switches to; created on the node when missing.");

  @Override
  public String factoryIdentifier() {
    return IDENTIFIER;
  }

  @Override
  public Set<ConfigOption<?>> requiredOptions() {
    return Set.of(ENDPOINT);
  }

  @Override
  public Set<ConfigOption<?>> optionalOptions() {
    return Set.of(DEFAULT_DATABASE);
  }

  @Override
  public Catalog createCatalog(Context context) {
    FactoryUtil.CatalogFactoryHelper helper = FactoryUtil.createCatalogFactoryHelper(this, context);
    helper.validate();
    return new StromCatalog(
        context.getName(),
        helper.getOptions().get(ENDPOINT),
        helper.getOptions().get(DEFAULT_DATABASE));
  }
}
