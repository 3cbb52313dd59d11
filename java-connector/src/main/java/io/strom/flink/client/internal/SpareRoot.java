package io.strom.flink.client.internal;

import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * One root kept for reuse: the last batch (or lookup answer) handed back, its buffers released,
 * for the next one of the same schema to be imported into ({@link CData.Incoming#importRoot(Schema,
 * VectorSchemaRoot)}). Creating a batch's vectors anew was a fifth of a 43-column scan poller's
 * time and over a third of importing a lookup answer. Roots may be handed back on another thread
 * than the importer's (a Flink source recycles on the task thread, lookup answers on the
 * completion thread).
 */
public final class SpareRoot {
  private final AtomicReference<Kept> kept = new AtomicReference<>();

  private record Kept(Schema schema, VectorSchemaRoot root) {}

  /**
   * The kept root if it was created for {@code schema} (the very object the importer holds:
   * a changed schema is a new object), else null; a root of another schema is closed.
   */
  public VectorSchemaRoot take(Schema schema) {
    Kept reusable = kept.getAndSet(null);
    if (reusable == null) {
      return null;
    }
    if (reusable.schema() == schema) {
      return reusable.root();
    }
    reusable.root().close();
    return null;
  }

  /**
   * Releases the root's buffers now and keeps its vectors for the next import of {@code
   * schema}; closes it when one is kept already, or when {@code ownerClosed} says nothing will
   * import any more (checked after keeping, so a close racing with this leaves nothing kept).
   */
  public void keep(Schema schema, VectorSchemaRoot root, BooleanSupplier ownerClosed) {
    root.clear();
    if (!kept.compareAndSet(null, new Kept(schema, root))) {
      root.close();
    }
    if (ownerClosed.getAsBoolean()) {
      close();
    }
  }

  /** Closes the kept root, if any; the owner calls this after closing itself. */
  public void close() {
    Kept left = kept.getAndSet(null);
    if (left != null) {
      left.root().close();
    }
  }
}
