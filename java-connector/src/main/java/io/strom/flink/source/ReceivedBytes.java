package io.strom.flink.source;

import java.util.concurrent.atomic.LongAdder;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VectorSchemaRoot;

/**
 * Bytes of Arrow buffers the source received from the node, per JVM. The Rust client imports
 * what the node sent and never drops columns itself, so this counts what the node chose to
 * send: with projection push-down, only the projected columns' buffers. Each reader also
 * reports its own share as the Flink metric {@code stromBytesReceived}.
 */
public final class ReceivedBytes {
  private static final LongAdder TOTAL = new LongAdder();

  private ReceivedBytes() {}

  /** Everything received by every Strom source in this JVM since it started. */
  public static long total() {
    return TOTAL.sum();
  }

  static long of(VectorSchemaRoot root) {
    long bytes = 0;
    for (FieldVector vector : root.getFieldVectors()) {
      bytes += vector.getBufferSize();
    }
    TOTAL.add(bytes);
    return bytes;
  }
}
