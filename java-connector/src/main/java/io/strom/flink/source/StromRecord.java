package io.strom.flink.source;

import org.apache.flink.table.data.RowData;

/**
 * What the split reader hands the record emitter: a row (from the log or from a snapshot) with
 * its position, or the end of a bucket's snapshot. One instance is reused for every row of a
 * batch: the emitter finishes with it before the next one is produced.
 */
final class StromRecord {
  enum Kind {
    LOG_ROW,
    SNAPSHOT_ROW,
    /** No row: the snapshot was emitted completely; the changelog continues at logOffset. */
    SNAPSHOT_END
  }

  Kind kind;
  RowData row;
  /** LOG_ROW: the row's offset in its bucket's log; SNAPSHOT_END: where the changelog starts. */
  long offset;
}
