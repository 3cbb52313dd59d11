package io.strom.flink.catalog;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.strom.flink.client.StromAlreadyExistsException;
import io.strom.flink.client.StromConnection;
import io.strom.flink.client.StromException;
import io.strom.flink.client.StromFailedPreconditionException;
import io.strom.flink.client.StromNotFoundException;
import io.strom.flink.client.internal.Json;
import io.strom.flink.connector.StromDynamicTableFactory;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.catalog.AbstractCatalog;
import org.apache.flink.table.catalog.CatalogBaseTable;
import org.apache.flink.table.catalog.CatalogDatabase;
import org.apache.flink.table.catalog.CatalogDatabaseImpl;
import org.apache.flink.table.catalog.CatalogFunction;
import org.apache.flink.table.catalog.CatalogPartition;
import org.apache.flink.table.catalog.CatalogPartitionImpl;
import org.apache.flink.table.catalog.CatalogPartitionSpec;
import org.apache.flink.table.catalog.ObjectPath;
import org.apache.flink.table.catalog.ResolvedCatalogTable;
import org.apache.flink.table.catalog.TableChange;
import org.apache.flink.table.catalog.exceptions.CatalogException;
import org.apache.flink.table.catalog.exceptions.DatabaseAlreadyExistException;
import org.apache.flink.table.catalog.exceptions.DatabaseNotEmptyException;
import org.apache.flink.table.catalog.exceptions.DatabaseNotExistException;
import org.apache.flink.table.catalog.exceptions.FunctionNotExistException;
import org.apache.flink.table.catalog.exceptions.PartitionAlreadyExistsException;
import org.apache.flink.table.catalog.exceptions.PartitionNotExistException;
import org.apache.flink.table.catalog.exceptions.PartitionSpecInvalidException;
import org.apache.flink.table.catalog.exceptions.TableAlreadyExistException;
import org.apache.flink.table.catalog.exceptions.TableNotExistException;
import org.apache.flink.table.catalog.exceptions.TableNotPartitionedException;
import org.apache.flink.table.catalog.stats.CatalogColumnStatistics;
import org.apache.flink.table.catalog.stats.CatalogTableStatistics;
import org.apache.flink.table.expressions.Expression;
import org.apache.flink.table.factories.Factory;

/**
 * A Flink catalog over one Strom node: databases, tables and partitions live on the node, and
 * every DDL statement is one action of the Flight contract (docs/protocol.md). The catalog
 * keeps no state of its own, so two Flink clusters see the same tables.
 *
 * <p>Errors keep the node's message, which names the table, column or option at fault; the
 * client's typed exceptions become Flink's catalog exceptions where Flink has one.
 */
public class StromCatalog extends AbstractCatalog {
  private final String endpoint;
  private StromConnection connection;

  public StromCatalog(String name, String endpoint, String defaultDatabase) {
    super(name, defaultDatabase);
    this.endpoint = endpoint;
  }

  public String endpoint() {
    return endpoint;
  }

  @Override
  public Optional<Factory> getFactory() {
    // Tables of this catalog need no 'connector' option: the planner asks the catalog.
    return Optional.of(new StromDynamicTableFactory(endpoint));
  }

  @Override
  public void open() throws CatalogException {
    try {
      connection = StromConnection.connect(endpoint);
      // Like Fluss's default database: `USE CATALOG strom` must land somewhere that exists.
      connection.createDatabase(getDefaultDatabase(), true);
    } catch (StromException e) {
      close();
      throw new CatalogException(
          "Cannot open Strom catalog '" + getName() + "' at " + endpoint + ": " + e.getMessage(), e);
    }
  }

  @Override
  public void close() throws CatalogException {
    if (connection != null) {
      connection.close();
      connection = null;
    }
  }

  private StromConnection connection() {
    if (connection == null) {
      throw new CatalogException("Strom catalog '" + getName() + "' is not open");
    }
    return connection;
  }

  // --- databases -------------------------------------------------------------------------

