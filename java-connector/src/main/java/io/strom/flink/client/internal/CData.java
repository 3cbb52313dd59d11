package io.strom.flink.client.internal;

import org.apache.arrow.c.ArrowArray;
import org.apache.arrow.c.ArrowSchema;
import org.apache.arrow.c.Data;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.util.MemoryUtil;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * Moving batches through the Arrow C Data Interface. Java allocates both C structs in either
 * direction and frees their memory with {@code close()}; the buffers are shared, never copied.
 *
 * <ul>
 *   <li>Java to Rust ({@link #exportTo}): Java exports the root (its buffers gain a reference);
 *       Rust <em>moves</em> the array out, leaving Java's struct released, and drops the
 *       reference when it no longer needs the batch (possibly after the call returned, e.g.
 *       while a write is in flight). Rust only reads the schema; Java releases it here. If
 *       Rust failed before taking the array, it is still set and Java releases it here.
 *   <li>Rust to Java ({@link #importFrom}): Rust fills the structs; Java's importer moves the
 *       array into the new root's vectors (released when the root is closed) and releases the
 *       schema.
 * </ul>
 */
public final class CData {
  private CData() {}

  /** Exports {@code root} and hands the two struct addresses to {@code nativeCall}. */
  public static <T> T exportTo(
      BufferAllocator allocator, VectorSchemaRoot root, NativeCall<T> nativeCall) {
    return exportTo(allocator, root, true, nativeCall);
  }

  /**
   * Exports {@code root}, its schema only if {@code withSchema} (else the schema address is
   * 0: the receiver knows the schema), and hands the struct addresses to {@code nativeCall}.
   */
  public static <T> T exportTo(
      BufferAllocator allocator, VectorSchemaRoot root, boolean withSchema, NativeCall<T> nativeCall) {
    try (ArrowArray array = ArrowArray.allocateNew(allocator);
        ArrowSchema schema = withSchema ? ArrowSchema.allocateNew(allocator) : null) {
      Data.exportVectorSchemaRoot(allocator, root, null, array, schema);
      try {
        return nativeCall.call(array.memoryAddress(), schema == null ? 0 : schema.memoryAddress());
      } finally {
        // Both are no-ops on a struct already released or moved out by Rust.
        array.release();
        if (schema != null) {
          schema.release();
        }
      }
    }
  }

  /**
   * Lets {@code nativeCall} fill two fresh structs, then imports them as a new root; {@code
   * null} when the call reports it filled nothing.
   */
  public static VectorSchemaRoot importFrom(BufferAllocator allocator, NativeFill nativeCall) {
    try (Incoming incoming = new Incoming(allocator)) {
      if (!nativeCall.fill(incoming.arrayAddress(), incoming.schemaAddress())) {
        return null;
      }
      return incoming.importRoot();
    }
  }

  /**
   * Two structs Rust fills later (an async lookup answer): they must stay allocated until the
   * answer is imported or the request failed, then {@link #close()} frees them, releasing
   * anything Rust put there that was not imported.
   */
  public static final class Incoming implements AutoCloseable {
    private final BufferAllocator allocator;
    private final ArrowArray array;
    private final ArrowSchema schema;

    public Incoming(BufferAllocator allocator) {
      this.allocator = allocator;
      this.array = ArrowArray.allocateNew(allocator);
      this.schema = ArrowSchema.allocateNew(allocator);
    }

    public long arrayAddress() {
      return array.memoryAddress();
    }

    public long schemaAddress() {
      return schema.memoryAddress();
    }

    /** Whether Rust filled the schema struct (its {@code release} callback is set). */
    public boolean hasSchema() {
      return schema.snapshot().release != 0;
    }

    /** Imports the schema Rust filled (and releases the struct). */
    public Schema importSchema() {
      // false: the struct stays allocated until close(), which frees it once.
      return Data.importSchema(allocator, schema, null, false);
    }

    /**
     * Imports the array Rust filled as a new root of {@code schema} (the batch's schema, held
     * from an earlier import): each column moves into its vector, then the struct around them
     * is released. Against {@link #importRoot()} this skips importing the schema, and Arrow
     * Java's struct import with its unload-and-reload of every buffer (together about two
     * thirds of the import's cost for 43 columns).
     */
    public VectorSchemaRoot importRoot(Schema schema) {
      return importRoot(schema, null);
    }

    /**
     * As {@link #importRoot(Schema)}, into {@code reuse} when given: a root created for {@code
     * schema} whose buffers were released ({@code clear()}), so the batch's vectors are not
     * created anew (with 43 columns, creating and dropping the vectors was a fifth of a scan
     * poller's time). Loading a vector releases whatever buffers it still held. Closed on
     * failure, like a new root.
     */
    public VectorSchemaRoot importRoot(Schema schema, VectorSchemaRoot reuse) {
      ArrowArray.Snapshot parent = array.snapshot();
      try {
        checkFits(parent, schema);
      } catch (IllegalStateException e) {
        if (reuse != null) {
          reuse.close();
        }
        throw e;
      }
      VectorSchemaRoot root = reuse != null ? reuse : VectorSchemaRoot.create(schema, allocator);
      try {
        for (int i = 0; i < parent.n_children; i++) {
          long child = MemoryUtil.getLong(parent.children + (long) i * Long.BYTES);
          // Moves the child out (its struct is marked released inside the parent's memory,
          // as the C Data Interface allows); the parent's release below then frees only the
          // parent, and each column's buffers live until its vector is closed.
          Data.importIntoVector(allocator, ArrowArray.wrap(child), root.getVector(i), null);
        }
        root.setRowCount(Math.toIntExact(parent.length));
      } catch (RuntimeException e) {
        root.close();
        throw e;
      } finally {
        array.release();
      }
      return root;
    }

    private static void checkFits(ArrowArray.Snapshot parent, Schema schema) {
      if (parent.release == 0) {
        throw new IllegalStateException("the ArrowArray was not filled");
      }
      if (parent.offset != 0 || parent.null_count > 0 || parent.n_children != schema.getFields().size()) {
        throw new IllegalStateException(
            "a batch of "
                + parent.n_children
                + " columns (offset "
                + parent.offset
                + ", "
                + parent.null_count
                + " null rows) does not fit its schema of "
                + schema.getFields().size()
                + " columns");
      }
    }

    /** Imports what Rust exported; the array moves into the root, the schema is released. */
    public VectorSchemaRoot importRoot() {
      // false: the structs stay allocated until close() below, which frees them once.
      return Data.importVectorSchemaRoot(allocator, array, schema, null, false);
    }

    @Override
    public void close() {
      // No-ops unless Rust exported something that was never imported.
      array.release();
      schema.release();
      array.close();
      schema.close();
    }
  }

  /** A native call that fills the two structs and says whether it did. */
  @FunctionalInterface
  public interface NativeFill {
    boolean fill(long arrayAddress, long schemaAddress);
  }

  /** A native call taking the addresses of an exported ArrowArray and ArrowSchema. */
  @FunctionalInterface
  public interface NativeCall<T> {
    T call(long arrayAddress, long schemaAddress);
  }
}
