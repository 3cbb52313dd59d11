package io.strom.flink.bench;

import io.strom.flink.lookup.LookupCounters;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.table.api.TableEnvironment;

/**
 * Async lookup join throughput, the Java half of strom-bench's {@code joins} scenario: a
 * stream of probe rows ({@code datagen}, ids drawn uniformly from a range {@code
 * 1/(1-miss-ratio)} times the table's key count, so that share of them misses) joined with
 * {@code FOR SYSTEM_TIME AS OF proc_time} to the primary-key table strom-bench loaded (the
 * {@code pk} scenarios' users table: ids 0..n), through the async lookup function with default
 * connector options (no cache), with the Flink options docs/flink.md recommends ({@link
 * #joinOptions}), into a blackhole. One JSON line per job with its rows and Flink's net
 * runtime, per parallelism and per {@code table.exec.async-lookup.buffer-capacity} (the most
 * keys in flight per subtask; {@code --buffer-capacity 100,1000,2000}: Flink's default and the
 * values docs/flink.md recommends); a {@code datagen → blackhole} job of the same probe rows first,
 * the ceiling of the generator. strom-bench compares the join's rows/s with the node's own
 * batched lookup rate on the same table.
 *
 * <pre>
 * java --add-opens=java.base/java.nio=ALL-UNNAMED -Dstrom.jni.library=.../libstrom_jni.so -cp ... \
 *   io.strom.flink.bench.LookupJoinBench --endpoint grpc://127.0.0.1:9123 --database bench \
 *   --table pk_users_1m --keys 1000000 --probe-rows 2000000 --parallelism 1,2 --buffer-capacity 100,1000
 * </pre>
 */
public final class LookupJoinBench {
  private LookupJoinBench() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = BenchCluster.arguments(argv, "endpoint", "database", "table", "keys");
    String table = args.get("table");
    long keys = Long.parseLong(args.get("keys"));
    long probeRows = Long.parseLong(args.getOrDefault("probe-rows", "2000000"));
    double missRatio = Double.parseDouble(args.getOrDefault("miss-ratio", "0.1"));
    List<Integer> parallelisms = Arrays.stream(args.getOrDefault("parallelism", "1,2").split(",")).map(Integer::valueOf).toList();
    List<Integer> capacities = Arrays.stream(args.getOrDefault("buffer-capacity", "100").split(",")).map(Integer::valueOf).toList();
    int most = parallelisms.stream().max(Integer::compare).orElse(1);
    long idRange = Math.round(keys / (1 - missRatio));

