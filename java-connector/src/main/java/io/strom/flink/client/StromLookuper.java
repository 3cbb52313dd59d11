package io.strom.flink.client;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.strom.flink.client.internal.CData;
import io.strom.flink.client.internal.Json;
import io.strom.flink.client.internal.NativeCompletion;
import io.strom.flink.client.internal.NativeResource;
import io.strom.flink.client.internal.SchemaIds;
import io.strom.flink.client.internal.SpareRoot;
import io.strom.flink.client.internal.StromNative;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * Looks up batches of keys in one primary-key table over one pipelined stream. The answer
 * holds {@code _key_index} (int32: the row of the key batch a result row answers) followed by
 * the returned columns; a key that is not found has no row. The caller closes the answer.
 *
 * <p>{@link #lookupAsync} fits Flink's async lookup functions: answers of one lookuper
 * complete in submission order, on the connection's callback executor.
 */
public final class StromLookuper extends NativeResource {
  private final StromConnection connection;
  /** Key batches cross without their schema when Rust already has it. */
  private final SchemaIds keySchemas = new SchemaIds();
  /** Answer schemas imported, by the id Rust gave them; they are never dropped (one or two). */
  private final Map<Integer, Schema> answerSchemas = new ConcurrentHashMap<>();
  /** The id of the answer schema imported last (0: none), which Rust need not send again. */
  private volatile int answerSchemaHeld;
  /** The root of the last answer handed back ({@link #recycle}), for the next answer. */
  private final SpareRoot spare = new SpareRoot();

  StromLookuper(long handle, StromConnection connection) {
    super(handle, StromNative::closeLookuper);
    this.connection = connection;
  }

  /** Looks up the keys and blocks for the answer. */
  public VectorSchemaRoot lookup(VectorSchemaRoot keys) {
    SchemaIds.Ref keySchema = keySchemas.of(keys.getSchema());
    int held = answerSchemaHeld;
    try (CData.Incoming result = new CData.Incoming(connection.allocator())) {
      int answerSchema =
          CData.exportTo(
              connection.allocator(),
              keys,
              keySchema.send(),
              (keysArray, keysSchema) ->
                  StromNative.lookup(
                      handle(),
                      keysArray,
                      keysSchema,
                      keySchema.id(),
                      result.arrayAddress(),
                      result.schemaAddress(),
                      held));
      keySchema.sent();
      return importAnswer(result, answerSchema);
    }
  }

  /** Sends the keys and returns at once; the future completes with the answer. */
  public CompletableFuture<VectorSchemaRoot> lookupAsync(VectorSchemaRoot keys) {
    // The result structs must outlive this call: Rust fills them when the answer arrives.
    CData.Incoming result = new CData.Incoming(connection.allocator());
    NativeCompletion completion = new NativeCompletion();
    SchemaIds.Ref keySchema = keySchemas.of(keys.getSchema());
    int held = answerSchemaHeld;
    try {
      CData.exportTo(
          connection.allocator(),
          keys,
          keySchema.send(),
          (keysArray, keysSchema) -> {
            StromNative.lookupAsync(
                handle(),
                keysArray,
                keysSchema,
                keySchema.id(),
                result.arrayAddress(),
                result.schemaAddress(),
                held,
                completion);
            return null;
          });
      keySchema.sent();
    } catch (RuntimeException | Error e) {
      result.close();
      throw e;
    }
    return completion.handleAsync(
        (answerSchema, failure) -> {
          try (result) {
            if (failure != null) {
              throw failure instanceof RuntimeException
                  ? (RuntimeException) failure
                  : new IllegalStateException(failure);
            }
            return importAnswer(result, Integer.parseInt(answerSchema));
          }
        },
        connection.callbackExecutor());
  }

  /**
   * The answer Rust filled: its schema came with it (then it is kept under its id) or is one
   * kept before. An answer's schema is the same for every request but a table's schema change,
   * so it crosses once instead of with every answer.
   */
  private VectorSchemaRoot importAnswer(CData.Incoming result, int schemaId) {
    Schema schema;
    if (result.hasSchema()) {
      schema = result.importSchema();
      // Kept before it is announced: a request that names the id finds the schema.
      answerSchemas.put(schemaId, schema);
      answerSchemaHeld = schemaId;
    } else {
      schema = answerSchemas.get(schemaId);
      if (schema == null) {
        throw new IllegalStateException("a lookup answer came without its schema " + schemaId);
      }
    }
    return result.importRoot(schema, spare.take(schema));
  }

  /**
   * Hands an answer back instead of closing it: its buffers are released now, its vectors are
   * kept for the next answer. Any thread; the answer must not be used afterwards.
   */
  public void recycle(VectorSchemaRoot answer) {
    // The root's schema is the imported one it was created for (importAnswer).
    spare.keep(answer.getSchema(), answer, this::isClosed);
  }

  /** Waits for every submitted lookup, ends the stream and frees the lookuper. */
  @Override
  public void close() {
    try {
      super.close();
    } finally {
      spare.close();
    }
  }

  /** What a lookuper looks up and returns. */
  public static final class Options {
    private final ObjectNode json = Json.object();

    /** Keys are values of the bucket key (a strict prefix of the primary key). */
    public Options prefix() {
      json.put("prefix", true);
      return this;
    }

    /** Columns to return (the key columns always are). */
    public Options columns(List<String> columns) {
      ArrayNode array = json.putArray("columns");
      columns.forEach(array::add);
      return this;
    }

    public Options partition(String partition) {
      json.put("partition", partition);
      return this;
    }

    /** Insert keys not found (with the next auto-increment id) and return them too. */
    public Options insertIfNotExists() {
      json.put("insert_if_not_exists", true);
      return this;
    }

    /**
     * Longest wait for the node's answer to a key batch before the stream is dropped and the
     * unanswered keys go out again on a new one (default 30 s); zero waits forever.
     */
    public Options answerTimeout(java.time.Duration timeout) {
      if (timeout.isNegative()) {
        throw new IllegalArgumentException("the answer timeout must not be negative: " + timeout);
      }
      json.put("answer_timeout_ms", timeout.toMillis());
      return this;
    }

    String toJson() {
      return Json.write(json);
    }
  }
}
