package io.strom.flink.connector;

import com.fasterxml.jackson.databind.JsonNode;
import io.strom.flink.client.StromConnection;
import io.strom.flink.client.StromException;
import io.strom.flink.lookup.LookupPlan;
import io.strom.flink.lookup.LookupSettings;
import io.strom.flink.source.SourcePlan;
import io.strom.flink.source.StartupMode;
import io.strom.flink.source.StromSource;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.source.LookupTableSource;
import org.apache.flink.table.connector.source.ScanTableSource;
import org.apache.flink.table.connector.source.SourceProvider;
import org.apache.flink.table.connector.source.abilities.SupportsAggregatePushDown;
import org.apache.flink.table.connector.source.abilities.SupportsLimitPushDown;
import org.apache.flink.table.connector.source.abilities.SupportsProjectionPushDown;
import org.apache.flink.table.expressions.AggregateExpression;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.types.RowKind;

/**
 * SELECT from a Strom table: the {@link StromSource} with what the planner pushed into it —
 * the projected columns (the node sends only those), the partitions left after partition
 * filters, and a LIMIT (each bucket's scan stops there; Flink still applies the limit).
 *
 * <p>In batch mode, {@code SELECT COUNT(*)} is answered by the node's count (records of a log
 * table, current rows of a primary-key table) without
 * reading a row.
 *
 * <p>The changelog mode the planner sees follows the table: insert-only for log tables,
 * {@code first_row} tables and every bounded read (a snapshot is all inserts); for other
 * primary-key tables {@code +I/-U/+U/-D}, without {@code -D} when deletes are ignored or
 * disabled, without {@code -U} when the changelog image is WAL.
 */
