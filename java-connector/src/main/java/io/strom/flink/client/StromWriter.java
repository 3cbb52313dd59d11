package io.strom.flink.client;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.strom.flink.client.internal.CData;
import io.strom.flink.client.internal.Json;
import io.strom.flink.client.internal.NativeCompletion;
import io.strom.flink.client.internal.NativeResource;
import io.strom.flink.client.internal.SchemaIds;
import io.strom.flink.client.internal.StromNative;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.apache.arrow.vector.VectorSchemaRoot;

/**
 * Writes Arrow batches to one table through one pipelined, idempotent stream of the Rust
 * client: retried batches are deduplicated by writer id and sequence on the node.
 *
 * <p>The batch's buffers are shared with Rust, not copied: the caller may clear or reuse its
 * root as soon as a write method returns (exporting took a reference; Rust drops it once the
 * batch is encoded). Safe to share between threads; calls are served in order.
 */
public final class StromWriter extends NativeResource {
  private final StromConnection connection;
  /** Batches cross without their schema when Rust already has it. */
  private final SchemaIds schemas = new SchemaIds();

  StromWriter(long handle, StromConnection connection) {
    super(handle, StromNative::closeWriter);
    this.connection = connection;
  }

  /** Writes a batch and blocks until it is durable on the node. */
  public WriteAck write(VectorSchemaRoot batch) {
    SchemaIds.Ref schema = schemas.of(batch.getSchema());
    String ack =
        CData.exportTo(
            connection.allocator(),
            batch,
            schema.send(),
            (array, schemaAddress) -> StromNative.write(handle(), array, schemaAddress, schema.id()));
    schema.sent();
    return WriteAck.fromJson(ack);
  }

  /**
   * Sends a batch and returns once it is on its way (blocking only while the writer's
   * in-flight window is full: that is the backpressure). The future completes once the batch
   * is durable, on the connection's callback executor. Dropping the future does not cancel
   * the write; {@link #flush()} still reports its failure.
   */
  public CompletableFuture<WriteAck> writeAsync(VectorSchemaRoot batch) {
    NativeCompletion completion = new NativeCompletion();
    SchemaIds.Ref schema = schemas.of(batch.getSchema());
    CData.exportTo(
        connection.allocator(),
        batch,
        schema.send(),
        (array, schemaAddress) -> {
          StromNative.writeAsync(handle(), array, schemaAddress, schema.id(), completion);
          return null;
        });
    schema.sent();
    return completion.thenApplyAsync(WriteAck::fromJson, connection.callbackExecutor());
  }

  /** Blocks until every batch sent so far is durable; throws the first failure since the last flush. */
  public void flush() {
    StromNative.flush(handle());
  }

  /**
   * Flushes, ends the stream and frees the writer; a second close does nothing. Like {@link
   * #flush()} it throws the first failure since the last flush, even one a {@code write}
   * already threw; the writer is freed either way.
   */
  @Override
  public void close() {
    super.close();
  }

  /** What a writer writes and how. */
  public static final class Options {
    private final ObjectNode json = Json.object();

    private Options(String kind) {
      json.put("kind", kind);
    }

    public static Options append() {
      return new Options("append");
    }

    /** Full rows when {@code targetColumns} is null or empty, else a partial update of them. */
    public static Options upsert(List<String> targetColumns) {
      Options options = new Options("upsert");
      if (targetColumns != null && !targetColumns.isEmpty()) {
        ArrayNode array = options.json.putArray("target_columns");
        targetColumns.forEach(array::add);
      }
      return options;
    }

    public static Options delete() {
      return new Options("delete");
    }

    public Options partition(String partition) {
      json.put("partition", partition);
      return this;
    }

    /** Resume an earlier writer: its id and the sequence of the next batch. */
    public Options resume(long writerId, long nextSequence) {
      json.put("writer_id", writerId).put("sequence", nextSequence);
      return this;
    }

    /** Most batches sent but not yet acknowledged (default 32). */
    public Options maxInFlight(int batches) {
      json.put("max_in_flight", batches);
      return this;
    }

    String toJson() {
      return Json.write(json);
    }
  }
}
