package io.strom.flink.source;

/**
 * A split's progress while a reader emits its rows. The record emitter advances it row by
 * row, so a checkpoint (taken between two emitted rows) records exactly the rows emitted.
 */
public final class StromSplitState {
  /** The primary key of the last snapshot row emitted, read only when a checkpoint asks. */
  interface KeySource {
    /** The key as the node's JSON values in declared key order. */
    String keyJson();
  }

  private final StromSourceSplit initial;
  private StromSourceSplit.Phase phase;
  /** LOG: the next offset to emit. SNAPSHOT: the changelog offset the emitted keys stand at. */
  private long nextOffset;
  private String resumeKey;
  private KeySource lastKey;
  private long messageRowsEmitted;
  private long legacyRowsEmitted;

  public StromSplitState(StromSourceSplit split) {
    this.initial = split;
    this.phase = split.phase();
    this.nextOffset = split.nextOffset();
    this.resumeKey = split.resumeKey();
    this.messageRowsEmitted = split.messageRowsEmitted();
    this.legacyRowsEmitted = split.legacyRowsEmitted();
  }

  /** A changelog/log row at {@code offset} was emitted. */
  void logRowEmitted(long offset) {
    nextOffset = offset + 1;
  }

  /**
   * A snapshot row was emitted: its key (from {@code key}) is now the last key delivered, as the
   * snapshot at changelog offset {@code snapshotLogOffset} has it. Every key before it was
   * delivered at that offset too (they came earlier in this snapshot, or were caught up to it).
   */
  void snapshotRowEmitted(KeySource key, long snapshotLogOffset) {
    lastKey = key;
    nextOffset = snapshotLogOffset;
    messageRowsEmitted = 0;
    legacyRowsEmitted = 0;
  }

  /**
   * A resumed snapshot's catch-up emitted a change of a key already delivered: row {@code n}
   * of the changelog message cut from the stored batch {@code [base, end)}.
   */
  void catchUpRowEmitted(long base, long end, boolean lastOfMessage) {
    if (lastOfMessage) {
      nextOffset = end;
      messageRowsEmitted = 0;
      return;
    }
    if (nextOffset != base) {
      nextOffset = base; // messages between had no change of a delivered key
      messageRowsEmitted = 0;
    }
    messageRowsEmitted++;
  }

  /** The catch-up reached {@code offset}: the delivered keys now stand where the new snapshot does. */
  void catchUpFinished(long offset) {
    nextOffset = offset;
    messageRowsEmitted = 0;
  }

  /** Every snapshot row was emitted; the changelog continues at {@code logOffset}. */
  void snapshotFinished(long logOffset) {
    phase = StromSourceSplit.Phase.LOG;
    nextOffset = logOffset;
    resumeKey = null;
    lastKey = null;
    messageRowsEmitted = 0;
    legacyRowsEmitted = 0;
  }

  public StromSourceSplit toSplit() {
    if (lastKey != null) {
      resumeKey = lastKey.keyJson();
      lastKey = null;
    }
    return new StromSourceSplit(
        initial.partition(),
        initial.bucket(),
        phase,
        nextOffset,
        initial.stoppingOffset(),
        initial.snapshotOnly(),
        phase == StromSourceSplit.Phase.SNAPSHOT ? resumeKey : null,
        messageRowsEmitted,
        legacyRowsEmitted);
  }
}
