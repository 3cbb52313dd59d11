package io.strom.flink.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.strom.flink.client.internal.Json;
import io.strom.flink.client.internal.NativeResource;
import io.strom.flink.client.internal.StromNative;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executor;
import java.util.concurrent.ForkJoinPool;
import org.apache.arrow.c.ArrowSchema;
import org.apache.arrow.c.Data;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * A connection to one Strom node through the Rust client, in-process. Thread-safe; every
 * writer, scanner and lookuper it opens shares its one HTTP/2 connection and the client's
 * small runtime. Catalog calls mirror the actions of the Flight contract (docs/protocol.md).
 *
 * <p>Arrow data the connection hands out (scan batches, lookup answers, schemas) is allocated
 * from its allocator: close every {@code VectorSchemaRoot} you receive.
 */
public final class StromConnection extends NativeResource {
  private final String endpoint;
  private final BufferAllocator allocator;
  private final boolean ownsAllocator;
  private final Executor callbackExecutor;

  private StromConnection(
      long handle,
      String endpoint,
      BufferAllocator allocator,
      boolean ownsAllocator,
      Executor callbackExecutor) {
    super(handle, StromNative::closeConnection);
    this.endpoint = endpoint;
    this.allocator = allocator;
    this.ownsAllocator = ownsAllocator;
    this.callbackExecutor = callbackExecutor;
  }

  /**
   * Connects to {@code grpc://host:port} and checks the contract version.
   *
   * @throws StromUnavailableException when the node cannot be reached
   * @throws StromFailedPreconditionException when it speaks another contract version
   */
  public static StromConnection connect(String endpoint) {
    return connect(endpoint, new RootAllocator(), true, ForkJoinPool.commonPool());
  }

  /**
   * Connects with the caller's allocator (not closed with the connection) and the executor
   * that completes the futures of async writes and lookups (stages you chain run there, never
   * on the client's own IO threads).
   */
  public static StromConnection connect(
      String endpoint, BufferAllocator allocator, Executor callbackExecutor) {
    return connect(endpoint, allocator, false, callbackExecutor);
  }

  private static StromConnection connect(
      String endpoint, BufferAllocator allocator, boolean owns, Executor executor) {
    try {
      long handle = StromNative.connect(endpoint);
      return new StromConnection(handle, endpoint, allocator, owns, executor);
    } catch (RuntimeException | Error e) {
      if (owns) {
        allocator.close();
      }
      throw e;
    }
  }

  public String endpoint() {
    return endpoint;
  }

  public BufferAllocator allocator() {
    return allocator;
  }

  Executor callbackExecutor() {
    return callbackExecutor;
  }

  /** The node's build version, as its handshake reported it. */
  public String serverVersion() {
    return StromNative.serverVersion(handle());
  }

  /** Any action of the contract with a JSON body; the JSON answer. */
  public JsonNode action(String actionType, JsonNode body) {
    return Json.parse(StromNative.action(handle(), actionType, Json.write(body)));
  }

  /** {@code health}: liveness, version and background failures of the node. */
  public JsonNode health() {
    return action("health", Json.object());
  }

  // --- databases -------------------------------------------------------------------------

  /** Whether it was created (false: it existed and {@code ifNotExists}). */
  public boolean createDatabase(String name, boolean ifNotExists) {
    ObjectNode body = Json.object().put("name", name).put("if_not_exists", ifNotExists);
    return action("create_database", body).path("created").asBoolean();
  }

  /** Whether it was dropped (false: absent and {@code ifExists}). */
  public boolean dropDatabase(String name, boolean ifExists, boolean cascade) {
    ObjectNode body =
        Json.object().put("name", name).put("if_exists", ifExists).put("cascade", cascade);
    return action("drop_database", body).path("dropped").asBoolean();
  }

  public List<String> listDatabases() {
    return strings(action("list_databases", Json.object()));
  }

  // --- tables ----------------------------------------------------------------------------

  /** Creates a table; the table as stored, with every default filled in (table info JSON). */
  public JsonNode createTable(TableSpec spec) {
    return action("create_table", spec.toJson());
  }

  public boolean dropTable(String database, String table, boolean ifExists) {
    ObjectNode body = tableRef(database, table).put("if_exists", ifExists);
    return action("drop_table", body).path("dropped").asBoolean();
  }

  public List<String> listTables(String database) {
    return strings(action("list_tables", Json.object().put("database", database)));
  }

  /** {@code get_table}: columns, keys, options, buckets, partitions, schema id. */
  public JsonNode getTable(String database, String table) {
    return action("get_table", tableRef(database, table));
  }

  /**
   * {@code table_stats}: what the node's scans of the table sent since it started
   * ({@code log_scans}, {@code snapshot_scans}, {@code messages_sent}, {@code rows_sent},
   * {@code bytes_sent}) — how a job's column pruning is checked at the node.
   */
  public JsonNode tableStats(String database, String table) {
    return action("table_stats", tableRef(database, table));
  }

