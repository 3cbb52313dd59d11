package io.strom.flink.bench;

import io.strom.flink.client.StromConnection;
import io.strom.flink.scenarios.ScenarioScript;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.checkpoint.CompletedCheckpointStats;
import org.apache.flink.table.api.StatementSet;
import org.apache.flink.table.api.TableEnvironment;

/**
 * Join state and speed, the Java half of strom-bench's {@code joins} scenario: the attribution
 * join of integration/scenarios/attribution.sql (its tables and its two INSERT statements, read
 * from the file) as a delta join ({@code table.optimizer.delta-join.strategy} = FORCE) and as a
 * regular streaming join (NONE), both checkpointing into a filesystem checkpoint directory.
 *
 * <p><b>Growth</b>: both jobs run side by side from empty tables while the input grows in
 * {@code --steps} steps of {@code --orders-per-step} orders (and visits of their users, as in the
 * file: one visit row per user and day, five orders per user over two days; every order matches
 * one visit, so the result has one row per order). After each step, once each job's result
 * table holds every row, the bench waits for that job's next completed checkpoint and prints
 * its size: Flink's checkpoint statistics (full state size and the bytes this checkpoint
 * wrote) and the bytes of its {@code chk-N} directory on disk.
 *
 * <p><b>Catch-up</b>: then each join alone, on a fresh result table, from a job start to the
 * full result over the whole input (rows/s = input rows / seconds from submission).
 *
 * <pre>
 * java --add-opens=java.base/java.nio=ALL-UNNAMED -Dstrom.jni.library=.../libstrom_jni.so -cp ... \
 *   io.strom.flink.bench.JoinStateBench --endpoint grpc://127.0.0.1:9123 --database joins \
 *   --script integration/scenarios/attribution.sql --checkpoint-dir /tmp/ckpt
 * </pre>
 */
public final class JoinStateBench {
  private JoinStateBench() {}

  /** How long one step may take before the bench gives up. */
  private static final Duration STEP_TIMEOUT = Duration.ofMinutes(10);

  /** One of the two ways to run the join: its planner strategy, its result table, its statement. */
  private record Join(String name, String strategy, String sink, String sql) {
    Join retargeted(String newSink) {
      return new Join(name, strategy, newSink, sql.replaceFirst("(?i)^INSERT INTO \\S+", "INSERT INTO " + newSink));
    }
  }

  private record Running(Join join, JobClient job) {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = BenchCluster.arguments(argv, "endpoint", "database", "script", "checkpoint-dir");
    String endpoint = args.get("endpoint");
    String database = args.get("database");
    int steps = Integer.parseInt(args.getOrDefault("steps", "10"));
    long ordersPerStep = Long.parseLong(args.getOrDefault("orders-per-step", "100000"));
    if (ordersPerStep % 10 != 0) {
      throw new IllegalArgumentException("--orders-per-step must be a multiple of 10 (five orders per user over two days)");
    }
    int parallelism = Integer.parseInt(args.getOrDefault("parallelism", "2"));
    Map<String, String> checkpointing = new LinkedHashMap<>();
    checkpointing.put("execution.checkpointing.interval", args.getOrDefault("checkpoint-interval", "5 s"));
    checkpointing.put("state.backend.type", args.getOrDefault("state-backend", "hashmap"));
    checkpointing.put("execution.checkpointing.storage", "filesystem");
    checkpointing.put("execution.checkpointing.dir", Path.of(args.get("checkpoint-dir")).toAbsolutePath().toUri().toString());
    ScenarioScript script = ScenarioScript.load(Path.of(args.get("script")));
    Join delta = new Join("delta", "FORCE", "log_page_ord_detail_ri", script.step("delta").get(0));
    Join regular = new Join("regular", "NONE", "log_page_ord_detail_regular", script.step("regular").get(0));
    Input input = new Input(ordersPerStep);

