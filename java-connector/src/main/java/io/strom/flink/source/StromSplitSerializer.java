package io.strom.flink.source;

import java.io.IOException;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.core.memory.DataOutputView;

/**
 * Splits in checkpoints and savepoints. Version 2 records a snapshot read's progress as the
 * last primary key emitted (exact after the table changed); version 1 (still read) counted the
 * snapshot rows emitted.
 */
public final class StromSplitSerializer implements SimpleVersionedSerializer<StromSourceSplit> {
  public static final StromSplitSerializer INSTANCE = new StromSplitSerializer();
  static final int VERSION = 2;

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
    return read(new DataInputDeserializer(serialized), version);
  }

  /** Writes the current version. */
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
    out.writeLong(split.legacyRowsEmitted());
    out.writeBoolean(split.resumeKey() != null);
    if (split.resumeKey() != null) {
      // writeUTF stops at 64 KB; a key (even of long strings) is written whole.
      byte[] key = split.resumeKey().getBytes(java.nio.charset.StandardCharsets.UTF_8);
      out.writeInt(key.length);
      out.write(key);
    }
    out.writeLong(split.messageRowsEmitted());
  }

  /** Reads a split written by {@code version} of this serializer. */
  static StromSourceSplit read(DataInputView in, int version) throws IOException {
    if (version != 1 && version != VERSION) {
      throw new IOException("unknown Strom split version " + version);
    }
    String partition = in.readBoolean() ? in.readUTF() : null;
    int bucket = in.readInt();
    StromSourceSplit.Phase phase = StromSourceSplit.Phase.values()[in.readByte()];
    long next = in.readLong();
    long stop = in.readLong();
    boolean snapshotOnly = in.readBoolean();
    long legacyRows = in.readLong();
    String resumeKey = null;
    long messageRows = 0;
    if (version >= 2) {
      if (in.readBoolean()) {
        byte[] key = new byte[in.readInt()];
        in.readFully(key);
        resumeKey = new String(key, java.nio.charset.StandardCharsets.UTF_8);
      }
      messageRows = in.readLong();
    }
    return new StromSourceSplit(partition, bucket, phase, next, stop, snapshotOnly, resumeKey, messageRows, legacyRows);
  }
}