abstract class StromScanSource
    implements ScanTableSource,
        LookupTableSource,
        SupportsProjectionPushDown,
        SupportsLimitPushDown,
        SupportsAggregatePushDown {
  protected final StromTableAddress address;
  protected final RowType physicalType;
  protected final StromTableInfo table;
  protected final boolean bounded;
  protected final StartupMode startupMode;
  protected final long startupTimestampMillis;
  protected final long discoveryIntervalMillis;
  /** Lookup-join settings: async, cache, retries (the table's options and hints). */
  protected final LookupSettings lookupSettings;
  private int[] projection;
  private long limit = -1;
  /** The partitions to read (partition push-down of a bounded read); null: all. */
  protected Set<String> partitionFilter;
  /** A streaming read's filter on partition keys, evaluated on every partition found. */
  protected PartitionPredicate partitionPredicate;
  private boolean countPushedDown;
  /** The planner's type of the COUNT(*) row when the count is pushed down. */
  private RowType countType;

  StromScanSource(
      StromTableAddress address,
      RowType physicalType,
      StromTableInfo table,
      boolean bounded,
      StartupMode startupMode,
      long startupTimestampMillis,
      long discoveryIntervalMillis,
      LookupSettings lookupSettings) {
    this.address = address;
    this.lookupSettings = lookupSettings;
    this.physicalType = physicalType;
    this.table = table;
    this.bounded = bounded;
    this.startupMode = startupMode;
    this.startupTimestampMillis = startupTimestampMillis;
    this.discoveryIntervalMillis = discoveryIntervalMillis;
  }

  @Override
  public ChangelogMode getChangelogMode() {
    if (bounded || !table.primaryKeyTable() || table.firstRowMergeEngine()) {
      return ChangelogMode.insertOnly();
    }
    ChangelogMode.Builder mode = ChangelogMode.newBuilder().addContainedKind(RowKind.INSERT);
    if (!table.walChangelogImage()) {
      mode.addContainedKind(RowKind.UPDATE_BEFORE);
    }
    mode.addContainedKind(RowKind.UPDATE_AFTER);
    if (!table.deletesDropped()) {
      mode.addContainedKind(RowKind.DELETE);
    }
    return mode.build();
  }

  @Override
  public ScanRuntimeProvider getScanRuntimeProvider(ScanContext context) {
    if (countPushedDown) {
      return SourceProvider.of(
          new StromSource(
              new SourcePlan(address, countType, List.of(), false, false, 1, true, startupMode,
                  startupTimestampMillis, null, null, 0, -1, countRecords(), List.of())));
    }
    int[] fields = projection != null ? projection : allFields();
    List<String> names = new ArrayList<>();
    List<RowType.RowField> produced = new ArrayList<>();
    for (int field : fields) {
      RowType.RowField rowField = physicalType.getFields().get(field);
      names.add(rowField.getName());
      produced.add(rowField);
    }
    // COUNT(*) and friends project nothing; the node still needs a column to send row counts.
    List<String> requested = names.isEmpty() ? List.of(physicalType.getFieldNames().get(0)) : names;
    SourcePlan plan =
        new SourcePlan(
            address,
            new RowType(false, produced),
            requested,
            table.primaryKeyTable(),
            table.partitioned(),
            table.bucketCount(),
            bounded,
            startupMode,
            startupTimestampMillis,
            partitionFilter,
            partitionPredicate,
            discoveryIntervalMillis,
            limit,
            -1,
            table.primaryKey());
    return SourceProvider.of(new StromSource(plan));
  }

  private int[] allFields() {
    return java.util.stream.IntStream.range(0, physicalType.getFieldCount()).toArray();
  }

  /**
   * A lookup join ({@code JOIN t FOR SYSTEM_TIME AS OF ...}) of a primary-key table: on the
   * whole primary key (one row per key at most), or on the bucket key when it is a strict
   * prefix of the primary key (every row of the prefix); the partition keys of a partitioned
   * table must be among the join keys (each key is looked up in its partition).
   */
  @Override
  public LookupRuntimeProvider getLookupRuntimeProvider(LookupContext context) {
    if (!table.primaryKeyTable()) {
      throw new ValidationException(
          "Table " + address + " is a log table: lookup joins need a primary-key table");
    }
    List<String> keyNames = new ArrayList<>();
    for (int[] path : context.getKeys()) {
      if (path.length != 1) {
        throw new ValidationException("Table " + address + ": lookups on nested fields are not supported");
      }
      // Key indexes refer to the produced row: after projection push-down, the projected one.
      int field = projection != null ? projection[path[0]] : path[0];
      keyNames.add(physicalType.getFieldNames().get(field));
    }
    java.util.Set<String> joined = new java.util.HashSet<>(keyNames);
    java.util.Set<String> partitionKeys = new java.util.HashSet<>(table.partitionKeys());
    java.util.Set<String> primaryKey = new java.util.HashSet<>(table.primaryKey());
    java.util.Set<String> bucketKey = new java.util.HashSet<>(table.bucketKey());
    java.util.Set<String> prefixIndex = new java.util.HashSet<>(bucketKey);
    prefixIndex.addAll(partitionKeys);
    // The node looks rows up by an index the join keys cover: the primary key (at most one
    // row), else the bucket-key prefix plus partition keys (every row of the prefix). Join keys
    // beyond the index are compared on the rows the node returns.
    java.util.Set<String> index;
    boolean prefix;
    if (joined.containsAll(primaryKey)) {
      index = primaryKey;
      prefix = false;
    } else if (!bucketKey.isEmpty() && !bucketKey.containsAll(primaryKey) && joined.containsAll(prefixIndex)) {
      index = prefixIndex;
      prefix = true;
    } else {
      throw new ValidationException(
          "Table " + address + ": a lookup join must be on the primary key " + table.primaryKey()
              + " or on the bucket key " + table.bucketKey()
              + (partitionKeys.isEmpty() ? "" : " plus the partition keys " + table.partitionKeys())
              + " (a prefix lookup), possibly with more columns; got " + keyNames);
    }
    List<RowType.RowField> keyFields = new ArrayList<>();
    for (String name : keyNames) {
      keyFields.add(new RowType.RowField(name, physicalType.getTypeAt(physicalType.getFieldIndex(name))));
    }
    int[] indexKeys = java.util.stream.IntStream.range(0, keyNames.size()).filter(i -> index.contains(keyNames.get(i))).toArray();
    int[] extraKeys = java.util.stream.IntStream.range(0, keyNames.size()).filter(i -> !index.contains(keyNames.get(i))).toArray();
    if (lookupSettings.insertIfNotExists() && (prefix || extraKeys.length > 0)) {
      throw new ValidationException(
          "Table " + address + ": 'lookup.insert-if-not-exists' needs a lookup on exactly the primary key "
              + table.primaryKey() + "; got " + keyNames);
    }
    int[] partitionPositions = table.partitionKeys().stream().mapToInt(keyNames::indexOf).toArray();
    int[] fields = projection != null ? projection : allFields();
    List<RowType.RowField> produced = new ArrayList<>();
    for (int field : fields) {
      produced.add(physicalType.getFields().get(field));
    }
    // The extra key columns are asked from the node too; those the join does not read are
    // appended after the produced ones (and dropped before the rows reach Flink).
    List<RowType.RowField> requested = new ArrayList<>(produced);
    List<String> producedNames = produced.stream().map(RowType.RowField::getName).toList();
    int[] extraColumns = new int[extraKeys.length];
    for (int i = 0; i < extraKeys.length; i++) {
      String name = keyNames.get(extraKeys[i]);
      int at = producedNames.indexOf(name);
      if (at < 0) {
        at = requested.size();
        requested.add(physicalType.getFields().get(physicalType.getFieldIndex(name)));
      }
      extraColumns[i] = at;
    }
    LookupPlan plan =
        new LookupPlan(
            address,
            new RowType(false, keyFields),
            indexKeys,
            new RowType(false, produced),
            new RowType(false, requested),
            extraKeys,
            extraColumns,
            prefix,
            partitionPositions,
            lookupSettings.maxRetries(),
            lookupSettings.insertIfNotExists(),
            lookupSettings.answerTimeout());
    return lookupSettings.provider(plan);
  }

  @Override
  public boolean supportsNestedProjection() {
    return false;
  }

  @Override
  public void applyProjection(int[][] projectedFields, DataType producedDataType) {
    projection = Arrays.stream(projectedFields).mapToInt(path -> path[0]).toArray();
  }

  @Override
  public void applyLimit(long limit) {
    // Only bounded scans take it to the node: a streaming LIMIT must keep reading changes.
    if (bounded) {
      this.limit = limit;
    }
  }

  @Override
  public boolean applyAggregates(
      List<int[]> groupingSets, List<AggregateExpression> aggregates, DataType producedDataType) {
    // Only a global COUNT(*) of a whole bounded read: a log table read from its start (the
    // node's record count) or a primary-key table's snapshot (the node's row count).
    if (!bounded
        || limit >= 0
        || !(startupMode == StartupMode.FULL || startupMode == StartupMode.EARLIEST)
        || groupingSets.size() != 1
        || groupingSets.get(0).length != 0
        || aggregates.size() != 1) {
      return false;
    }
    AggregateExpression aggregate = aggregates.get(0);
    boolean countStar =
        aggregate.getFunctionDefinition().getClass().getSimpleName().equals("Count1AggFunction")
            && !aggregate.isDistinct()
            && aggregate.getFilterExpression().isEmpty();
    if (!countStar) {
      return false;
    }
    countPushedDown = true;
    countType = (RowType) producedDataType.getLogicalType();
    return true;
  }

  /**
   * The node's count of the partitions read: records of a log table, current rows of a
   * primary-key table (each partition's from one snapshot of it).
   */
  private long countRecords() {
    try (StromConnection connection = StromConnection.connect(address.endpoint())) {
      List<String> partitions = new ArrayList<>();
      if (partitionFilter != null) {
        partitions.addAll(partitionFilter);
      } else {
        partitions.add(null); // every partition (or the table)
      }
      long count = 0;
      for (String partition : partitions) {
        count += connection.count(address.database(), address.table(), partition, table.primaryKeyTable());
      }
      return count;
    } catch (StromException e) {
      throw new ValidationException("Cannot count Strom table " + address + ": " + e.getMessage(), e);
    }
  }

  /** Copies what the planner pushed into this source into {@code copy} (for {@code copy()}). */
  protected final <T extends StromScanSource> T withStateOf(T copy) {
    StromScanSource target = copy;
    target.projection = projection == null ? null : projection.clone();
    target.limit = limit;
    target.partitionFilter = partitionFilter == null ? null : new LinkedHashSet<>(partitionFilter);
    target.partitionPredicate = partitionPredicate;
    target.countPushedDown = countPushedDown;
    target.countType = countType;
    return copy;
  }

  @Override
  public String asSummaryString() {
    // EXPLAIN shows it: the partition predicate a streaming read applies to every partition.
    return "Strom(" + address + (partitionPredicate != null ? ", partitions where " + partitionPredicate : "") + ")";
  }
}
