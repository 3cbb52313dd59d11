package io.strom.flink.source;

import java.util.Objects;
import org.apache.flink.api.connector.source.SourceSplit;

/**
 * One bucket of a table (of one partition) and how far it has been read. A split is in one of
 * two phases:
 *
 * <ul>
 *   <li>{@link Phase#SNAPSHOT}: the bucket's current rows are read from a snapshot scan (in key
 *       order), then (unless {@code snapshotOnly}) its changelog from the offset the snapshot
 *       stands at. Once rows were emitted, {@code resumeKey} is the primary key of the last one
 *       (JSON values in declared key order) and every key up to it was delivered as it stood at
 *       changelog offset {@code nextOffset}, plus {@code messageRowsEmitted} rows of the
 *       changelog message at {@code nextOffset} (a resumed read's catch-up). A reader resumes
 *       exactly (docs/protocol.md, "Resuming a snapshot"): the current rows after {@code
 *       resumeKey} at a new offset {@code o2}, the changes of keys up to {@code resumeKey}
 *       from {@code nextOffset} to {@code o2}, then the changelog from {@code o2}.
 *       {@code legacyRowsEmitted} only comes from version-1 checkpoints, which counted rows.
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
  private final String resumeKey;
  private final long messageRowsEmitted;
  private final long legacyRowsEmitted;

  public StromSourceSplit(
      String partition,
      int bucket,
      Phase phase,
      long nextOffset,
      long stoppingOffset,
      boolean snapshotOnly,
      String resumeKey,
      long messageRowsEmitted,
      long legacyRowsEmitted) {
    this.partition = partition;
    this.bucket = bucket;
    this.phase = phase;
    this.nextOffset = nextOffset;
    this.stoppingOffset = stoppingOffset;
    this.snapshotOnly = snapshotOnly;
    this.resumeKey = resumeKey;
    this.messageRowsEmitted = messageRowsEmitted;
    this.legacyRowsEmitted = legacyRowsEmitted;
  }

  public static StromSourceSplit snapshot(String partition, int bucket, boolean snapshotOnly) {
    return new StromSourceSplit(partition, bucket, Phase.SNAPSHOT, EARLIEST, UNBOUNDED, snapshotOnly, null, 0, 0);
  }

  /**
   * A snapshot read that delivered every key up to {@code resumeKey} as of changelog offset
   * {@code keyOffset} (and {@code messageRowsEmitted} rows of the changelog message there).
   */
  public static StromSourceSplit resumedSnapshot(
      String partition, int bucket, boolean snapshotOnly, String resumeKey, long keyOffset, long messageRowsEmitted) {
    return new StromSourceSplit(
        partition, bucket, Phase.SNAPSHOT, keyOffset, UNBOUNDED, snapshotOnly, resumeKey, messageRowsEmitted, 0);
  }

  public static StromSourceSplit log(String partition, int bucket, long from, long stoppingOffset) {
    return new StromSourceSplit(partition, bucket, Phase.LOG, from, stoppingOffset, false, null, 0, 0);
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

  /** SNAPSHOT: the primary key (a JSON array) of the last row emitted, or null before the first. */
  public String resumeKey() {
    return resumeKey;
  }

  /** SNAPSHOT with a resume key: rows of the changelog message at {@code nextOffset} emitted. */
  public long messageRowsEmitted() {
    return messageRowsEmitted;
  }

  /** Snapshot rows emitted, as version-1 checkpoints recorded them (0 otherwise). */
  public long legacyRowsEmitted() {
    return legacyRowsEmitted;
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
        && messageRowsEmitted == other.messageRowsEmitted
        && legacyRowsEmitted == other.legacyRowsEmitted
        && phase == other.phase
        && Objects.equals(resumeKey, other.resumeKey)
        && Objects.equals(partition, other.partition);
  }

  @Override
  public int hashCode() {
    return Objects.hash(
        partition, bucket, phase, nextOffset, stoppingOffset, snapshotOnly, resumeKey, messageRowsEmitted, legacyRowsEmitted);
  }

  @Override
  public String toString() {
    return "StromSourceSplit{" + splitId() + ", " + phase
        + (phase == Phase.LOG ? ", next=" + nextOffset + ", stop=" + stoppingOffset
            : (resumeKey != null ? ", after " + resumeKey + " at " + nextOffset + "+" + messageRowsEmitted : "")
                + (legacyRowsEmitted > 0 ? ", emitted=" + legacyRowsEmitted : "")
                + (snapshotOnly ? ", snapshot only" : ""))
        + "}";
  }
}
