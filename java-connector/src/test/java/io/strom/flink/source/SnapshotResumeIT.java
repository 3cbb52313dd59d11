package io.strom.flink.source;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.strom.flink.FlinkStromFixture;
import io.strom.flink.client.StromConnection;
import io.strom.flink.client.StromWriter;
import io.strom.flink.client.TableSpec;
import io.strom.flink.client.internal.Json;
import io.strom.flink.connector.StromTableAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Predicate;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.DateDayVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.DateUnit;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.connector.source.SourceOutput;
import org.apache.flink.connector.base.source.reader.RecordsWithSplitIds;
import org.apache.flink.connector.base.source.reader.splitreader.SplitsAddition;
import org.apache.flink.metrics.SimpleCounter;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.VarCharType;
import org.apache.flink.types.RowKind;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A primary-key table's snapshot read stopped in the middle (a checkpoint between two rows)
 * and restored after the table changed delivers every key's history exactly once: the split
 * reader and the record emitter run here as Flink's source reader runs them, against the real
 * node, and the emitted changelog is applied strictly (an insert of a key already there, or an
 * update or delete of a row that is not there as emitted, fails the test).
 *
 * <p>The query reads only {@code name}: the key columns {@code (id, day)} — a BIGINT and a
 * DATE — are fetched for the split state alone. Names carry their key and a version, so the
 * emitted rows say which key they belong to.
 */
class SnapshotResumeIT {
  @RegisterExtension
  static final FlinkStromFixture STROM = new FlinkStromFixture("snapshot_resume");

  private static final String DB = STROM.database();
  private static final Duration PATIENCE = Duration.ofSeconds(60);

  /** The table as the test wrote it: key "id/day" → name. */
  private final Map<String, String> written = new TreeMap<>();
  /** The changelog emitted so far, applied. */
  private final Map<String, String> emitted = new HashMap<>();
  private int version;

  @Test
  void givenASnapshotStoppedMidwayWhenTheTableChangesAndTheReadResumesShouldDeliverEveryKeyOnce() throws Exception {
    String table = "resumed";
    List<Long> ids = createTable(table, 3000);
    SourcePlan plan = plan(table);

    // 1. The first snapshot read stops after 1000 rows, in the middle of a batch.
    Reading first = new Reading(plan, StromSourceSplit.snapshot(null, 0, false));
    first.emitWhile(r -> r.snapshotRows < 1000);
    StromSourceSplit afterFirst = first.checkpointAndClose();
    assertEquals(StromSourceSplit.Phase.SNAPSHOT, afterFirst.phase());
    assertNotNull(afterFirst.resumeKey(), "the state names the last key emitted: " + afterFirst);
    JsonNode lastKey = Json.parse(afterFirst.resumeKey());
    assertEquals(2, lastKey.size(), "both key columns, in declared order: " + afterFirst.resumeKey());
    assertTrue(emitted.containsKey(lastKey.get(0).asLong() + "/" + lastKey.get(1).asLong()),
        "the resume key is a key that was emitted: " + afterFirst.resumeKey());

    // 2. While no reader runs: changes to keys already delivered and to keys not yet read,
    // deletes of both, new keys before every key and after every key; several write batches.
    List<Long> delivered = new ArrayList<>();
    List<Long> pending = new ArrayList<>();
    for (long id : ids) {
      (emitted.containsKey(key(id)) ? delivered : pending).add(id);
    }
    upsert(table, delivered.subList(0, 200));
    upsert(table, pending.subList(0, 100));
    delete(table, List.of(delivered.get(300), delivered.get(301), pending.get(200)));
    upsert(table, List.of(-3L, -2L, -1L, 5000L, 5001L));
    upsert(table, delivered.subList(400, 450));

    // 3. The restored read catches the delivered keys up and stops again after two changes of
    // one message: a checkpoint in the middle of the catch-up.
    Reading second = new Reading(plan, afterFirst);
    second.emitWhile(r -> r.catchUpRows < 2);
    StromSourceSplit afterSecond = second.checkpointAndClose();
    assertEquals(afterFirst.resumeKey(), afterSecond.resumeKey(), "the catch-up delivers no new key");
    assertEquals(2, afterSecond.messageRowsEmitted(), "two rows of the first catch-up message: " + afterSecond);
    assertTrue(afterSecond.nextOffset() >= afterFirst.nextOffset(), afterSecond.toString());

    // 4. More changes, then a read restored from there runs until the emitted changelog holds
    // exactly the table; it must have gone through its catch-up, the rest of the snapshot and
    // the changelog after it.
    upsert(table, delivered.subList(0, 10));
    upsert(table, pending.subList(0, 10));
    upsert(table, List.of(-4L, 5002L));
    delete(table, List.of(-3L, delivered.get(5)));
    Reading third = new Reading(plan, afterSecond);
    third.emitUntil(r -> emitted.equals(written), PATIENCE);
    assertTrue(third.catchUpRows > 0 && third.snapshotRows > 0, "catch-up " + third.catchUpRows + ", snapshot " + third.snapshotRows);
    upsert(table, List.of(7L, 5003L));
    third.emitUntil(r -> emitted.equals(written), PATIENCE);
    assertTrue(third.logRows > 0, "changes after the resumed snapshot come from the changelog");
    StromSourceSplit afterThird = third.checkpointAndClose();
    assertEquals(StromSourceSplit.Phase.LOG, afterThird.phase(), afterThird.toString());
    assertNull(afterThird.resumeKey());
  }

