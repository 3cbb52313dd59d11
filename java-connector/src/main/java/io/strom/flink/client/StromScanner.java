package io.strom.flink.client;

import io.strom.flink.client.internal.CData;
import io.strom.flink.client.internal.NativeResource;
import io.strom.flink.client.internal.SpareRoot;
import io.strom.flink.client.internal.StromNative;
import java.time.Duration;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * A running scan that is polled, the way a Flink {@code SplitReader} fetches: {@link #poll}
 * waits up to a timeout and {@link #wakeup} (from any thread) makes it return early. The
 * client reads a few batches ahead of the poller; a slow poller holds the node back through
 * flow control instead of buffering without bound.
 *
 * <p>One thread polls at a time. Closing cancels the scan on the node (the way to stop a
 * {@code follow} scan).
 */
public final class StromScanner extends NativeResource {
  private final StromConnection connection;
  private volatile boolean finished;
  /** The schema of the batches, imported with the first one (and again if it changes). */
  private Schema schema;
  /** The root of the last batch closed, for the next batch to be imported into. */
  private final SpareRoot spare = new SpareRoot();

  /** Filled by each poll: what came and where a batch came from ({@link StromNative#poll}). */
  private final long[] origin = new long[StromNative.ORIGIN_LONGS];

  StromScanner(long handle, StromConnection connection) {
    super(handle, StromNative::closeScanner);
    this.connection = connection;
  }

  /**
   * The next batch, or {@code null} if none came within {@code timeout}, {@link #wakeup} was
   * called, or the scan is finished (see {@link #isFinished()}). The caller closes the batch.
   *
   * @throws StromException when the scan failed (it then is finished)
   * @throws IllegalStateException after {@link #close()}
   */
  public ScanBatch poll(Duration timeout) {
    if (finished) {
      return null;
    }
    VectorSchemaRoot root = null;
    String partition;
    try (CData.Incoming incoming = new CData.Incoming(connection.allocator())) {
      partition =
          StromNative.poll(
              handle(), timeout.toMillis(), incoming.arrayAddress(), incoming.schemaAddress(), schema != null, origin);
      if (origin[0] == StromNative.POLLED_BATCH) {
        if (incoming.hasSchema()) {
          // First batch, or the table's schema changed: until this import succeeded Rust
          // must send the schema again, so forget the old one first.
          schema = null;
          schema = incoming.importSchema();
        } else if (schema == null) {
          throw new IllegalStateException("the native scanner sent a batch without its schema");
        }
        root = incoming.importRoot(schema, spare.take(schema));
      }
    } catch (StromException e) {
      finished = true;
      throw e;
    }
    if (root == null) {
      // The end leaves the structs empty.
      finished = origin[0] == StromNative.POLLED_END;
      return null;
    }
    Schema rootSchema = schema;
    return new ScanBatch(
        root,
        (int) origin[1],
        partition,
        origin[2],
        origin[3],
        origin[4],
        origin[5],
        // A closed batch's root: its buffers go back to Rust now, its vectors to the next batch.
        r -> spare.keep(rootSchema, r, this::isClosed));
  }

  /** Cancels the scan; batches not yet closed stay readable until they are. */
  @Override
  public void close() {
    try {
      super.close();
    } finally {
      spare.close();
    }
  }

  /** Whether a bounded scan has delivered everything (or failed). */
  public boolean isFinished() {
    return finished;
  }

  /** Makes a waiting {@link #poll} (or the next one) return {@code null} at once. */
  public void wakeup() {
    StromNative.wakeup(handle());
  }
}
