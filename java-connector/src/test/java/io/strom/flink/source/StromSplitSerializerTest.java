package io.strom.flink.source;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Splits and enumerator state survive a checkpoint byte for byte; the state advances exactly. */
class StromSplitSerializerTest {
  private static StromSourceSplit roundTrip(StromSourceSplit split) throws IOException {
    StromSplitSerializer serializer = StromSplitSerializer.INSTANCE;
    return serializer.deserialize(serializer.getVersion(), serializer.serialize(split));
  }

  @Test
  void everyKindOfSplitRoundTrips() throws IOException {
    List<StromSourceSplit> splits =
        List.of(
            StromSourceSplit.log(null, 0, 42, StromSourceSplit.UNBOUNDED),
            StromSourceSplit.log("20261121$eu", 7, StromSourceSplit.EARLIEST, 1000),
            StromSourceSplit.snapshot(null, 3, false),
            StromSourceSplit.snapshot("d1", 1, true),
            StromSourceSplit.resumedSnapshot("d2", 2, false, "[12345,\"2026-12-07\",\"caf\u00e9\"]", 88, 3),
            StromSourceSplit.resumedSnapshot(null, 0, true, "[\"" + "k".repeat(70_000) + "\"]", 5, 0));
    for (StromSourceSplit split : splits) {
      assertEquals(split, roundTrip(split));
      assertEquals(split.splitId(), roundTrip(split).splitId());
    }
    assertEquals("20261121$eu/7", splits.get(1).splitId());
    assertEquals("0", splits.get(0).splitId());
  }

  @Test
  void givenVersionOneBytesWhenReadShouldKeepTheCountOfSnapshotRows() throws IOException {
    // The layout version 1 wrote: no resume key, the snapshot rows emitted counted.
    org.apache.flink.core.memory.DataOutputSerializer out = new org.apache.flink.core.memory.DataOutputSerializer(64);
    out.writeBoolean(true);
    out.writeUTF("d2");
    out.writeInt(2);
    out.writeByte(StromSourceSplit.Phase.SNAPSHOT.ordinal());
    out.writeLong(-1);
    out.writeLong(-1);
    out.writeBoolean(false);
    out.writeLong(12345);
    StromSourceSplit split = StromSplitSerializer.INSTANCE.deserialize(1, out.getCopyOfBuffer());
    assertEquals(new StromSourceSplit("d2", 2, StromSourceSplit.Phase.SNAPSHOT, -1, -1, false, null, 0, 12345), split);
  }

  @Test
  void theStateNamesTheNextRowNotYetEmitted() {
    StromSplitState state = new StromSplitState(StromSourceSplit.snapshot("d1", 0, false));
    assertEquals(StromSourceSplit.snapshot("d1", 0, false), state.toSplit(), "nothing emitted: a fresh snapshot");
    state.snapshotRowEmitted(() -> "[1]", 15);
    state.snapshotRowEmitted(() -> "[2]", 15);
    assertEquals(StromSourceSplit.resumedSnapshot("d1", 0, false, "[2]", 15, 0), state.toSplit());
    state.snapshotFinished(17);
    assertEquals(StromSourceSplit.log("d1", 0, 17, StromSourceSplit.UNBOUNDED), state.toSplit());
    state.logRowEmitted(17);
    state.logRowEmitted(18);
    assertEquals(StromSourceSplit.log("d1", 0, 19, StromSourceSplit.UNBOUNDED), state.toSplit());
  }

  @Test
  void givenAResumedSnapshotWhenItsCatchUpAdvancesShouldNameTheMessageAndRowsWithin() {
    StromSplitState state = new StromSplitState(StromSourceSplit.resumedSnapshot(null, 1, false, "[5]", 10, 2));
    assertEquals(StromSourceSplit.resumedSnapshot(null, 1, false, "[5]", 10, 2), state.toSplit());
    // Rows 3 and 4 of the message cut from the stored batch [10, 14), then its last row.
    state.catchUpRowEmitted(10, 14, false);
    assertEquals(StromSourceSplit.resumedSnapshot(null, 1, false, "[5]", 10, 3), state.toSplit());
    state.catchUpRowEmitted(10, 14, true);
    assertEquals(StromSourceSplit.resumedSnapshot(null, 1, false, "[5]", 14, 0), state.toSplit());
    // The batches between held no change of a delivered key.
    state.catchUpRowEmitted(20, 25, false);
    assertEquals(StromSourceSplit.resumedSnapshot(null, 1, false, "[5]", 20, 1), state.toSplit());
    state.catchUpFinished(30);
    assertEquals(StromSourceSplit.resumedSnapshot(null, 1, false, "[5]", 30, 0), state.toSplit());
    state.snapshotRowEmitted(() -> "[7]", 30);
    assertEquals(StromSourceSplit.resumedSnapshot(null, 1, false, "[7]", 30, 0), state.toSplit());
  }

  @Test
  void enumeratorStateRoundTripsAndRefusesUnknownVersions() throws IOException {
    StromEnumeratorState state =
        new StromEnumeratorState(
            true,
            List.of(StromSourceSplit.log("d3", 1, StromSourceSplit.EARLIEST, StromSourceSplit.UNBOUNDED)),
            Set.of("d1/0", "d1/1"),
            Set.of("d1", "d3"));
    StromEnumeratorState.Serializer serializer = StromEnumeratorState.Serializer.INSTANCE;
    StromEnumeratorState back = serializer.deserialize(serializer.getVersion(), serializer.serialize(state));
    assertEquals(state.initialized(), back.initialized());
    assertEquals(state.unassigned(), back.unassigned());
    assertEquals(state.assignedSplitIds(), back.assignedSplitIds());
    assertEquals(state.knownPartitions(), back.knownPartitions());
    assertThrows(IOException.class, () -> serializer.deserialize(3, serializer.serialize(state)));
    assertThrows(IOException.class, () -> StromSplitSerializer.INSTANCE.deserialize(9, new byte[0]));
  }
}
