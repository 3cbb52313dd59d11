package io.strom.flink.source;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;

/**
 * What the enumerator checkpoints: whether it created the initial splits, the splits created
 * but not yet handed to a reader, the ids of those handed out (their progress is in the
 * readers' state) and the partitions it knows, so that a restored job neither reads a bucket
 * twice nor misses a partition created while it was down.
 */
public record StromEnumeratorState(
    boolean initialized,
    List<StromSourceSplit> unassigned,
    Set<String> assignedSplitIds,
    Set<String> knownPartitions) {

  public static StromEnumeratorState empty() {
    return new StromEnumeratorState(false, List.of(), Set.of(), Set.of());
  }

  /** Version 1. */
  public static final class Serializer implements SimpleVersionedSerializer<StromEnumeratorState> {
    public static final Serializer INSTANCE = new Serializer();
    /** 2: splits in {@link StromSplitSerializer}'s version 2; version 1 is still read. */
    private static final int VERSION = 2;

    @Override
    public int getVersion() {
      return VERSION;
    }

    @Override
    public byte[] serialize(StromEnumeratorState state) throws IOException {
      DataOutputSerializer out = new DataOutputSerializer(256);
      out.writeBoolean(state.initialized());
      out.writeInt(state.unassigned().size());
      for (StromSourceSplit split : state.unassigned()) {
        StromSplitSerializer.write(split, out);
      }
      writeStrings(out, state.assignedSplitIds());
      writeStrings(out, state.knownPartitions());
      return out.getCopyOfBuffer();
    }

    @Override
    public StromEnumeratorState deserialize(int version, byte[] serialized) throws IOException {
      if (version != 1 && version != VERSION) {
        throw new IOException("unknown Strom enumerator state version " + version);
      }
      DataInputDeserializer in = new DataInputDeserializer(serialized);
      boolean initialized = in.readBoolean();
      int count = in.readInt();
      List<StromSourceSplit> unassigned = new ArrayList<>(count);
      for (int i = 0; i < count; i++) {
        unassigned.add(StromSplitSerializer.read(in, version));
      }
      Set<String> assigned = readStrings(in);
      Set<String> partitions = readStrings(in);
      return new StromEnumeratorState(initialized, unassigned, assigned, partitions);
    }

    private static void writeStrings(DataOutputSerializer out, Set<String> values) throws IOException {
      out.writeInt(values.size());
      for (String value : values) {
        out.writeUTF(value);
      }
    }

    private static Set<String> readStrings(DataInputDeserializer in) throws IOException {
      int count = in.readInt();
      Set<String> values = new LinkedHashSet<>();
      for (int i = 0; i < count; i++) {
        values.add(in.readUTF());
      }
      return values;
    }
  }
}
