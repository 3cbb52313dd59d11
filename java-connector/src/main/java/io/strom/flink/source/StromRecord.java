package io.strom.flink.source;

import org.apache.flink.table.data.RowData;

/**
 * What the split reader hands the record emitter: a row (from the log, a snapshot or a resumed
 * snapshot's catch-up) with its position, or the end of a phase. One instance is reused for
 * every row of a batch: the emitter finishes with it before the next one is produced.
 */
final class StromRecord {
  enum Kind {
    LOG_ROW,
    SNAPSHOT_ROW,
    /** A change of a key a resumed snapshot read had delivered (docs/protocol.md). */
    CATCH_UP_ROW,
    /** No row: the catch-up reached {@code offset}, where the resumed snapshot stands. */
    CATCH_UP_END,
    /** No row: the snapshot was emitted completely; the changelog continues at {@code offset}. */
    SNAPSHOT_END
  }

  Kind kind;
  RowData row;
  /**
   * LOG_ROW: the row's offset in its bucket's log; SNAPSHOT_ROW: the changelog offset of the
   * snapshot; CATCH_UP_ROW: the first offset of the stored batch the message was cut from;
   * CATCH_UP_END and SNAPSHOT_END: where the delivered rows stand, where the changelog starts.
   */
  long offset;
  /** CATCH_UP_ROW: the offset after the stored batch the message was cut from. */
  long endOffset;
  /** CATCH_UP_ROW: whether this is the message's last row. */
  boolean lastOfMessage;
  /** SNAPSHOT_ROW: reads the row's primary key. */
  StromSplitState.KeySource key;
}
