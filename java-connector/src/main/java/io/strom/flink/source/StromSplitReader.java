package io.strom.flink.source;

import io.strom.flink.client.OffsetSpec;
import io.strom.flink.client.ScanBatch;
import io.strom.flink.client.ScanRequest;
import io.strom.flink.client.StromConnection;
import io.strom.flink.client.StromException;
import io.strom.flink.client.StromNotFoundException;
import io.strom.flink.client.StromScanner;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.connector.base.source.reader.RecordsWithSplitIds;
import org.apache.flink.connector.base.source.reader.splitreader.SplitsAddition;
import org.apache.flink.connector.base.source.reader.splitreader.SplitsChange;
import org.apache.flink.connector.base.source.reader.splitreader.SplitReader;
import org.apache.flink.metrics.Counter;
import org.apache.flink.table.data.GenericRowData;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads the splits of one source reader: one node scan per split (a bucket's snapshot, its
 * log from an offset, or both one after the other), all on one connection. {@link #fetch}
 * takes whichever scan has a batch ready, round robin so that a busy bucket cannot starve the
 * others, and otherwise waits on one of them for a short while; {@link #wakeUp} ends that
 * wait at once (the scanner's own wake-up), as Flink needs when splits arrive or the task
 * stops.
 */
final class StromSplitReader implements SplitReader<StromRecord, StromSourceSplit> {
  private static final Logger LOG = LoggerFactory.getLogger(StromSplitReader.class);
  /** How long one fetch waits on one quiet scan before it looks at the others again. */
  private static final Duration WAIT = Duration.ofMillis(100);

  private final SourcePlan plan;
  private final Counter bytesReceived;
  private final StromConnection connection;
  private final Map<String, ActiveScan> scans = new LinkedHashMap<>();
  private final Set<String> finishedSplits = new HashSet<>();
  /** COUNT(*) push-down: splits whose one row (the count) is still to be handed out. */
  private final List<String> pendingCounts = new ArrayList<>();
  private int rotation;
  private volatile StromScanner waitingOn;
  private volatile boolean wokenUp;

  StromSplitReader(SourcePlan plan, Counter bytesReceived) {
    this.plan = plan;
    this.bytesReceived = bytesReceived;
    this.connection = StromConnection.connect(plan.address().endpoint());
  }

  /** What a split's scan is reading now. */
  private enum Stage {
    /** A resumed snapshot: waiting for its first batch, which names the offset it stands at. */
    RESUMING,
    /** A resumed snapshot's catch-up: changes of the keys already delivered, up to that offset. */
    CATCH_UP,
    SNAPSHOT,
    LOG
  }

  /** A split being read: its current scan and what the scan is. */
  private static final class ActiveScan {
    final StromSourceSplit split;
    Stage stage;
    /** The scan rows come from now (the catch-up's while it runs). */
    StromScanner scanner;
    /** A resumed snapshot's scan, held open (its first batch waiting) while the catch-up runs. */
    StromScanner heldSnapshot;
    ScanBatch heldBatch;
    /** Snapshot rows to leave out (a version-1 checkpoint counted them). */
    long snapshotRowsToSkip;
    /** Rows of the catch-up message at the split's offset already emitted before the restore. */
    long catchUpRowsToSkip;
    /** The changelog offset the snapshot stands at (from its batches' metadata). */
    long snapshotLogOffset = -1;

    ActiveScan(StromSourceSplit split) {
      this.split = split;
    }

    void close() {
      scanner.close();
      if (heldSnapshot != null) {
        heldSnapshot.close();
      }
      if (heldBatch != null) {
        heldBatch.close();
      }
    }
  }

  @Override
  public void handleSplitsChanges(SplitsChange<StromSourceSplit> change) {
    if (!(change instanceof SplitsAddition)) {
      throw new UnsupportedOperationException("Strom splits are only ever added: " + change);
    }
    for (StromSourceSplit split : change.splits()) {
      if (plan.countOnly()) {
        pendingCounts.add(split.splitId());
        continue;
      }
      ActiveScan scan = new ActiveScan(split);
      if (split.phase() == StromSourceSplit.Phase.SNAPSHOT) {
        scan.snapshotRowsToSkip = split.legacyRowsEmitted();
        scan.scanner = open(split, snapshotRequest(split));
        // A batch read resumes after the key alone: its snapshot is not followed by changes.
        scan.stage = split.resumeKey() != null && !split.snapshotOnly() ? Stage.RESUMING : Stage.SNAPSHOT;
      } else if (split.stoppingOffset() != StromSourceSplit.UNBOUNDED
          && split.nextOffset() >= split.stoppingOffset()) {
        finishedSplits.add(split.splitId()); // nothing between start and stop
        continue;
      } else {
        scan.stage = Stage.LOG;
        scan.scanner = open(split, logRequest(split, split.nextOffset()));
      }
      scans.put(split.splitId(), scan);
    }
  }

  /**
   * The bucket's snapshot, after the split's resume key if it has one. The primary-key columns
   * are asked for even when the query does not read them (after the produced columns): the
   * split state records the last key emitted.
   */
  private ScanRequest snapshotRequest(StromSourceSplit split) {
    ScanRequest request =
        ofBucket(ScanRequest.snapshot(plan.address().database(), plan.address().table()), split, plan.snapshotColumns());
    if (split.resumeKey() != null) {
      request.afterKey(split.resumeKey());
    }
    if (plan.limit() >= 0 && split.snapshotOnly()) {
      request.limit(plan.limit());
    }
    return request;
  }

  /** The changes of the keys up to the split's resume key, from its offset to {@code to}. */
  private ScanRequest catchUpRequest(StromSourceSplit split, long to) {
    return ofBucket(ScanRequest.log(plan.address().database(), plan.address().table()), split, plan.requestedColumns())
        .from(OffsetSpec.offset(split.nextOffset()))
        .to(OffsetSpec.offset(to))
        .keysUpto(split.resumeKey());
  }

  /** {@code request} narrowed to the split's bucket (and partition), reading {@code columns}. */
  private static ScanRequest ofBucket(ScanRequest request, StromSourceSplit split, List<String> columns) {
    request.buckets(split.bucket()).columns(columns);
    if (split.partition() != null) {
      request.partition(split.partition());
    }
    return request;
  }

  private ScanRequest logRequest(StromSourceSplit split, long from) {
    ScanRequest request =
        ofBucket(ScanRequest.log(plan.address().database(), plan.address().table()), split, plan.requestedColumns());
    request.from(from == StromSourceSplit.EARLIEST ? OffsetSpec.earliest() : OffsetSpec.offset(from));
    if (split.stoppingOffset() != StromSourceSplit.UNBOUNDED) {
      request.to(OffsetSpec.offset(split.stoppingOffset()));
      if (plan.limit() >= 0) {
        request.limit(plan.limit());
      }
    } else {
      request.follow();
    }
    return request;
  }

  private StromScanner open(StromSourceSplit split, ScanRequest request) {
    LOG.debug("Strom split {}: {}", split.splitId(), request);
    return connection.scan(request);
  }

  @Override
  public RecordsWithSplitIds<StromRecord> fetch() throws IOException {
    if (!pendingCounts.isEmpty()) {
      String splitId = pendingCounts.remove(0);
      finishedSplits.add(splitId);
      return ScanRecords.single(splitId, GenericRowData.of(plan.pushedCount()));
    }
    if (!finishedSplits.isEmpty()) {
      Set<String> done = new HashSet<>(finishedSplits);
      finishedSplits.clear();
      return ScanRecords.finished(done);
    }
    if (scans.isEmpty()) {
      return ScanRecords.nothing();
    }
    wokenUp = false;
    List<ActiveScan> order = new ArrayList<>(scans.values());
    int count = order.size();
    rotation = (rotation + 1) % count;
    // A first pass takes any batch that is already there ...
    for (int i = 0; i < count; i++) {
      RecordsWithSplitIds<StromRecord> records = poll(order.get((rotation + i) % count), Duration.ZERO);
      if (records != null) {
        return records;
      }
    }
    // ... otherwise wait a little on one scan (a different one each time).
    if (!wokenUp) {
      RecordsWithSplitIds<StromRecord> records = poll(order.get(rotation), WAIT);
      if (records != null) {
        return records;
      }
    }
    return ScanRecords.nothing();
  }

  /** Records from this scan's next batch, the end of a phase or of the split, or null. */
  private RecordsWithSplitIds<StromRecord> poll(ActiveScan scan, Duration timeout) throws IOException {
    String splitId = scan.split.splitId();
    int produced = plan.producedType().getFieldCount();
    if (scan.stage == Stage.SNAPSHOT && scan.heldBatch != null) {
      ScanBatch held = scan.heldBatch;
      scan.heldBatch = null;
      return snapshotRecords(scan, held);
    }
    ScanBatch batch;
    try {
      waitingOn = scan.scanner;
      batch = scan.scanner.poll(timeout);
    } catch (StromNotFoundException e) {
      if (scan.split.partition() != null) {
        // The partition was dropped while being read: its split is over, not the job.
        LOG.info("Strom split {} ends: {}", splitId, e.getMessage());
        return finish(scan);
      }
      throw new IOException("Strom scan of " + plan.address() + " bucket " + splitId + " failed", e);
    } catch (StromException e) {
      throw new IOException("Strom scan of " + plan.address() + " bucket " + splitId + " (" + scan.stage + ") failed", e);
    } finally {
      waitingOn = null;
    }
    if (batch != null) {
      bytesReceived.inc(ReceivedBytes.of(batch.root()));
      switch (scan.stage) {
        case RESUMING -> {
          return resume(scan, batch);
        }
        case CATCH_UP -> {
          // Only the message at the split's offset can hold rows emitted before the restore.
          long skip = batch.baseOffset() == scan.split.nextOffset() ? scan.catchUpRowsToSkip : 0;
          scan.catchUpRowsToSkip = 0;
          return emptyOrRecords(ScanRecords.catchUpRows(splitId, batch, produced, (int) Math.min(skip, Integer.MAX_VALUE)));
        }
        case SNAPSHOT -> {
          return snapshotRecords(scan, batch);
        }
        default -> {
          return emptyOrRecords(ScanRecords.logRows(splitId, batch, produced, 0));
        }
      }
    }
    if (!scan.scanner.isFinished()) {
      return null;
    }
    // The scan ended (bounded scans only: a followed log never ends on its own).
    switch (scan.stage) {
      case RESUMING -> throw new IOException(
          "Strom snapshot of " + plan.address() + " bucket " + splitId + " ended without a batch naming its changelog offset");
      case CATCH_UP -> {
        scan.scanner.close();
        scan.scanner = scan.heldSnapshot;
        scan.heldSnapshot = null;
        scan.stage = Stage.SNAPSHOT;
        return ScanRecords.end(splitId, StromRecord.Kind.CATCH_UP_END, scan.snapshotLogOffset);
      }
      case SNAPSHOT -> {
        if (scan.split.snapshotOnly()) {
          return finish(scan);
        }
        if (scan.snapshotLogOffset < 0) {
          throw new IOException("Strom snapshot of " + plan.address() + " bucket " + splitId + " named no changelog offset");
        }
        scan.scanner.close();
        scan.stage = Stage.LOG;
        scan.scanner = open(scan.split, logRequest(scan.split, scan.snapshotLogOffset));
        return ScanRecords.end(splitId, StromRecord.Kind.SNAPSHOT_END, scan.snapshotLogOffset);
      }
      default -> {
        return finish(scan);
      }
    }
  }

  private RecordsWithSplitIds<StromRecord> snapshotRecords(ActiveScan scan, ScanBatch batch) {
    if (batch.logOffset() >= 0) {
      scan.snapshotLogOffset = batch.logOffset();
    }
    int skip = (int) Math.min(scan.snapshotRowsToSkip, batch.root().getRowCount());
    scan.snapshotRowsToSkip -= skip;
    return emptyOrRecords(
        ScanRecords.snapshotRows(
            scan.split.splitId(), batch, plan.producedType().getFieldCount(), skip, plan.primaryKey()));
  }

  /**
   * The resumed snapshot's first batch names the offset {@code o2} it stands at. Keys up to the
   * resume key were delivered as of the split's offset: unless nothing changed since, their
   * changes up to {@code o2} come first (the catch-up), while the snapshot waits with its batch.
   */
  private RecordsWithSplitIds<StromRecord> resume(ActiveScan scan, ScanBatch first) throws IOException {
    long snapshotOffset = first.logOffset();
    if (snapshotOffset < 0) {
      first.close();
      throw new IOException("Strom snapshot of " + plan.address() + " bucket " + scan.split.splitId() + " named no changelog offset");
    }
    scan.snapshotLogOffset = snapshotOffset;
    if (snapshotOffset <= scan.split.nextOffset()) {
      LOG.info("Strom split {} resumes its snapshot after {}: no change since", scan.split.splitId(), scan.split.resumeKey());
      scan.stage = Stage.SNAPSHOT;
      return snapshotRecords(scan, first);
    }
    LOG.info(
        "Strom split {} resumes its snapshot after {}: catching up the delivered keys from offset {} to {}",
        scan.split.splitId(), scan.split.resumeKey(), scan.split.nextOffset(), snapshotOffset);
    scan.heldSnapshot = scan.scanner;
    scan.heldBatch = first;
    scan.catchUpRowsToSkip = scan.split.messageRowsEmitted();
    scan.stage = Stage.CATCH_UP;
    scan.scanner = open(scan.split, catchUpRequest(scan.split, snapshotOffset));
    return null;
  }

  private static RecordsWithSplitIds<StromRecord> emptyOrRecords(ScanRecords records) {
    if (records.remainingRows() == 0) {
      records.recycle();
      return null;
    }
    return records;
  }

  private RecordsWithSplitIds<StromRecord> finish(ActiveScan scan) {
    scan.close();
    scans.remove(scan.split.splitId());
    return ScanRecords.finished(Set.of(scan.split.splitId()));
  }

  @Override
  public void wakeUp() {
    wokenUp = true;
    StromScanner scanner = waitingOn;
    if (scanner != null) {
      try {
        scanner.wakeup();
      } catch (IllegalStateException closed) {
        // The scan ended meanwhile: nothing waits on it any more.
      }
    }
  }

  @Override
  public void close() {
    for (ActiveScan scan : scans.values()) {
      scan.close();
    }
    scans.clear();
    try {
      connection.close();
    } catch (RuntimeException e) {
      // Batches still queued in Flink's element queue are never recycled when a task is
      // cancelled; their memory goes with the allocator, which reports them as a leak.
      LOG.debug("Strom source connection closed with batches outstanding", e);
    }
  }
}