    // Slots: two streaming jobs and a batch load job at the given parallelism, with room to spare.
    try (StromConnection strom = StromConnection.connect(endpoint);
        BenchCluster flink = BenchCluster.start(4 * parallelism, parallelism, endpoint, database)) {
      TableEnvironment batch = flink.tableEnvironment(false, parallelism, Map.of());
      batch.executeSql("CREATE DATABASE IF NOT EXISTS " + database);
      script.run(batch, "tables");
      input.declareGenerators(batch);
      Bench bench = new Bench(flink, strom, database, checkpointing, parallelism);

      List<Running> running = new ArrayList<>();
      for (Join join : List.of(delta, regular)) {
        running.add(bench.start(join));
      }
      try {
        for (int step = 1; step <= steps; step++) {
          long start = System.nanoTime();
          input.load(batch, step);
          double loadSeconds = (System.nanoTime() - start) / 1e9;
          long expected = input.orders(step);
          Map<String, Double> seconds = bench.awaitResults(running, expected, start);
          for (Running r : running) {
            CompletedCheckpointStats checkpoint = bench.checkpointAfter(r, System.currentTimeMillis());
            Map<String, Object> line = bench.line("growth", r.join(), checkpoint);
            line.put("step", step);
            line.put("orders", expected);
            line.put("visits", input.visits(step));
            line.put("rows_in", expected + input.visits(step));
            line.put("step_rows_in", input.rowsPerStep());
            line.put("load_seconds", loadSeconds);
            line.put("step_seconds", seconds.get(r.join().name()));
            line.put("rows_per_s", input.rowsPerStep() / seconds.get(r.join().name()));
            BenchCluster.print(line);
          }
        }
      } finally {
        for (Running r : running) {
          stop(r.job());
        }
      }

      // Catch-up: each join alone over the whole input, from submission to the full result.
      long orders = input.orders(steps);
      long rowsIn = orders + input.visits(steps);
      for (Join join : List.of(delta, regular)) {
        Join fresh = join.retargeted(join.sink() + "_catchup");
        batch.executeSql("CREATE TABLE " + fresh.sink() + " LIKE " + join.sink()).await();
        long start = System.nanoTime();
        Running r = bench.start(fresh);
        try {
          double seconds = bench.awaitResults(List.of(r), orders, start).get(fresh.name());
          CompletedCheckpointStats checkpoint = bench.checkpointAfter(r, System.currentTimeMillis());
          Map<String, Object> line = bench.line("catchup", fresh, checkpoint);
          line.put("orders", orders);
          line.put("rows_in", rowsIn);
          line.put("seconds", seconds);
          line.put("rows_per_s", rowsIn / seconds);
          BenchCluster.print(line);
        } finally {
          stop(r.job());
        }
      }
    }
  }

  private static void stop(JobClient job) throws Exception {
    job.cancel().get();
    job.getJobExecutionResult().handle((result, error) -> null).get();
  }

  /** The growing input: orders and visits of new users per step, with the file's formulas. */
  private static final class Input {
    private final long ordersPerStep;
    /** Users per step: five orders each (as the file's 100 000 orders of 20 000 users). */
    private final long usersPerStep;

    Input(long ordersPerStep) {
      this.ordersPerStep = ordersPerStep;
      this.usersPerStep = ordersPerStep / 5;
    }

    long orders(int steps) {
      return steps * ordersPerStep;
    }

    /** One visit row per user and day, two days. */
    long visits(int steps) {
      return steps * 2 * usersPerStep;
    }

    long rowsPerStep() {
      return ordersPerStep + 2 * usersPerStep;
    }

    void declareGenerators(TableEnvironment batch) {
      for (String name : List.of("seq_orders", "seq_visits")) {
        batch.executeSql("CREATE TEMPORARY TABLE " + name + " (i BIGINT) WITH ('connector' = 'datagen',"
            + " 'rows-per-second' = '1000000000', 'fields.i.kind' = 'sequence', 'fields.i.start' = '0', 'fields.i.end' = '0')");
      }
    }

    /**
     * Writes step {@code step}'s orders and visits (one batch job). The statements are the
     * file's load step with the sequence moved on: order i belongs to user {@code MOD(i, U) + U
     * * (i / O)} (U users and O orders per step), visit i to user {@code MOD(i, U) + U * (i /
     * 2U)}; the day is {@code 1 + MOD(i / U, 2)} for both. The first step writes exactly the
     * file's rows.
     */
    void load(TableEnvironment batch, int step) throws Exception {
      long u = usersPerStep;
      StatementSet set = batch.createStatementSet();
      set.addInsertSql("INSERT INTO order_ri"
          + " SELECT CONCAT('o', CAST(i AS STRING)), CONCAT('u', CAST(MOD(i, " + u + ") + " + u + " * (i / " + ordersPerStep + ") AS STRING)),"
          + " CONCAT('12:', LPAD(CAST(MOD(i, 60) AS STRING), 2, '0')), CAST(MOD(i, 997) AS STRING),"
          + " CONCAT('2026-12-0', CAST(1 + MOD(i / " + u + ", 2) AS STRING))"
          + " FROM seq_orders " + range(orders(step - 1), orders(step)));
      set.addInsertSql("INSERT INTO log_page_ri"
          + " SELECT CONCAT('u', CAST(MOD(i, " + u + ") + " + u + " * (i / " + 2 * u + ") AS STRING)),"
          + " CONCAT('12:', LPAD(CAST(MOD(i, 37) AS STRING), 2, '0')), MOD(i, 11) + 1,"
          + " CONCAT('2026-12-0', CAST(1 + MOD(i / " + u + ", 2) AS STRING))"
          + " FROM seq_visits " + range(visits(step - 1), visits(step)));
      set.execute().await();
    }

