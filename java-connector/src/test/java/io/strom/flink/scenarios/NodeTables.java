package io.strom.flink.scenarios;

import io.strom.flink.FlinkStromFixture;
import io.strom.flink.client.ScanBatch;
import io.strom.flink.client.ScanRequest;
import io.strom.flink.client.StromScanner;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import java.util.function.Supplier;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.flink.core.execution.JobClient;

/**
 * What scenario tests read back from the node, with the test's own client connection rather
 * than Flink jobs: while streaming jobs hold the MiniCluster's slots, a batch job checking the
 * result could wait for a slot forever.
 */
final class NodeTables {
  private NodeTables() {}

  /**
   * Every row the request reads (a primary-key table's snapshot, or a log table up to its end
   * when the scan starts), each row its column values joined by {@code |}, sorted.
   */
  static List<String> rows(FlinkStromFixture strom, ScanRequest request) {
    return rows(strom, request, row -> String.join("|", row));
  }

  /** Every row the request reads, as {@code format} makes it from the row's values, sorted. */
  static List<String> rows(FlinkStromFixture strom, ScanRequest request, Function<List<String>, String> format) {
    List<String> rows = new ArrayList<>();
    try (StromScanner scanner = strom.strom().scan(request)) {
      while (!scanner.isFinished()) {
        try (ScanBatch batch = scanner.poll(Duration.ofSeconds(30))) {
          if (batch == null) {
            continue;
          }
          VectorSchemaRoot root = batch.root();
          List<FieldVector> vectors = root.getFieldVectors();
          for (int r = 0; r < root.getRowCount(); r++) {
            List<String> values = new ArrayList<>(vectors.size());
            for (FieldVector vector : vectors) {
              values.add(String.valueOf(vector.getObject(r)));
            }
            rows.add(format.apply(values));
          }
        }
      }
    }
    rows.sort(null);
    return rows;
  }

  /** The current rows of a primary-key table (a snapshot scan). */
  static List<String> snapshot(FlinkStromFixture strom, String table) {
    return rows(strom, ScanRequest.snapshot(strom.database(), table));
  }

  /** The rows of a log table, up to its end when the scan starts. */
  static List<String> log(FlinkStromFixture strom, String table) {
    return rows(strom, ScanRequest.log(strom.database(), table));
  }

  /** The node's count of a primary-key table's current rows, or of a log table's records. */
  static long count(FlinkStromFixture strom, String table, boolean primaryKey) {
    return strom.strom().count(strom.database(), table, null, primaryKey);
  }

  /**
   * Polls {@code probe} until it returns {@code expected} or {@code timeout} passes; returns
   * the last value (the caller asserts on it, so a timeout fails with what was there).
   */
  static <T> T await(Supplier<T> probe, T expected, Duration timeout) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    T got = probe.get();
    while (!got.equals(expected) && System.nanoTime() < deadline) {
      Thread.sleep(500); // the polling interval of the condition awaited, not a synchronisation
      got = probe.get();
    }
    return got;
  }

  /** Cancels the jobs and waits for them to end (their native objects close as they do). */
  static void cancel(List<JobClient> jobs) throws Exception {
    for (JobClient job : jobs) {
      job.cancel().handle((r, e) -> null).get();
      job.getJobExecutionResult().handle((r, e) -> null).get();
    }
  }
}
