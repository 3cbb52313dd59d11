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

  /** A split being read: its current scan and what the scan is. */
  private static final class ActiveScan {
    final StromSourceSplit split;
    StromScanner scanner;
    boolean readingSnapshot;
    long snapshotRowsToSkip;
    /** The changelog offset the snapshot stands at (from its batches' metadata). */
    long snapshotLogOffset = -1;

    ActiveScan(StromSourceSplit split) {
      this.split = split;
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
        scan.readingSnapshot = true;
        scan.snapshotRowsToSkip = split.snapshotRowsEmitted();
        scan.scanner = open(split, snapshotRequest(split));
      } else if (split.stoppingOffset() != StromSourceSplit.UNBOUNDED
          && split.nextOffset() >= split.stoppingOffset()) {
        finishedSplits.add(split.splitId()); // nothing between start and stop
        continue;
      } else {
        scan.scanner = open(split, logRequest(split, split.nextOffset()));
      }
      scans.put(split.splitId(), scan);
    }
  }

  private ScanRequest snapshotRequest(StromSourceSplit split) {
    ScanRequest request = ScanRequest.snapshot(plan.address().database(), plan.address().table());
    request.buckets(split.bucket()).columns(plan.requestedColumns());
    if (split.partition() != null) {
      request.partition(split.partition());
    }
    if (plan.limit() >= 0 && split.snapshotOnly()) {
      request.limit(plan.limit());
    }
    return request;
  }

  private ScanRequest logRequest(StromSourceSplit split, long from) {
    ScanRequest request = ScanRequest.log(plan.address().database(), plan.address().table());
    request.buckets(split.bucket()).columns(plan.requestedColumns());
    if (split.partition() != null) {
      request.partition(split.partition());
    }
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

  /** Records from this scan's next batch, the end of its snapshot or split, or null. */
  private RecordsWithSplitIds<StromRecord> poll(ActiveScan scan, Duration timeout) throws IOException {
    String splitId = scan.split.splitId();
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
      throw new IOException("Strom scan of " + plan.address() + " bucket " + splitId + " failed", e);
    } finally {
      waitingOn = null;
    }
    if (batch != null) {
      bytesReceived.inc(ReceivedBytes.of(batch.root()));
      if (scan.readingSnapshot) {
        if (batch.logOffset() >= 0) {
          scan.snapshotLogOffset = batch.logOffset();
        }
        int skip = (int) Math.min(scan.snapshotRowsToSkip, batch.root().getRowCount());
        scan.snapshotRowsToSkip -= skip;
        ScanRecords records =
            ScanRecords.rows(splitId, batch, StromRecord.Kind.SNAPSHOT_ROW, plan.producedType().getFieldCount(), skip);
        return emptyOrRecords(records);
      }
      return emptyOrRecords(
          ScanRecords.rows(splitId, batch, StromRecord.Kind.LOG_ROW, plan.producedType().getFieldCount(), 0));
    }
    if (!scan.scanner.isFinished()) {
      return null;
    }
    // The scan ended (bounded scans only: a followed log never ends on its own).
    if (scan.readingSnapshot && !scan.split.snapshotOnly()) {
      if (scan.snapshotLogOffset < 0) {
        throw new IOException("Strom snapshot of " + plan.address() + " bucket " + splitId + " named no changelog offset");
      }
      scan.scanner.close();
      scan.readingSnapshot = false;
      scan.scanner = open(scan.split, logRequest(scan.split, scan.snapshotLogOffset));
      return ScanRecords.snapshotEnd(splitId, scan.snapshotLogOffset);
    }
    return finish(scan);
  }

  private static RecordsWithSplitIds<StromRecord> emptyOrRecords(ScanRecords records) {
    if (records.remainingRows() == 0) {
      records.recycle();
      return null;
    }
    return records;
  }

  private RecordsWithSplitIds<StromRecord> finish(ActiveScan scan) {
    scan.scanner.close();
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
      scan.scanner.close();
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