  @Override
  public List<String> listDatabases() throws CatalogException {
    try {
      return connection().listDatabases();
    } catch (StromException e) {
      throw failure("list databases", e);
    }
  }

  @Override
  public CatalogDatabase getDatabase(String name)
      throws DatabaseNotExistException, CatalogException {
    if (!databaseExists(name)) {
      throw new DatabaseNotExistException(getName(), name);
    }
    return new CatalogDatabaseImpl(Map.of(), null);
  }

  @Override
  public boolean databaseExists(String name) throws CatalogException {
    return listDatabases().contains(name);
  }

  @Override
  public void createDatabase(String name, CatalogDatabase database, boolean ignoreIfExists)
      throws DatabaseAlreadyExistException, CatalogException {
    if (database != null && !database.getProperties().isEmpty()) {
      throw new ValidationException(
          "Strom databases have no properties; remove WITH " + database.getProperties().keySet());
    }
    ObjectNode body = Json.object().put("name", name).put("if_not_exists", ignoreIfExists);
    if (database != null && database.getComment() != null && !database.getComment().isEmpty()) {
      body.put("comment", database.getComment());
    }
    try {
      connection().action("create_database", body);
    } catch (StromAlreadyExistsException e) {
      throw new DatabaseAlreadyExistException(getName(), name, e);
    } catch (StromException e) {
      throw failure("create database " + name, e);
    }
  }

  @Override
  public void dropDatabase(String name, boolean ignoreIfNotExists, boolean cascade)
      throws DatabaseNotExistException, DatabaseNotEmptyException, CatalogException {
    try {
      connection().dropDatabase(name, ignoreIfNotExists, cascade);
    } catch (StromNotFoundException e) {
      throw new DatabaseNotExistException(getName(), name, e);
    } catch (StromFailedPreconditionException e) {
      // The node refuses to drop a database that holds tables unless cascade is set.
      throw new DatabaseNotEmptyException(getName(), name, e);
    } catch (StromException e) {
      throw failure("drop database " + name, e);
    }
  }

  @Override
  public void alterDatabase(String name, CatalogDatabase newDatabase, boolean ignoreIfNotExists) {
    throw new UnsupportedOperationException("Strom databases have no properties to alter");
  }

  // --- tables ----------------------------------------------------------------------------

  @Override
  public List<String> listTables(String database)
      throws DatabaseNotExistException, CatalogException {
    try {
      return connection().listTables(database);
    } catch (StromNotFoundException e) {
      throw new DatabaseNotExistException(getName(), database, e);
    } catch (StromException e) {
      throw failure("list tables of " + database, e);
    }
  }

  @Override
  public List<String> listViews(String database) throws DatabaseNotExistException {
    if (!databaseExists(database)) {
      throw new DatabaseNotExistException(getName(), database);
    }
    return List.of();
  }

  @Override
  public CatalogBaseTable getTable(ObjectPath path)
      throws TableNotExistException, CatalogException {
    return StromTableDefinitions.toCatalogTable(tableInfo(path));
  }

  /** The node's table info ({@code get_table}). */
  JsonNode tableInfo(ObjectPath path) throws TableNotExistException {
    try {
      return connection().getTable(path.getDatabaseName(), path.getObjectName());
    } catch (StromNotFoundException e) {
      throw new TableNotExistException(getName(), path, e);
    } catch (StromException e) {
      throw failure("get table " + path.getFullName(), e);
    }
  }

  @Override
  public boolean tableExists(ObjectPath path) throws CatalogException {
    try {
      tableInfo(path);
      return true;
    } catch (TableNotExistException e) {
      return false;
    }
  }

  @Override
  public void dropTable(ObjectPath path, boolean ignoreIfNotExists)
      throws TableNotExistException, CatalogException {
    try {
      connection().dropTable(path.getDatabaseName(), path.getObjectName(), ignoreIfNotExists);
    } catch (StromNotFoundException e) {
      throw new TableNotExistException(getName(), path, e);
    } catch (StromException e) {
      throw failure("drop table " + path.getFullName(), e);
    }
  }