  @Test
  void givenNoChangeSinceTheCheckpointWhenTheReadResumesShouldContinueWithTheNextKey() throws Exception {
    String table = "unchanged";
    createTable(table, 500);
    SourcePlan plan = plan(table);
    Reading first = new Reading(plan, StromSourceSplit.snapshot(null, 0, false));
    first.emitWhile(r -> r.snapshotRows < 123);
    StromSourceSplit split = first.releaseCheckpointAndClose();
    assertNotNull(split.resumeKey(), "the key outlives the batch: " + split);
    Reading second = new Reading(plan, split);
    second.emitUntil(r -> emitted.equals(written), PATIENCE);
    assertEquals(0, second.catchUpRows, "nothing changed: no catch-up");
    assertEquals(500 - 123, second.snapshotRows, "the rest of the snapshot, each key once");
    second.checkpointAndClose();
  }

  /** A one-bucket table keyed by (id BIGINT, day DATE) holding ids 0 .. rows - 1; returns them. */
  private List<Long> createTable(String table, int rows) {
    STROM.strom().createTable(
        TableSpec.of(DB, table)
            .column("id", "BIGINT", false)
            .column("day", "DATE", false)
            .column("name", "STRING")
            .primaryKey("id", "day")
            .bucketNum(1));
    List<Long> ids = new ArrayList<>();
    for (long id = 0; id < rows; id++) {
      ids.add(id);
    }
    upsert(table, ids);
    return ids;
  }

  private static SourcePlan plan(String table) {
    RowType produced = RowType.of(new org.apache.flink.table.types.logical.LogicalType[] {new VarCharType(VarCharType.MAX_LENGTH)},
        new String[] {"name"});
    return new SourcePlan(
        new StromTableAddress(STROM.endpoint(), DB, table),
        produced,
        List.of("name"),
        true,
        false,
        1,
        false,
        StartupMode.FULL,
        0,
        null,
        null,
        60_000,
        -1,
        -1,
        List.of("id", "day"));
  }

  private static String key(long id) {
    return id + "/" + day(id);
  }

  private static int day(long id) {
    return 20_000 + (int) Math.floorMod(id, 3);
  }

  /** Writes the rows of these ids with a new version of their name; the model follows. */
  private void upsert(String table, List<Long> ids) {
    version++;
    StromConnection strom = STROM.strom();
    Schema schema = new Schema(List.of(
        new Field("id", FieldType.notNullable(new ArrowType.Int(64, true)), null),
        new Field("day", FieldType.notNullable(new ArrowType.Date(DateUnit.DAY)), null),
        new Field("name", FieldType.nullable(ArrowType.Utf8.INSTANCE), null)));
    try (StromWriter writer = strom.upsertWriter(DB, table, null);
        VectorSchemaRoot root = VectorSchemaRoot.create(schema, strom.allocator())) {
      root.allocateNew();
      for (int r = 0; r < ids.size(); r++) {
        long id = ids.get(r);
        String name = key(id) + " v" + version;
        ((BigIntVector) root.getVector("id")).setSafe(r, id);
        ((DateDayVector) root.getVector("day")).setSafe(r, day(id));
        ((VarCharVector) root.getVector("name")).setSafe(r, name.getBytes(StandardCharsets.UTF_8));
        written.put(key(id), name);
      }
      root.setRowCount(ids.size());
      writer.write(root);
    }
  }

