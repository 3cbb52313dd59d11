package io.strom.flink.source;

import com.fasterxml.jackson.databind.JsonNode;
import io.strom.flink.client.BucketOffset;
import io.strom.flink.client.OffsetSpec;
import io.strom.flink.client.StromConnection;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.api.connector.source.SplitEnumerator;
import org.apache.flink.api.connector.source.SplitEnumeratorContext;
import org.apache.flink.util.FlinkRuntimeException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Creates one split per bucket (per partition and bucket) and pushes each to a fixed reader
 * (the split id's hash modulo the parallelism, so a bucket stays with one reader across
 * restarts with the same parallelism). Starting offsets are resolved here, once, with {@code
 * list_offsets}: a split always carries a concrete offset, so a restored job reads from where
 * its readers stopped, not from where "latest" happens to be at restore time.
 *
 * <p>Streaming reads of partitioned tables list the partitions every {@code
 * scan.partition.discovery.interval}: a new partition's buckets are read from their earliest
 * offset (everything in them is newer than the job's start); a dropped partition is forgotten
 * (its readers end its splits when the node reports it gone).
 *
 * <p>Node calls run in the context's worker thread ({@code callAsync}); state changes in the
 * coordinator thread (the handlers).
 */
public final class StromSourceEnumerator implements SplitEnumerator<StromSourceSplit, StromEnumeratorState> {
  private static final Logger LOG = LoggerFactory.getLogger(StromSourceEnumerator.class);

  private final SplitEnumeratorContext<StromSourceSplit> context;
  private final SourcePlan plan;
  private boolean initialized;
  private final Map<Integer, List<StromSourceSplit>> pendingByReader = new HashMap<>();
  private final Set<String> assignedSplitIds;
  private final Set<String> knownPartitions;
  private StromConnection connection;

  public StromSourceEnumerator(
      SplitEnumeratorContext<StromSourceSplit> context, SourcePlan plan, StromEnumeratorState state) {
    this.context = context;
    this.plan = plan;
    this.initialized = state.initialized();
    this.assignedSplitIds = new LinkedHashSet<>(state.assignedSplitIds());
    this.knownPartitions = new LinkedHashSet<>(state.knownPartitions());
    state.unassigned().forEach(this::addPending);
  }

  @Override
  public void start() {
    connection = StromConnection.connect(plan.address().endpoint());
    if (!initialized) {
      context.callAsync(this::initialSplits, this::onInitialSplits);
    }
    if (plan.partitioned() && !plan.bounded() && plan.discoveryIntervalMillis() > 0) {
      long interval = plan.discoveryIntervalMillis();
      context.callAsync(this::listPartitions, this::onPartitionsListed, interval, interval);
    }
  }

  // --- worker thread: node calls ----------------------------------------------------------

  /** The partitions present (that the plan reads) with their splits at the startup position. */
  private InitialSplits initialSplits() {
    if (plan.countOnly()) {
      // One split carries the count; no bucket is read.
      return new InitialSplits(List.of(), List.of(StromSourceSplit.log(null, 0, 0, 1)));
    }
    List<String> partitions = plan.partitioned() ? listPartitions() : java.util.Collections.singletonList(null);
    List<StromSourceSplit> splits = new ArrayList<>();
    for (String partition : partitions) {
      splits.addAll(splitsAtStartup(partition));
    }
    return new InitialSplits(partitions, splits);
  }

  private List<StromSourceSplit> splitsAtStartup(String partition) {
    List<StromSourceSplit> splits = new ArrayList<>();
    if (plan.startsWithSnapshot()) {
      for (int bucket = 0; bucket < plan.bucketCount(); bucket++) {
        splits.add(StromSourceSplit.snapshot(partition, bucket, plan.bounded()));
      }
      return splits;
    }
    Map<Integer, Long> from = offsets(partition, startSpec());
    Map<Integer, Long> stop = plan.bounded() ? offsets(partition, OffsetSpec.latest()) : Map.of();
    for (int bucket = 0; bucket < plan.bucketCount(); bucket++) {
      long start = from.getOrDefault(bucket, StromSourceSplit.EARLIEST);
      long end = plan.bounded() ? stop.getOrDefault(bucket, 0L) : StromSourceSplit.UNBOUNDED;
      splits.add(StromSourceSplit.log(partition, bucket, start, end));
    }
    return splits;
  }

  private OffsetSpec startSpec() {
    return switch (plan.startupMode()) {
      case FULL, EARLIEST -> OffsetSpec.earliest();
      case LATEST -> OffsetSpec.latest();
      case TIMESTAMP -> OffsetSpec.timestamp(plan.startupTimestampMillis());
    };
  }

  private Map<Integer, Long> offsets(String partition, OffsetSpec spec) {
    Map<Integer, Long> offsets = new HashMap<>();
    for (BucketOffset offset :
        connection.listOffsets(plan.address().database(), plan.address().table(), partition, spec)) {
      offsets.put(offset.bucket(), offset.offset());
    }
    return offsets;
  }

  /** The names of the partitions this read covers. */
  private List<String> listPartitions() {
    List<String> names = new ArrayList<>();
    for (JsonNode partition :
        connection.listPartitions(plan.address().database(), plan.address().table())) {
      String name = partition.path("name").asText();
      if (plan.readsPartition(name)) {
        names.add(name);
      }
    }
    return names;
  }

  // --- coordinator thread: state ----------------------------------------------------------

  private void onInitialSplits(InitialSplits initial, Throwable error) {
    if (error != null) {
      throw new FlinkRuntimeException("Cannot list the splits of Strom table " + plan.address(), error);
    }
    initialized = true;
    initial.partitions().forEach(p -> {
      if (p != null) {
        knownPartitions.add(p);
      }
    });
    initial.splits().forEach(this::addPending);
    LOG.info("Strom source {}: {} splits at startup ({})", plan.address(), initial.splits().size(), plan.startupMode());
    assignPending();
  }

  private void onPartitionsListed(List<String> partitions, Throwable error) {
    if (error != null) {
      // A node that is briefly away must not fail the job: the next round tries again.
      LOG.warn("Strom source {}: partition discovery failed", plan.address(), error);
      return;
    }
    if (!initialized) {
      return; // the initial listing decides the startup position of the partitions present
    }
    Set<String> current = new LinkedHashSet<>(partitions);
    for (String partition : partitions) {
      if (knownPartitions.add(partition)) {
        LOG.info("Strom source {}: new partition {}", plan.address(), partition);
        for (int bucket = 0; bucket < plan.bucketCount(); bucket++) {
          addPending(StromSourceSplit.log(partition, bucket, StromSourceSplit.EARLIEST, StromSourceSplit.UNBOUNDED));
        }
      }
    }
    for (String gone : new ArrayList<>(knownPartitions)) {
      if (!current.contains(gone)) {
        LOG.info("Strom source {}: partition {} was dropped; its splits are retired", plan.address(), gone);
        knownPartitions.remove(gone);
        assignedSplitIds.removeIf(id -> id.startsWith(gone + "/"));
        pendingByReader.values().forEach(splits -> splits.removeIf(s -> gone.equals(s.partition())));
      }
    }
    assignPending();
  }

  private void addPending(StromSourceSplit split) {
    pendingByReader.computeIfAbsent(owner(split), r -> new ArrayList<>()).add(split);
  }

  private int owner(StromSourceSplit split) {
    return (split.splitId().hashCode() & Integer.MAX_VALUE) % context.currentParallelism();
  }

  private void assignPending() {
    for (int reader : context.registeredReaders().keySet()) {
      assignTo(reader);
    }
  }

  private void assignTo(int reader) {
    List<StromSourceSplit> splits = pendingByReader.remove(reader);
    if (splits != null && !splits.isEmpty()) {
      for (StromSourceSplit split : splits) {
        assignedSplitIds.add(split.splitId());
        context.assignSplit(split, reader);
      }
    }
    // Bounded reads have every split once the initial ones exist: the reader may finish.
    if (plan.bounded() && initialized) {
      context.signalNoMoreSplits(reader);
    }
  }

  @Override
  public void handleSplitRequest(int subtaskId, String requesterHostname) {
    // Splits are pushed to their owners as they appear; readers never need to ask.
  }

  @Override
  public void addSplitsBack(List<StromSourceSplit> splits, int subtaskId) {
    // A reader failed before a checkpoint covered these: give them again (with the progress
    // of the last checkpoint, which is what Flink hands back).
    for (StromSourceSplit split : splits) {
      assignedSplitIds.remove(split.splitId());
      addPending(split);
    }
    if (context.registeredReaders().containsKey(subtaskId)) {
      assignTo(subtaskId);
    }
  }

  @Override
  public void addReader(int subtaskId) {
    assignTo(subtaskId);
  }

  @Override
  public StromEnumeratorState snapshotState(long checkpointId) {
    List<StromSourceSplit> unassigned = new ArrayList<>();
    pendingByReader.values().forEach(unassigned::addAll);
    return new StromEnumeratorState(
        initialized, unassigned, new LinkedHashSet<>(assignedSplitIds), new LinkedHashSet<>(knownPartitions));
  }

  @Override
  public void close() throws IOException {
    if (connection != null) {
      connection.close();
      connection = null;
    }
  }

  private record InitialSplits(List<String> partitions, List<StromSourceSplit> splits) {}
}