  /**
   * {@code alter_table}: adds nullable columns (online, appended; name to SQL type) and sets
   * options; the table info after the change.
   */
  public JsonNode alterTable(
      String database, String table, Map<String, String> addColumns, Map<String, String> setOptions) {
    ObjectNode body = tableRef(database, table);
    if (!addColumns.isEmpty()) {
      ArrayNode columns = body.putArray("add_columns");
      addColumns.forEach((name, type) -> columns.addObject().put("name", name).put("type", type));
    }
    if (!setOptions.isEmpty()) {
      ObjectNode options = body.putObject("set_options");
      setOptions.forEach(options::put);
    }
    return action("alter_table", body);
  }

  /** The table's Arrow schema (GetSchema). */
  public Schema tableSchema(String database, String table) {
    try (ArrowSchema schema = ArrowSchema.allocateNew(allocator)) {
      StromNative.tableSchema(handle(), database, table, schema.memoryAddress());
      return Data.importSchema(allocator, schema, null);
    }
  }

  // --- partitions and offsets ------------------------------------------------------------

  public boolean createPartition(
      String database, String table, String partition, boolean ifNotExists) {
    ObjectNode body =
        tableRef(database, table).put("partition", partition).put("if_not_exists", ifNotExists);
    return action("create_partition", body).path("created").asBoolean();
  }

  public boolean dropPartition(String database, String table, String partition, boolean ifExists) {
    ObjectNode body =
        tableRef(database, table).put("partition", partition).put("if_exists", ifExists);
    return action("drop_partition", body).path("dropped").asBoolean();
  }

  /** Partitions in name order: {@code {name, partition_id, values, created_at_ms}} each. */
  public List<JsonNode> listPartitions(String database, String table) {
    List<JsonNode> partitions = new ArrayList<>();
    action("list_partitions", tableRef(database, table)).forEach(partitions::add);
    return partitions;
  }

  /** Earliest or latest (high watermark) offset of every bucket (of {@code partition}). */
  public List<BucketOffset> listOffsets(
      String database, String table, String partition, OffsetSpec spec) {
    ObjectNode body = tableRef(database, table);
    if (partition != null) {
      body.put("partition", partition);
    }
    body.set("spec", spec.toJson());
    List<BucketOffset> offsets = new ArrayList<>();
    for (JsonNode row : action("list_offsets", body)) {
      offsets.add(BucketOffset.fromJson(row));
    }
    return offsets;
  }

  // --- writers, scanners, lookupers ------------------------------------------------------

  /**
   * The node's count ({@code {"count": "rows" | "log"}}): with {@code rows}, the current rows
   * of a primary-key table (from one snapshot); without, the records stored (log tables: their
   * rows; primary-key tables: change records). {@code partition} null counts every partition.
   */
  public long count(String database, String table, String partition, boolean rows) {
    return StromNative.count(handle(), database, table, partition, rows);
  }

  /** An idempotent append writer on a log table. */
  public StromWriter appendWriter(String database, String table) {
    return writer(database, table, StromWriter.Options.append());
  }

  /** An upsert writer on a primary-key table: full rows, or a partial update of columns. */
  public StromWriter upsertWriter(String database, String table, List<String> targetColumns) {
    return writer(database, table, StromWriter.Options.upsert(targetColumns));
  }

  /** A delete writer on a primary-key table (batches hold the key columns). */
  public StromWriter deleteWriter(String database, String table) {
    return writer(database, table, StromWriter.Options.delete());
  }

  public StromWriter writer(String database, String table, StromWriter.Options options) {
    long writer = StromNative.openWriter(handle(), database, table, options.toJson());
    return new StromWriter(writer, this);
  }

  /** Starts a scan; request errors (unknown table, bad bucket) are thrown here. */
  public StromScanner scan(ScanRequest request) {
    long scanner = StromNative.openScanner(handle(), request.toJson());
    return new StromScanner(scanner, this);
  }

  /** A point lookuper: key batches hold the primary-key columns. */
  public StromLookuper lookuper(String database, String table) {
    return lookuper(database, table, new StromLookuper.Options());
  }

  public StromLookuper lookuper(String database, String table, StromLookuper.Options options) {
    long lookuper = StromNative.openLookuper(handle(), database, table, options.toJson());
    return new StromLookuper(lookuper, this);
  }

  /**
   * Closes the connection. Writers, scanners and lookupers opened from it keep working until
   * they are closed themselves; the allocator is closed if the connection created it.
   */
  @Override
  public void close() {
    super.close();
    if (ownsAllocator) {
      allocator.close();
    }
  }

  private static ObjectNode tableRef(String database, String table) {
    return Json.object().put("database", database).put("table", table);
  }

  private static List<String> strings(JsonNode array) {
    List<String> out = new ArrayList<>();
    if (array instanceof ArrayNode) {
      array.forEach(node -> out.add(node.asText()));
    }
    return out;
  }
}