  @Override
  public void renameTable(ObjectPath path, String newName, boolean ignoreIfNotExists) {
    throw new UnsupportedOperationException("Strom cannot rename tables yet");
  }

  @Override
  public void createTable(ObjectPath path, CatalogBaseTable table, boolean ignoreIfExists)
      throws TableAlreadyExistException, DatabaseNotExistException, CatalogException {
    if (!(table instanceof ResolvedCatalogTable)) {
      throw new ValidationException(
          "Strom stores tables only; " + path.getFullName() + " is a " + table.getTableKind());
    }
    try {
      connection()
          .createTable(
              StromTableDefinitions.toTableSpec(
                  path.getDatabaseName(),
                  path.getObjectName(),
                  (ResolvedCatalogTable) table,
                  ignoreIfExists));
    } catch (StromAlreadyExistsException e) {
      throw new TableAlreadyExistException(getName(), path, e);
    } catch (StromNotFoundException e) {
      // The only thing create_table can miss is the database.
      throw new DatabaseNotExistException(getName(), path.getDatabaseName(), e);
    } catch (StromException e) {
      throw failure("create table " + path.getFullName(), e);
    }
  }

  @Override
  public void alterTable(ObjectPath path, CatalogBaseTable newTable, boolean ignoreIfNotExists) {
    throw new UnsupportedOperationException(
        "Strom alters tables through ALTER TABLE ... ADD (column) and SET (options) only");
  }

  /**
   * ALTER TABLE: {@code ADD (col ...)} appends nullable columns online and {@code SET (...)}
   * changes the node's online options; both go to the node in one {@code alter_table}, which
   * validates them. Anything else (drop, rename, modify, reset) is refused naming the change.
   */
  @Override
  public void alterTable(
      ObjectPath path, CatalogBaseTable newTable, List<TableChange> changes, boolean ignoreIfNotExists)
      throws TableNotExistException, CatalogException {
    ObjectNode body =
        Json.object().put("database", path.getDatabaseName()).put("table", path.getObjectName());
    Map<String, String> setOptions = new LinkedHashMap<>();
    List<JsonNode> addColumns = new ArrayList<>();
    for (TableChange change : changes) {
      if (change instanceof TableChange.SetOption) {
        TableChange.SetOption set = (TableChange.SetOption) change;
        setOptions.put(set.getKey(), set.getValue());
      } else if (change instanceof TableChange.AddColumn) {
        TableChange.AddColumn add = (TableChange.AddColumn) change;
        if (add.getPosition() != null && !(add.getPosition() instanceof TableChange.After
            && isLastColumn(newTable, add))) {
          throw new ValidationException(
              "Strom appends new columns at the end; remove FIRST/AFTER from ADD "
                  + add.getColumn().getName());
        }
        addColumns.add(StromTableDefinitions.addColumnJson(path.getFullName(), add.getColumn()));
      } else {
        throw new UnsupportedOperationException(
            "Strom does not support this change of " + path.getFullName() + " yet: "
                + change.getClass().getSimpleName()
                + " (supported: ADD nullable columns at the end, SET online options)");
      }
    }
    if (setOptions.isEmpty() && addColumns.isEmpty()) {
      return;
    }
    if (!addColumns.isEmpty()) {
      body.putArray("add_columns").addAll(addColumns);
    }
    if (!setOptions.isEmpty()) {
      ObjectNode options = body.putObject("set_options");
      setOptions.forEach(options::put);
    }
    try {
      connection().action("alter_table", body);
    } catch (StromNotFoundException e) {
      if (!ignoreIfNotExists) {
        throw new TableNotExistException(getName(), path, e);
      }
    } catch (StromException e) {
      throw failure("alter table " + path.getFullName(), e);
    }
  }

  /** {@code ADD c AFTER last} is the same as appending. */
  private static boolean isLastColumn(CatalogBaseTable newTable, TableChange.AddColumn add) {
    List<?> columns = newTable.getUnresolvedSchema().getColumns();
    String name = add.getColumn().getName();
    return !columns.isEmpty()
        && ((org.apache.flink.table.api.Schema.UnresolvedColumn) columns.get(columns.size() - 1))
            .getName()
            .equals(name);
  }

