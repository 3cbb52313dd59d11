package io.strom.flink.client;

import org.apache.arrow.vector.VectorSchemaRoot;

/**
 * One batch of a scan and where it came from. The root's buffers are shared with the Rust
 * client (no copy); closing the batch releases them.
 *
 * @param root the rows
 * @param bucket the bucket they belong to
 * @param partition the partition, or null for a non-partitioned table
 * @param baseOffset log scans: the offset of the first row; snapshot scans: -1
 * @param highWatermark log scans: the bucket's high watermark when the batch was sent; else -1
 * @param logOffset snapshot scans: the changelog offset the snapshot of this bucket stands at
 *     (a changelog scan from there continues it exactly once); log scans: -1
 * @param endOffset log scans: the offset after the stored batch this one was cut from — {@code
 *     baseOffset} + rows unless rows were left out of it ({@code keys_upto}); snapshot scans: -1
 */
public record ScanBatch(
    VectorSchemaRoot root,
    int bucket,
    String partition,
    long baseOffset,
    long highWatermark,
    long logOffset,
    long endOffset)
    implements AutoCloseable {

  @Override
  public void close() {
    root.close();
  }
}