  private void delete(String table, List<Long> ids) {
    StromConnection strom = STROM.strom();
    Schema schema = new Schema(List.of(
        new Field("id", FieldType.notNullable(new ArrowType.Int(64, true)), null),
        new Field("day", FieldType.notNullable(new ArrowType.Date(DateUnit.DAY)), null)));
    try (StromWriter writer = strom.deleteWriter(DB, table);
        VectorSchemaRoot root = VectorSchemaRoot.create(schema, strom.allocator())) {
      root.allocateNew();
      for (int r = 0; r < ids.size(); r++) {
        ((BigIntVector) root.getVector("id")).setSafe(r, ids.get(r));
        ((DateDayVector) root.getVector("day")).setSafe(r, day(ids.get(r)));
        written.remove(key(ids.get(r)));
      }
      root.setRowCount(ids.size());
      writer.write(root);
    }
  }

  /**
   * One run of a split reader and the record emitter over one split, as Flink's source reader
   * drives them (one record emitted per step; a checkpoint between two steps).
   */
  private final class Reading implements SourceOutput<RowData> {
    private final StromSplitReader reader;
    private final StromSplitState state;
    private final StromRecordEmitter emitter = new StromRecordEmitter();
    private RecordsWithSplitIds<StromRecord> current;
    int snapshotRows;
    int catchUpRows;
    int logRows;
    private StromRecord.Kind emitting;

    Reading(SourcePlan plan, StromSourceSplit split) {
      this.reader = new StromSplitReader(plan, new SimpleCounter());
      this.state = new StromSplitState(split);
      reader.handleSplitsChanges(new SplitsAddition<>(List.of(split)));
    }

    /** Emits records one at a time while {@code condition} holds (or until none is ready). */
    void emitWhile(Predicate<Reading> condition) throws Exception {
      emitUntil(condition.negate(), PATIENCE);
    }

    void emitUntil(Predicate<Reading> done, Duration timeout) throws Exception {
      long deadline = System.nanoTime() + timeout.toNanos();
      while (!done.test(this)) {
        if (System.nanoTime() > deadline) {
          throw new AssertionError("timed out: " + snapshotRows + " snapshot, " + catchUpRows + " catch-up, "
              + logRows + " log rows emitted; state " + state.toSplit() + "; emitted " + emitted.size() + " keys, table "
              + written.size());
        }
        StromRecord record = current == null ? null : current.nextRecordFromSplit();
        if (record == null) {
          if (current != null) {
            current.recycle();
          }
          current = reader.fetch(); // waits up to 100 ms for the node when nothing is ready
          if (current.nextSplit() == null) {
            current.recycle();
            current = null;
          }
          continue;
        }
        emitting = record.kind;
        emitter.emitRecord(record, this, state);
      }
    }

    /** The split a checkpoint takes now; then the reader closes (the task ends). */
    StromSourceSplit checkpointAndClose() {
      StromSourceSplit split = state.toSplit();
      close();
      return split;
    }

    /**
     * The same after the batch of the last row emitted was released: Flink releases a batch
     * once its last row is out, and a checkpoint may come after that.
     */
    StromSourceSplit releaseCheckpointAndClose() {
      if (current != null) {
        current.recycle();
        current = null;
      }
      StromSourceSplit split = state.toSplit();
      close();
      return split;
    }

    private void close() {
      if (current != null) {
        current.recycle();
        current = null;
      }
      reader.close();
    }

    @Override
    public void collect(RowData row) {
      String name = row.getString(0).toString();
      String key = name.substring(0, name.indexOf(' '));
      RowKind kind = row.getRowKind();
      String before = emitted.get(key);
      switch (kind) {
        case INSERT, UPDATE_AFTER -> {
          assertNull(before, kind + " " + name + " of a key emitted as " + before + " (" + emitting + ")");
          emitted.put(key, name);
        }
        case UPDATE_BEFORE, DELETE -> {
          assertEquals(before, name, kind + " of a row not emitted as such (" + emitting + ")");
          emitted.remove(key);
        }
      }
      switch (emitting) {
        case SNAPSHOT_ROW -> snapshotRows++;
        case CATCH_UP_ROW -> catchUpRows++;
        default -> logRows++;
      }
    }

    @Override
    public void collect(RowData row, long timestamp) {
      collect(row);
    }

    @Override
    public void emitWatermark(Watermark watermark) {}

    @Override
    public void markIdle() {}

    @Override
    public void markActive() {}
  }
}