  // --- partitions ------------------------------------------------------------------------

  @Override
  public List<CatalogPartitionSpec> listPartitions(ObjectPath path)
      throws TableNotExistException, TableNotPartitionedException, CatalogException {
    return listPartitions(path, null);
  }

  @Override
  public List<CatalogPartitionSpec> listPartitions(ObjectPath path, CatalogPartitionSpec filter)
      throws TableNotExistException, TableNotPartitionedException, CatalogException {
    requirePartitioned(path);
    List<CatalogPartitionSpec> specs = new ArrayList<>();
    try {
      for (JsonNode partition :
          connection().listPartitions(path.getDatabaseName(), path.getObjectName())) {
        Map<String, String> values = new LinkedHashMap<>();
        partition.path("values").fields().forEachRemaining(e -> values.put(e.getKey(), e.getValue().asText()));
        if (filter == null || values.entrySet().containsAll(filter.getPartitionSpec().entrySet())) {
          specs.add(new CatalogPartitionSpec(values));
        }
      }
    } catch (StromNotFoundException e) {
      throw new TableNotExistException(getName(), path, e);
    } catch (StromException e) {
      throw failure("list partitions of " + path.getFullName(), e);
    }
    return specs;
  }

  @Override
  public List<CatalogPartitionSpec> listPartitionsByFilter(ObjectPath path, List<Expression> filters) {
    // The planner falls back to listPartitions and filters itself.
    throw new UnsupportedOperationException("Strom lists partitions by spec, not by filter");
  }

  @Override
  public CatalogPartition getPartition(ObjectPath path, CatalogPartitionSpec spec)
      throws PartitionNotExistException, CatalogException {
    if (!partitionExists(path, spec)) {
      throw new PartitionNotExistException(getName(), path, spec);
    }
    return new CatalogPartitionImpl(Map.of(), null);
  }

  @Override
  public boolean partitionExists(ObjectPath path, CatalogPartitionSpec spec) throws CatalogException {
    try {
      return listPartitions(path).contains(spec);
    } catch (TableNotExistException | TableNotPartitionedException e) {
      return false;
    }
  }

  @Override
  public void createPartition(
      ObjectPath path, CatalogPartitionSpec spec, CatalogPartition partition, boolean ignoreIfExists)
      throws TableNotExistException, TableNotPartitionedException, PartitionSpecInvalidException,
          PartitionAlreadyExistsException, CatalogException {
    String name = partitionName(path, spec);
    try {
      connection().createPartition(path.getDatabaseName(), path.getObjectName(), name, ignoreIfExists);
    } catch (StromAlreadyExistsException e) {
      throw new PartitionAlreadyExistsException(getName(), path, spec, e);
    } catch (StromNotFoundException e) {
      throw new TableNotExistException(getName(), path, e);
    } catch (StromException e) {
      throw failure("create partition " + name + " of " + path.getFullName(), e);
    }
  }

  @Override
  public void dropPartition(ObjectPath path, CatalogPartitionSpec spec, boolean ignoreIfNotExists)
      throws PartitionNotExistException, CatalogException {
    String name;
    try {
      name = partitionName(path, spec);
    } catch (TableNotExistException | TableNotPartitionedException | PartitionSpecInvalidException e) {
      throw new PartitionNotExistException(getName(), path, spec, e);
    }
    try {
      connection().dropPartition(path.getDatabaseName(), path.getObjectName(), name, ignoreIfNotExists);
    } catch (StromNotFoundException e) {
      throw new PartitionNotExistException(getName(), path, spec, e);
    } catch (StromException e) {
      throw failure("drop partition " + name + " of " + path.getFullName(), e);
    }
  }

  @Override
  public void alterPartition(
      ObjectPath path, CatalogPartitionSpec spec, CatalogPartition newPartition, boolean ignore) {
    throw new UnsupportedOperationException("Strom partitions have no properties to alter");
  }

