package io.strom.flink.source;

/**
 * A split's progress while a reader emits its rows. The record emitter advances it row by
 * row, so a checkpoint (taken between two emitted rows) records exactly the rows emitted.
 */
public final class StromSplitState {
  private final StromSourceSplit initial;
  private StromSourceSplit.Phase phase;
  private long nextOffset;
  private long snapshotRowsEmitted;

  public StromSplitState(StromSourceSplit split) {
    this.initial = split;
    this.phase = split.phase();
    this.nextOffset = split.nextOffset();
    this.snapshotRowsEmitted = split.snapshotRowsEmitted();
  }

  /** A changelog/log row at {@code offset} was emitted. */
  void logRowEmitted(long offset) {
    nextOffset = offset + 1;
  }

  void snapshotRowEmitted() {
    snapshotRowsEmitted++;
  }

  /** Every snapshot row was emitted; the changelog continues at {@code logOffset}. */
  void snapshotFinished(long logOffset) {
    phase = StromSourceSplit.Phase.LOG;
    nextOffset = logOffset;
    snapshotRowsEmitted = 0;
  }

  public StromSourceSplit toSplit() {
    return new StromSourceSplit(
        initial.partition(),
        initial.bucket(),
        phase,
        nextOffset,
        initial.stoppingOffset(),
        initial.snapshotOnly(),
        snapshotRowsEmitted);
  }
}
