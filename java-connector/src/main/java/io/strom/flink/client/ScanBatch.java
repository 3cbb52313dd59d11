package io.strom.flink.client;

import java.util.function.Consumer;
import org.apache.arrow.vector.VectorSchemaRoot;

/**
 * One batch of a scan and where it came from. The root's buffers are shared with the Rust
 * client (no copy); closing the batch releases them. The root itself (its vector objects, not
 * its data) may then be reused for a later batch of the same scan: nothing may read a batch
 * after closing it.
 */
public final class ScanBatch implements AutoCloseable {
  private final VectorSchemaRoot root;
  private final int bucket;
  private final String partition;
  private final long baseOffset;
  private final long highWatermark;
  private final long logOffset;
  private final long endOffset;
  private final Consumer<VectorSchemaRoot> release;
  private boolean closed;

  /**
   * @param root the rows
   * @param bucket the bucket they belong to
   * @param partition the partition, or null for a non-partitioned table
   * @param baseOffset log scans: the offset of the first row; snapshot scans: -1
   * @param highWatermark log scans: the bucket's high watermark when the batch was sent; else -1
   * @param logOffset snapshot scans: the changelog offset the snapshot of this bucket stands at
   *     (a changelog scan from there continues it exactly once); log scans: -1
   * @param endOffset log scans: the offset after the stored batch this one was cut from —
   *     {@code baseOffset} + rows unless rows were left out of it ({@code keys_upto}); snapshot
   *     scans: -1
   * @param release what closing does with the root (frees its buffers, then closes or keeps it)
   */
  ScanBatch(
      VectorSchemaRoot root,
      int bucket,
      String partition,
      long baseOffset,
      long highWatermark,
      long logOffset,
      long endOffset,
      Consumer<VectorSchemaRoot> release) {
    this.root = root;
    this.bucket = bucket;
    this.partition = partition;
    this.baseOffset = baseOffset;
    this.highWatermark = highWatermark;
    this.logOffset = logOffset;
    this.endOffset = endOffset;
    this.release = release;
  }

  public VectorSchemaRoot root() {
    return root;
  }

  public int bucket() {
    return bucket;
  }

  public String partition() {
    return partition;
  }

  public long baseOffset() {
    return baseOffset;
  }

  public long highWatermark() {
    return highWatermark;
  }

  public long logOffset() {
    return logOffset;
  }

  public long endOffset() {
    return endOffset;
  }

  /** Releases the batch's buffers; a second close does nothing. */
  @Override
  public synchronized void close() {
    if (!closed) {
      closed = true;
      release.accept(root);
    }
  }

  @Override
  public String toString() {
    return "ScanBatch[bucket=" + bucket + ", partition=" + partition + ", baseOffset=" + baseOffset
        + ", rows=" + root.getRowCount() + ", highWatermark=" + highWatermark + ", logOffset=" + logOffset
        + ", endOffset=" + endOffset + "]";
  }
}
