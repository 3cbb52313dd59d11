package io.strom.flink.client.internal;

import org.apache.arrow.c.ArrowArray;
import org.apache.arrow.c.ArrowSchema;
import org.apache.arrow.c.Data;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.VectorSchemaRoot;

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
    try (ArrowArray array = ArrowArray.allocateNew(allocator);
        ArrowSchema schema = ArrowSchema.allocateNew(allocator)) {
      Data.exportVectorSchemaRoot(allocator, root, null, array, schema);
      try {
        return nativeCall.call(array.memoryAddress(), schema.memoryAddress());
      } finally {
        // Both are no-ops on a struct already released or moved out by Rust.
        array.release();
        schema.release();
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