  /**
   * The node names a partition by its values joined with {@code $} in partition-key order
   * (docs/partitions.md), so the spec must give every partition key.
   */
  private String partitionName(ObjectPath path, CatalogPartitionSpec spec)
      throws TableNotExistException, TableNotPartitionedException, PartitionSpecInvalidException {
    List<String> keys = requirePartitioned(path);
    Map<String, String> values = spec.getPartitionSpec();
    if (!values.keySet().equals(new java.util.HashSet<>(keys))) {
      throw new PartitionSpecInvalidException(getName(), keys, path, spec);
    }
    List<String> parts = new ArrayList<>();
    keys.forEach(key -> parts.add(values.get(key)));
    return String.join("$", parts);
  }

  private List<String> requirePartitioned(ObjectPath path)
      throws TableNotExistException, TableNotPartitionedException {
    List<String> keys = StromTableDefinitions.partitionKeys(tableInfo(path));
    if (keys.isEmpty()) {
      throw new TableNotPartitionedException(getName(), path);
    }
    return keys;
  }

  // --- functions and statistics: not stored by Strom -------------------------------------

  @Override
  public List<String> listFunctions(String database) throws DatabaseNotExistException {
    if (!databaseExists(database)) {
      throw new DatabaseNotExistException(getName(), database);
    }
    return List.of();
  }

  @Override
  public CatalogFunction getFunction(ObjectPath path) throws FunctionNotExistException {
    throw new FunctionNotExistException(getName(), path);
  }

  @Override
  public boolean functionExists(ObjectPath path) {
    return false;
  }

  @Override
  public void createFunction(ObjectPath path, CatalogFunction function, boolean ignoreIfExists) {
    throw new UnsupportedOperationException("Strom does not store functions");
  }

  @Override
  public void alterFunction(ObjectPath path, CatalogFunction function, boolean ignoreIfNotExists) {
    throw new UnsupportedOperationException("Strom does not store functions");
  }

  @Override
  public void dropFunction(ObjectPath path, boolean ignoreIfNotExists) {
    throw new UnsupportedOperationException("Strom does not store functions");
  }

  @Override
  public CatalogTableStatistics getTableStatistics(ObjectPath path) {
    return CatalogTableStatistics.UNKNOWN;
  }

  @Override
  public CatalogColumnStatistics getTableColumnStatistics(ObjectPath path) {
    return CatalogColumnStatistics.UNKNOWN;
  }

  @Override
  public CatalogTableStatistics getPartitionStatistics(ObjectPath path, CatalogPartitionSpec spec) {
    return CatalogTableStatistics.UNKNOWN;
  }

  @Override
  public CatalogColumnStatistics getPartitionColumnStatistics(
      ObjectPath path, CatalogPartitionSpec spec) {
    return CatalogColumnStatistics.UNKNOWN;
  }

  @Override
  public void alterTableStatistics(ObjectPath path, CatalogTableStatistics stats, boolean ignore) {
    throw new UnsupportedOperationException("Strom does not store statistics");
  }

  @Override
  public void alterTableColumnStatistics(
      ObjectPath path, CatalogColumnStatistics stats, boolean ignore) {
    throw new UnsupportedOperationException("Strom does not store statistics");
  }

  @Override
  public void alterPartitionStatistics(
      ObjectPath path, CatalogPartitionSpec spec, CatalogTableStatistics stats, boolean ignore) {
    throw new UnsupportedOperationException("Strom does not store statistics");
  }

  @Override
  public void alterPartitionColumnStatistics(
      ObjectPath path, CatalogPartitionSpec spec, CatalogColumnStatistics stats, boolean ignore) {
    throw new UnsupportedOperationException("Strom does not store statistics");
  }

  /**
   * Any other node error: a {@link CatalogException} whose message is the node's (it names the
   * option, column or table), with the typed client exception as its cause.
   */
  private CatalogException failure(String what, StromException e) {
    return new CatalogException(
        "Strom catalog '" + getName() + "' could not " + what + ": " + e.getMessage(), e);
  }
}