    try (BenchCluster flink = BenchCluster.start(2 * most, most, args.get("endpoint"), args.get("database"))) {
      for (int parallelism : parallelisms) {
        TableEnvironment tEnv = flink.tableEnvironment(true, parallelism, Map.of());
        createTables(tEnv, probeRows, idRange);
        String probe = "default_catalog.default_database.probe";
        if (parallelism == parallelisms.get(0)) {
          // Unmeasured: class loading, JIT, the native library's first calls, the node's caches.
          run(tEnv, "warmup", parallelism, 0, String.format(join(table), "/*+ OPTIONS('number-of-rows' = '200000') */"), 200_000);
        }
        run(tEnv, "datagen-to-blackhole", parallelism, 0,
            "INSERT INTO default_catalog.default_database.probe_sink SELECT id FROM " + probe, probeRows);
        for (int capacity : capacities) {
          Map<String, String> options = joinOptions();
          options.put("table.exec.async-lookup.buffer-capacity", String.valueOf(capacity));
          TableEnvironment joinEnv = flink.tableEnvironment(true, parallelism, options);
          createTables(joinEnv, probeRows, idRange);
          run(joinEnv, "lookup-join", parallelism, capacity, String.format(join(table), ""), probeRows, options);
        }
      }
    }
  }

  /**
   * The Flink options of the join jobs: the ones docs/flink.md recommends for async lookup
   * joins (object reuse; Flink's per-row async timeout off, the connector's {@code
   * lookup.answer-timeout} guarding each stream instead), then the system property {@code
   * strom.bench.flink-options} ({@code key=value,key=value}), which adds to or overrides them —
   * e.g. {@code pipeline.object-reuse=false,table.exec.async-lookup.timeout=3min} measures
   * Flink's defaults. Each job's line names the options it ran with.
   */
  private static Map<String, String> joinOptions() {
    Map<String, String> options = new LinkedHashMap<>();
    options.put("pipeline.object-reuse", "true");
    options.put("table.exec.async-lookup.timeout", "0");
    String given = System.getProperty("strom.bench.flink-options", "");
    for (String pair : given.split(",")) {
      if (!pair.isBlank()) {
        String[] kv = pair.split("=", 2);
        options.put(kv[0].trim(), kv.length > 1 ? kv[1].trim() : "");
      }
    }
    return options;
  }

  private static void createTables(TableEnvironment tEnv, long probeRows, long idRange) {
    tEnv.executeSql("CREATE TEMPORARY TABLE default_catalog.default_database.probe (id BIGINT, proc_time AS PROCTIME())"
        + " WITH ('connector' = 'datagen', 'rows-per-second' = '1000000000', 'number-of-rows' = '" + probeRows + "',"
        + " 'fields.id.kind' = 'random', 'fields.id.min' = '0', 'fields.id.max' = '" + (idRange - 1) + "')");
    tEnv.executeSql("CREATE TEMPORARY TABLE default_catalog.default_database.probe_sink (id BIGINT)"
        + " WITH ('connector' = 'blackhole')");
    tEnv.executeSql("CREATE TEMPORARY TABLE default_catalog.default_database.joined_sink"
        + " (id BIGINT, name STRING, city STRING, balance DOUBLE) WITH ('connector' = 'blackhole')");
  }

  /** The join job's SQL; {@code %s} takes the probe's hints. */
  private static String join(String table) {
    return "INSERT INTO default_catalog.default_database.joined_sink"
        + " SELECT p.id, u.name, u.city, u.balance FROM default_catalog.default_database.probe %s AS p"
        + " JOIN " + table + " FOR SYSTEM_TIME AS OF p.proc_time AS u ON p.id = u.id";
  }

  /** Runs one job to its end and prints its line ({@code capacity} 0: not a lookup join). */
  private static void run(TableEnvironment tEnv, String op, int parallelism, int capacity, String sql, long rows) throws Exception {
    run(tEnv, op, parallelism, capacity, sql, rows, Map.of());
  }

  private static void run(
      TableEnvironment tEnv, String op, int parallelism, int capacity, String sql, long rows, Map<String, String> flinkOptions)
      throws Exception {
    long requestsBefore = LookupCounters.requests();
    long keysBefore = LookupCounters.keys();
    long start = System.nanoTime();
    KeyRate rate = capacity > 0 ? KeyRate.start(keysBefore, rows) : null;
    JobExecutionResult done;
    try {
      done = tEnv.executeSql(sql).getJobClient().orElseThrow().getJobExecutionResult().get();
    } finally {
      if (rate != null) {
        rate.stop();
      }
    }
    double wall = (System.nanoTime() - start) / 1e9;
    if (op.equals("warmup")) {
      return;
    }
    Map<String, Object> line = new LinkedHashMap<>();
    line.put("op", op);
    line.put("parallelism", parallelism);
    if (capacity > 0) {
      line.put("buffer_capacity", capacity);
    }
    line.put("rows", rows);
    line.put("wall_seconds", wall);
    line.put("net_seconds", done.getNetRuntime() / 1e3);
    line.put("rows_per_s", rows / (done.getNetRuntime() / 1e3));
    long requests = LookupCounters.requests() - requestsBefore;
    if (requests > 0) {
      line.put("lookup_requests", requests);
      line.put("keys_per_request", (double) (LookupCounters.keys() - keysBefore) / requests);
    }
    if (rate != null) {
      rate.report(line);
    }
    if (!flinkOptions.isEmpty()) {
      line.put("flink_options", flinkOptions);
    }
    BenchCluster.print(line);
  }

  /**
   * The job's rate once warm: the lookup function's keys sent, sampled every 100 ms from this
   * thread's side, between the samples where {@link #FROM} and {@link #TO} of the probe rows
   * had been sent. The first part of a job pays for its generated classes being compiled (C2
   * took ~10 s of CPU in the first 15 s of a 50 s join on 2 cores, next to nothing afterwards:
   * HotSpot's compilation log of a bench run), which a job that runs for hours pays once; the
   * whole-job rate ({@code rows_per_s}) keeps it. Keys are sent at most the buffer capacity
   * ahead of their rows being joined, so the rate of keys sent is the join's rate.
   */
  private static final class KeyRate {
    static final double FROM = 0.4;
    static final double TO = 0.95;
    private final long base;
    private final long rows;
    /** Written by the sampler only; read after {@link #stop} joined it. */
    private final java.util.List<long[]> samples = new java.util.ArrayList<>();
    private final Thread sampler;

    private KeyRate(long base, long rows) {
      this.base = base;
      this.rows = rows;
      this.sampler = new Thread(this::sample, "lookup-bench-key-rate");
      sampler.setDaemon(true);
    }

    static KeyRate start(long base, long rows) {
      KeyRate rate = new KeyRate(base, rows);
      rate.sampler.start();
      return rate;
    }

    private void sample() {
      while (true) {
        samples.add(new long[] {System.nanoTime(), LookupCounters.keys() - base});
        try {
          Thread.sleep(100);
        } catch (InterruptedException e) {
          return;
        }
      }
    }

    void stop() throws InterruptedException {
      // The sampler ends when its sleep is interrupted.
      sampler.interrupt();
      sampler.join();
    }

    void report(Map<String, Object> line) {
      long[] from = null;
      long[] to = null;
      for (long[] s : samples) {
        if (from == null && s[1] >= FROM * rows) {
          from = s;
        }
        if (to == null && s[1] >= TO * rows) {
          to = s;
        }
      }
      if (from != null && to != null && to[0] > from[0]) {
        line.put("steady_rows_per_s", (to[1] - from[1]) / ((to[0] - from[0]) / 1e9));
        line.put("steady_window", FROM + "-" + TO + " of the probe rows");
      }
      // Keys sent per second over the job (one value per elapsed second), for the docs.
      java.util.List<Long> perSecond = new java.util.ArrayList<>();
      long t0 = samples.isEmpty() ? 0 : samples.get(0)[0];
      long last = 0;
      int second = 1;
      for (long[] s : samples) {
        if (s[0] - t0 >= second * 1_000_000_000L) {
          perSecond.add(s[1] - last);
          last = s[1];
          second++;
        }
      }
      line.put("keys_per_second_series", perSecond);
    }
  }
}
