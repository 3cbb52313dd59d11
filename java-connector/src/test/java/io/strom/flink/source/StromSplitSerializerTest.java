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
            new StromSourceSplit("d2", 2, StromSourceSplit.Phase.SNAPSHOT, -1, -1, false, 12345));
    for (StromSourceSplit split : splits) {
      assertEquals(split, roundTrip(split));
      assertEquals(split.splitId(), roundTrip(split).splitId());
    }
    assertEquals("20261121$eu/7", splits.get(1).splitId());
    assertEquals("0", splits.get(0).splitId());
  }

  @Test
  void theStateNamesTheNextRowNotYetEmitted() {
    StromSplitState state = new StromSplitState(StromSourceSplit.snapshot("d1", 0, false));
    state.snapshotRowEmitted();
    state.snapshotRowEmitted();
    assertEquals(new StromSourceSplit("d1", 0, StromSourceSplit.Phase.SNAPSHOT, -1, -1, false, 2), state.toSplit());
    state.snapshotFinished(17);
    assertEquals(StromSourceSplit.log("d1", 0, 17, StromSourceSplit.UNBOUNDED), state.toSplit());
    state.logRowEmitted(17);
    state.logRowEmitted(18);
    assertEquals(StromSourceSplit.log("d1", 0, 19, StromSourceSplit.UNBOUNDED), state.toSplit());
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
    StromEnumeratorState back = serializer.deserialize(1, serializer.serialize(state));
    assertEquals(state.initialized(), back.initialized());
    assertEquals(state.unassigned(), back.unassigned());
    assertEquals(state.assignedSplitIds(), back.assignedSplitIds());
    assertEquals(state.knownPartitions(), back.knownPartitions());
    assertThrows(IOException.class, () -> serializer.deserialize(2, serializer.serialize(state)));
    assertThrows(IOException.class, () -> StromSplitSerializer.INSTANCE.deserialize(9, new byte[0]));
  }
}
