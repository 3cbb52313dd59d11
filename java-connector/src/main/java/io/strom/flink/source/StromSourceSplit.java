package io.strom.flink.source;

import java.util.Objects;
import org.apache.flink.api.connector.source.SourceSplit;

/**
 * One bucket of a table (of one partition) and how far it has been read. A split is in one of
 * two phases:
 *
 * <ul>
 *   <li>{@link Phase#SNAPSHOT}: the bucket's current rows are read from a snapshot scan, then
 *       (unless {@code snapshotOnly}) its changelog from the offset the snapshot stands at.
 *       {@code snapshotRowsEmitted} rows of the snapshot were already emitted before the last
 *       checkpoint.
 *   <li>{@link Phase#LOG}: the bucket's log (a primary-key table's changelog) from {@code
 *       nextOffset}, up to {@code stoppingOffset} (exclusive) when bounded.
 * </ul>
 *
 * <p>Splits are immutable; {@link StromSplitState} is the mutable progress a reader keeps and
 * turns back into a split at every checkpoint.
 */
public final class StromSourceSplit implements SourceSplit {
  /** {@code nextOffset} meaning "the earliest offset still stored" (new partitions). */
  public static final long EARLIEST = -1;
  /** {@code stoppingOffset} of an unbounded split. */
  public static final long UNBOUNDED = -1;

  public enum Phase {
    SNAPSHOT,
    LOG
  }

  private final String partition;
  private final int bucket;
  private final Phase phase;
  private final long nextOffset;
  private final long stoppingOffset;
  private final boolean snapshotOnly;
  private final long snapshotRowsEmitted;

  public StromSourceSplit(
      String partition,
      int bucket,
      Phase phase,
      long nextOffset,
      long stoppingOffset,
      boolean snapshotOnly,
      long snapshotRowsEmitted) {
    this.partition = partition;
    this.bucket = bucket;
    this.phase = phase;
    this.nextOffset = nextOffset;
    this.stoppingOffset = stoppingOffset;
    this.snapshotOnly = snapshotOnly;
    this.snapshotRowsEmitted = snapshotRowsEmitted;
  }

  public static StromSourceSplit snapshot(String partition, int bucket, boolean snapshotOnly) {
    return new StromSourceSplit(partition, bucket, Phase.SNAPSHOT, EARLIEST, UNBOUNDED, snapshotOnly, 0);
  }

  public static StromSourceSplit log(String partition, int bucket, long from, long stoppingOffset) {
    return new StromSourceSplit(partition, bucket, Phase.LOG, from, stoppingOffset, false, 0);
  }

  /** {@code <bucket>} or {@code <partition>/<bucket>}: unique within one table. */
  public static String splitId(String partition, int bucket) {
    return partition == null ? String.valueOf(bucket) : partition + "/" + bucket;
  }

  @Override
  public String splitId() {
    return splitId(partition, bucket);
  }

  /** The partition name, or null for a table without partitions. */
  public String partition() {
    return partition;
  }

  public int bucket() {
    return bucket;
  }

  public Phase phase() {
    return phase;
  }

  public long nextOffset() {
    return nextOffset;
  }

  public long stoppingOffset() {
    return stoppingOffset;
  }

  public boolean isBounded() {
    return snapshotOnly || stoppingOffset != UNBOUNDED;
  }

  public boolean snapshotOnly() {
    return snapshotOnly;
  }

  public long snapshotRowsEmitted() {
    return snapshotRowsEmitted;
  }

  @Override
  public boolean equals(Object o) {
    if (!(o instanceof StromSourceSplit other)) {
      return false;
    }
    return bucket == other.bucket
        && nextOffset == other.nextOffset
        && stoppingOffset == other.stoppingOffset
        && snapshotOnly == other.snapshotOnly
        && snapshotRowsEmitted == other.snapshotRowsEmitted
        && phase == other.phase
        && Objects.equals(partition, other.partition);
  }

  @Override
  public int hashCode() {
    return Objects.hash(partition, bucket, phase, nextOffset, stoppingOffset, snapshotOnly, snapshotRowsEmitted);
  }

  @Override
  public String toString() {
    return "StromSourceSplit{" + splitId() + ", " + phase
        + (phase == Phase.LOG ? ", next=" + nextOffset + ", stop=" + stoppingOffset
            : ", emitted=" + snapshotRowsEmitted + (snapshotOnly ? ", snapshot only" : ""))
        + "}";
  }
}