    private static String range(long from, long to) {
      return "/*+ OPTIONS('fields.i.start' = '" + from + "', 'fields.i.end' = '" + (to - 1)
          + "', 'number-of-rows' = '" + (to - from) + "') */";
    }
  }

  /** Starting joins, waiting for their results and checkpoints. */
  private static final class Bench {
    private final BenchCluster flink;
    private final StromConnection strom;
    private final String database;
    private final Map<String, String> checkpointing;
    private final int parallelism;

    Bench(BenchCluster flink, StromConnection strom, String database, Map<String, String> checkpointing, int parallelism) {
      this.flink = flink;
      this.strom = strom;
      this.database = database;
      this.checkpointing = checkpointing;
      this.parallelism = parallelism;
    }

    /** Submits the join (printing what its plan holds) and returns at once. */
    Running start(Join join) {
      Map<String, String> options = new LinkedHashMap<>(checkpointing);
      options.put("table.optimizer.delta-join.strategy", join.strategy());
      TableEnvironment tEnv = flink.tableEnvironment(true, parallelism, options);
      String plan = tEnv.explainSql(join.sql());
      String optimized = plan.substring(plan.indexOf("== Optimized Physical Plan =="));
      Map<String, Object> line = new LinkedHashMap<>();
      line.put("op", "plan");
      line.put("join", join.name());
      line.put("sink", join.sink());
      line.put("delta_join", optimized.contains("DeltaJoin(joinType=[InnerJoin]"));
      line.put("regular_join", java.util.regex.Pattern.compile("(?<![A-Za-z])Join\\(joinType=").matcher(optimized).find());
      line.put("upsert_materialize", optimized.contains("upsertMaterialize=[true]"));
      line.put("changelog_normalize", optimized.contains("ChangelogNormalize"));
      BenchCluster.print(line);
      return new Running(join, tEnv.executeSql(join.sql()).getJobClient().orElseThrow());
    }

    /**
     * Waits until each join's result table holds {@code expected} rows; returns the seconds from
     * {@code startNanos} at which each did. Polls the log's record count first (cheap: no table
     * walk), then, once it holds enough records, the row count (a walk of the table's keys).
     */
    Map<String, Double> awaitResults(List<Running> running, long expected, long startNanos) throws Exception {
      Map<String, Double> reached = new LinkedHashMap<>();
      long deadline = System.nanoTime() + STEP_TIMEOUT.toNanos();
      while (reached.size() < running.size()) {
        for (Running r : running) {
          String name = r.join().name();
          if (reached.containsKey(name) || strom.count(database, r.join().sink(), null, false) < expected) {
            continue;
          }
          long rows = strom.count(database, r.join().sink(), null, true);
          if (rows > expected) {
            throw new IllegalStateException(name + ": " + rows + " result rows, expected " + expected);
          }
          if (rows == expected) {
            reached.put(name, (System.nanoTime() - startNanos) / 1e9);
          }
        }
        if (reached.size() < running.size()) {
          if (System.nanoTime() > deadline) {
            throw new IllegalStateException("results not complete after " + STEP_TIMEOUT + ": " + reached + " of " + running);
          }
          for (Running r : running) {
            if (r.job().getJobStatus().get().isGloballyTerminalState()) {
              throw new IllegalStateException(r.join().name() + " job ended: " + r.job().getJobStatus().get());
            }
          }
          Thread.sleep(100); // polling interval of the condition, not a synchronisation
        }
      }
      return reached;
    }

    /** The job's first checkpoint triggered after {@code afterMillis} (wall clock), once completed. */
    CompletedCheckpointStats checkpointAfter(Running r, long afterMillis) throws Exception {
      long deadline = System.nanoTime() + STEP_TIMEOUT.toNanos();
      while (System.nanoTime() < deadline) {
        CompletedCheckpointStats latest = flink.latestCheckpoint(r.job().getJobID());
        if (latest != null && latest.getTriggerTimestamp() > afterMillis) {
          return latest;
        }
        Thread.sleep(200); // polling interval of the condition, not a synchronisation
      }
      throw new IllegalStateException(r.join().name() + ": no checkpoint completed within " + STEP_TIMEOUT);
    }

    Map<String, Object> line(String op, Join join, CompletedCheckpointStats checkpoint) {
      Map<String, Object> line = new LinkedHashMap<>();
      line.put("op", op);
      line.put("join", join.name());
      line.put("checkpoint_id", checkpoint.getCheckpointId());
      line.put("checkpoint_state_bytes", checkpoint.getStateSize());
      line.put("checkpoint_checkpointed_bytes", checkpoint.getCheckpointedSize());
      line.put("checkpoint_dir_bytes", BenchCluster.bytesOnDisk(checkpoint));
      line.put("checkpoint_duration_ms", checkpoint.getEndToEndDuration());
      line.put("state_backend", checkpointing.get("state.backend.type"));
      line.put("parallelism", parallelism);
      return line;
    }
  }
}
