package io.strom.flink.source;

import static io.strom.flink.source.SourceTestSupport.append;
import static io.strom.flink.source.SourceTestSupport.idNameRows;
import static io.strom.flink.source.SourceTestSupport.await;
import static io.strom.flink.source.SourceTestSupport.storedRecords;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.strom.flink.FlinkStromFixture;
import io.strom.flink.client.ScanBatch;
import io.strom.flink.client.ScanRequest;
import io.strom.flink.client.StromScanner;
import io.strom.flink.client.TableSpec;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.executiongraph.AccessExecutionGraph;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.test.junit5.InjectMiniCluster;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The node dies under a running job (SIGKILL, as a crash or a power cut of its machine would
 * end it) and comes back on the same port and data: the job's reads and writes fail, Flink
 * restarts it from its last checkpoint (offsets in the source's split state, the sink's
 * acknowledged writes before it), and once the node answers again it copies on. A primary-key
 * table written by it ends with every key once and no change recorded twice: the replayed
 * upserts since the checkpoint are no-ops on the node.
 */
class NodeFailoverIT {
  @RegisterExtension
  static final MiniClusterExtension FLINK = FlinkStromFixture.miniCluster(2);

  @RegisterExtension
  static final FlinkStromFixture STROM = new FlinkStromFixture("failover");

  private static final String DB = STROM.database();
  private static final List<String> ID_NAME = List.of("id", "name");

  @Test
  void aJobWhoseNodeIsKilledResumesFromItsCheckpointWithEveryKeyOnce(@InjectMiniCluster MiniCluster flink) throws Exception {
    STROM.strom().createTable(TableSpec.of(DB, "events").column("id", "BIGINT").column("name", "STRING").bucketNum(2));
    STROM.strom().createTable(
        TableSpec.of(DB, "latest")
            .column("id", "BIGINT", false)
            .column("name", "STRING")
            .primaryKey("id")
            .bucketNum(2));
    for (long id = 0; id < 1000; id += 250) {
      append(STROM.strom(), DB, "events", ID_NAME, idNameRows(id, id + 250));
    }
    Configuration conf = new Configuration();
    conf.setString("execution.checkpointing.interval", "200 ms");
    // Restart attempts while the node is down fail at once (no endpoint): allow many, close together.
    conf.setString("restart-strategy.type", "fixed-delay");
    conf.setString("restart-strategy.fixed-delay.attempts", "1000");
    conf.setString("restart-strategy.fixed-delay.delay", "200 ms");
    // An insert-only query has no upsert key; Flink 2.3 then asks for ON CONFLICT unless told
    // the sink copes: a Strom primary-key table merges every row by its key (docs/flink.md).
    conf.setString("table.exec.sink.require-on-conflict", "false");
    TableEnvironment tEnv =
        STROM.flink(EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build(), 1);
    JobClient job = tEnv.executeSql("INSERT INTO latest SELECT id, name FROM events").getJobClient().orElseThrow();
    try {
      await("the job copied the first rows", Duration.ofSeconds(60), () -> storedRecords(STROM.strom(), DB, "latest") >= 1000);
      // More rows, and the node dies while the job reads and writes them.
      append(STROM.strom(), DB, "events", ID_NAME, idNameRows(1000, 2000));
      STROM.node().kill();
      STROM.node().restart();
      // Rows written after the restart are read by the restarted job too.
      append(STROM.strom(), DB, "events", ID_NAME, idNameRows(2000, 3000));
      await("the restarted job copied every row", Duration.ofSeconds(120),
          () -> storedRecords(STROM.strom(), DB, "latest") >= 3000);
      assertEquals(JobStatus.RUNNING, job.getJobStatus().get(), "the job is running again, not failed");
      AccessExecutionGraph graph = flink.getExecutionGraph(job.getJobID()).get();
      assertNotNull(graph.getFailureInfo(), "the job failed over while the node was down");
      assertTrue(graph.getStatusTimestamp(JobStatus.RESTARTING) > 0, "the job restarted");
    } finally {
      job.cancel().get();
      job.getJobExecutionResult().handle((r, e) -> null).get();
    }

    // Every key once in the table, with its value.
    Map<Long, String> table = read(ScanRequest.snapshot(DB, "latest"), false);
    assertEquals(3000, table.size());
    for (long id = 0; id < 3000; id++) {
      assertEquals("n" + id, table.get(id), "key " + id);
    }
    // And once in its changelog: an insert each, no update from a replayed upsert.
    Map<Long, String> changes = read(ScanRequest.log(DB, "latest"), true);
    assertEquals(3000, changes.size(), "one change per key");
    assertEquals(3000, storedRecords(STROM.strom(), DB, "latest"), "no change recorded twice");
    for (Map.Entry<Long, String> change : changes.entrySet()) {
      assertEquals("+I", change.getValue(), "key " + change.getKey());
    }
  }

  /**
   * id → name of a snapshot, or id → change type of a changelog (failing on a key seen twice:
   * the map would hide it).
   */
  private static Map<Long, String> read(ScanRequest request, boolean changelog) {
    Map<Long, String> out = new TreeMap<>();
    try (StromScanner scanner = STROM.strom().scan(request)) {
      while (!scanner.isFinished()) {
        try (ScanBatch batch = scanner.poll(Duration.ofSeconds(30))) {
          if (batch == null) {
            continue;
          }
          VectorSchemaRoot root = batch.root();
          BigIntVector id = (BigIntVector) root.getVector("id");
          FieldVector value = root.getVector(changelog ? "_change_type" : "name");
          for (int r = 0; r < root.getRowCount(); r++) {
            String previous = out.put(id.get(r), String.valueOf(value.getObject(r)));
            if (previous != null) {
              throw new AssertionError("key " + id.get(r) + " read twice from " + request);
            }
          }
        }
      }
    }
    return out;
  }
}
