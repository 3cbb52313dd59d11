package io.strom.flink.client;

import com.fasterxml.jackson.databind.JsonNode;
import io.strom.flink.client.internal.CData;
import io.strom.flink.client.internal.Json;
import io.strom.flink.client.internal.NativeResource;
import io.strom.flink.client.internal.StromNative;
import java.time.Duration;
import org.apache.arrow.vector.VectorSchemaRoot;

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
    JsonNode[] metadata = new JsonNode[1];
    VectorSchemaRoot root;
    try {
      root =
          CData.importFrom(
              connection.allocator(),
              (array, schema) -> {
                String json = StromNative.poll(handle(), timeout.toMillis(), array, schema);
                if (json == null) {
                  return false;
                }
                metadata[0] = Json.parse(json);
                // The end marker leaves the structs empty.
                return !metadata[0].path("end").asBoolean();
              });
    } catch (StromException e) {
      finished = true;
      throw e;
    }
    if (root == null) {
      finished = metadata[0] != null;
      return null;
    }
    return ScanBatch.of(root, metadata[0]);
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
