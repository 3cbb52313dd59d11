package io.strom.flink.source;

import java.io.IOException;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.core.memory.DataOutputView;

/** Splits in checkpoints and savepoints (version 1). */
public final class StromSplitSerializer implements SimpleVersionedSerializer<StromSourceSplit> {
  public static final StromSplitSerializer INSTANCE = new StromSplitSerializer();
  private static final int VERSION = 1;

  @Override
  public int getVersion() {
    return VERSION;
  }

  @Override
  public byte[] serialize(StromSourceSplit split) throws IOException {
    DataOutputSerializer out = new DataOutputSerializer(64);
    write(split, out);
    return out.getCopyOfBuffer();
  }

  @Override
  public StromSourceSplit deserialize(int version, byte[] serialized) throws IOException {
    if (version != VERSION) {
      throw new IOException("unknown Strom split version " + version);
    }
    return read(new DataInputDeserializer(serialized));
  }

  static void write(StromSourceSplit split, DataOutputView out) throws IOException {
    out.writeBoolean(split.partition() != null);
    if (split.partition() != null) {
      out.writeUTF(split.partition());
    }
    out.writeInt(split.bucket());
    out.writeByte(split.phase().ordinal());
    out.writeLong(split.nextOffset());
    out.writeLong(split.stoppingOffset());
    out.writeBoolean(split.snapshotOnly());
    out.writeLong(split.snapshotRowsEmitted());
  }

  static StromSourceSplit read(DataInputView in) throws IOException {
    String partition = in.readBoolean() ? in.readUTF() : null;
    int bucket = in.readInt();
    StromSourceSplit.Phase phase = StromSourceSplit.Phase.values()[in.readByte()];
    long next = in.readLong();
    long stop = in.readLong();
    boolean snapshotOnly = in.readBoolean();
    long emitted = in.readLong();
    return new StromSourceSplit(partition, bucket, phase, next, stop, snapshotOnly, emitted);
  }
}
