package io.strom.flink.client;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.strom.flink.client.internal.Json;
import java.util.List;

/**
 * A scan ticket of the contract: a log scan ({@code {"scan": "log", ...}}; for a primary-key
 * table its changelog with {@code _change_type}) or a snapshot scan of a primary-key table's
 * current rows ({@code {"scan": "snapshot", ...}}).
 */
public final class ScanRequest {
  private final ObjectNode ticket;

  private ScanRequest(String kind, String database, String table) {
    this.ticket = Json.object().put("scan", kind).put("database", database).put("table", table);
  }

  /** A log scan, bounded by the high watermark at the time of the call unless {@link #follow}. */
  public static ScanRequest log(String database, String table) {
    return new ScanRequest("log", database, table);
  }

  /** The current rows of a primary-key table, from one consistent snapshot. */
  public static ScanRequest snapshot(String database, String table) {
    return new ScanRequest("snapshot", database, table);
  }

  /** Where a log scan starts (default earliest). */
  public ScanRequest from(OffsetSpec start) {
    ticket.set("from", start.toJson());
    return this;
  }

  /** Where a log scan ends: {@link OffsetSpec#latest()} or {@link OffsetSpec#offset(long)}. */
  public ScanRequest to(OffsetSpec end) {
    ticket.set("to", end.toJson());
    return this;
  }

  /** Keep streaming new data as it commits (a log scan that never ends on its own). */
  public ScanRequest follow() {
    ticket.put("follow", true);
    return this;
  }

  public ScanRequest partition(String partition) {
    ticket.put("partition", partition);
    return this;
  }

  public ScanRequest buckets(int... buckets) {
    ArrayNode array = ticket.putArray("buckets");
    for (int bucket : buckets) {
      array.add(bucket);
    }
    return this;
  }

  /** Projection: only these columns cross the wire (the node prunes them). */
  public ScanRequest columns(List<String> columns) {
    ArrayNode array = ticket.putArray("columns");
    columns.forEach(array::add);
    return this;
  }

  public ScanRequest limit(long rows) {
    ticket.put("limit", rows);
    return this;
  }

  /**
   * A snapshot scan of one bucket resumed after the primary key {@code keyJson} (a JSON array of
   * the key's values in declared key order): only rows whose key comes after it.
   */
  public ScanRequest afterKey(String keyJson) {
    ticket.set("after_key", keyArray(keyJson));
    return this;
  }

  /**
   * A bounded changelog scan of one bucket keeping only changes of keys at or before {@code
   * keyJson}: what happened to the rows an interrupted snapshot read had delivered.
   */
  public ScanRequest keysUpto(String keyJson) {
    ticket.set("keys_upto", keyArray(keyJson));
    return this;
  }

  private static com.fasterxml.jackson.databind.JsonNode keyArray(String keyJson) {
    com.fasterxml.jackson.databind.JsonNode key = Json.parse(keyJson);
    if (!key.isArray()) {
      throw new IllegalArgumentException("a primary key is a JSON array of values, not " + keyJson);
    }
    return key;
  }

  /** Adds {@code _bucket}, {@code _offset} and {@code _timestamp} to a log scan. */
  public ScanRequest metadataColumns() {
    ticket.put("metadata_columns", true);
    return this;
  }

  public String toJson() {
    return Json.write(ticket);
  }

  @Override
  public String toString() {
    return toJson();
  }
}
