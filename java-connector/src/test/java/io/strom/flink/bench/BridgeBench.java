package io.strom.flink.bench;

import io.strom.flink.client.ScanBatch;
import io.strom.flink.client.ScanRequest;
import io.strom.flink.client.StromConnection;
import io.strom.flink.client.StromScanner;
import io.strom.flink.client.StromWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import io.strom.flink.client.internal.CData;
import io.strom.flink.client.internal.StromNative;
import org.apache.arrow.vector.VectorSchemaRoot;

/**
 * The Java half of strom-bench's {@code bridge} scenario: what a Java program gets from Strom
 * through the JNI bridge (the connector's client layer: scans and writes in the Rust client,
 * batches crossing as Arrow C Data), timed like the Rust half times the Rust client on the same
 * table, in the same run. Not a test: strom-bench starts it with the test classpath, waits for
 * its {@code {"op":"ready"}} line (after its warm-up), then sends one command per line ({@code
 * scan-full}, {@code scan-projected}, {@code write}, {@code quit}), interleaved with the Rust
 * client's own measurements, and reads one JSON line per command from its stdout.
 *
 * <pre>
 * java --add-opens=java.base/java.nio=ALL-UNNAMED -Dstrom.jni.lib=.../libstrom_jni.so -cp ... \
 *   io.strom.flink.bench.BridgeBench --endpoint grpc://127.0.0.1:9123 --database bench \
 *   --source bridge_src --write-table bridge_w_java --columns c00_bigint,...
 * </pre>
 *
 * Every scan reads every row of the source and fails if the count differs from the first
 * scan's; a write sends the batches of one full scan held in memory (so both sides write
 * exactly the rows they read) and waits until the node acknowledged all of them.
 */
public final class BridgeBench {
  private BridgeBench() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = parse(argv);
    String endpoint = args.get("endpoint");
    String database = args.get("database");
    String source = args.get("source");
    String writeTable = args.get("write-table");
    List<String> projected = Arrays.asList(args.get("columns").split(","));
    int batchRows = Integer.parseInt(args.getOrDefault("batch-rows", "65536"));
    long nodePid = Long.parseLong(args.getOrDefault("node-pid", "0"));
    try (StromConnection strom = StromConnection.connect(endpoint)) {
      ScanRequest full = ScanRequest.log(database, source);
      ScanRequest narrow = ScanRequest.log(database, source).columns(projected);
      // Unmeasured scans first: JIT compilation, the native library's first calls, the node's
      // page cache. Pairs of scans until one pair compiled (almost) nothing more (at least 3,
      // at most 20): with 2 cores a compiler thread still busy during the measured scans took
      // CPU from them (ratios of 0.7-1.1 between runs).
      long rows = scan(strom, full);
      java.lang.management.CompilationMXBean jit = java.lang.management.ManagementFactory.getCompilationMXBean();
      int warmups = 0;
      long compiled;
      do {
        long before = jit.getTotalCompilationTime();
        scan(strom, narrow);
        scan(strom, full);
        compiled = jit.getTotalCompilationTime() - before;
        warmups++;
      } while (warmups < 20 && (warmups < 3 || compiled > 5));
      System.out.printf("{\"op\":\"warm-up\",\"scan_pairs\":%d,\"jit_ms_in_last_pair\":%d}%n", warmups, compiled);

      List<ScanBatch> held = new ArrayList<>();
      try (StromScanner scanner = strom.scan(full)) {
        while (!scanner.isFinished()) {
          ScanBatch batch = scanner.poll(Duration.ofSeconds(30));
          if (batch != null) {
            held.add(batch);
          }
        }
      }
      // A scan returns each bucket's part of a written batch: regroup them into batches of
      // the size the Rust side writes (--batch-rows), before any clock starts.
      List<VectorSchemaRoot> batches = regroup(held, batchRows, strom);
      held.forEach(ScanBatch::close);
      try {
        if (args.containsKey("ffi-probe")) {
          ffiProbe(strom, batches);
        }
        // One unmeasured pass: class loading and JIT of the export path happen on first use.
        write(strom, database, writeTable, batches);
        System.out.printf("{\"op\":\"ready\",\"rows\":%d}%n", rows);
        System.out.flush();
        // strom-bench sends one command per line and interleaves them with the Rust client's
        // own measurements, so both sides meet the machine in the same state.
        java.io.BufferedReader commands =
            new java.io.BufferedReader(new java.io.InputStreamReader(System.in, java.nio.charset.StandardCharsets.UTF_8));
        for (String command = commands.readLine(); command != null && !command.equals("quit"); command = commands.readLine()) {
          long start = System.nanoTime();
          long cpuStart = cpuNanos();
          double nodeStart = nodeCpu(nodePid);
          long[] callNanos = new long[1];
          long done =
              switch (command) {
                case "scan-full" -> scan(strom, full);
                case "scan-projected" -> scan(strom, narrow);
                case "write" -> write(strom, database, writeTable, batches, callNanos);
                default -> throw new IllegalArgumentException("unknown command " + command);
              };
          double seconds = (System.nanoTime() - start) / 1e9;
          double cpu = (cpuNanos() - cpuStart) / 1e9;
          double node = nodeCpu(nodePid) - nodeStart;
          if (!command.equals("write") && done != rows) {
            throw new IllegalStateException(command + " read " + done + " rows, the first scan " + rows);
          }
          System.out.printf(
              "{\"op\":\"%s\",\"rows\":%d,\"seconds\":%.6f,\"cpu_seconds\":%.6f,\"node_cpu_seconds\":%.3f,\"seconds_in_write_async\":%.6f}%n",
              command, done, seconds, cpu, node, callNanos[0] / 1e9);
          System.out.flush();
        }
      } finally {
        batches.forEach(VectorSchemaRoot::close);
      }
    }
  }

  /** One pass of writes of {@code batches} (all in flight, then flush); returns the rows. */
  private static long write(StromConnection strom, String database, String table, List<VectorSchemaRoot> batches, long... callNanos) {
    long rows = 0;
    try (StromWriter writer = strom.appendWriter(database, table)) {
      long calls = System.nanoTime();
      for (VectorSchemaRoot batch : batches) {
        writer.writeAsync(batch);
        rows += batch.getRowCount();
      }
      if (callNanos.length > 0) {
        // Where a pass's time goes: inside writeAsync (export, JNI, encode, enqueue) or after.
        callNanos[0] = System.nanoTime() - calls;
      }
      writer.flush();
    }
    return rows;
  }

  /**
   * The C Data round trip alone (export in Java, import and re-export in Rust, import in
   * Java), per batch: what crossing JNI costs without the client and the network.
   */
  private static void ffiProbe(StromConnection strom, List<VectorSchemaRoot> batches) {
    for (int pass = 0; pass < 5; pass++) {
      long t0 = System.nanoTime();
      long cpu0 = cpuNanos();
      for (VectorSchemaRoot batch : batches) {
        try (VectorSchemaRoot back =
            CData.importFrom(strom.allocator(), (outArray, outSchema) -> {
              CData.exportTo(strom.allocator(), batch, (inArray, inSchema) -> {
                StromNative.roundTripForTesting(inArray, inSchema, outArray, outSchema);
                return null;
              });
              return true;
            })) {
          back.getRowCount();
        }
      }
      System.out.printf("{\"op\":\"write-calls\",\"ffi_round_trip_ms_per_batch\":%.3f,\"cpu_ms_per_batch\":%.3f}%n",
          (System.nanoTime() - t0) / 1e6 / batches.size(), (cpuNanos() - cpu0) / 1e6 / batches.size());
    }
  }

  /** The rows of {@code parts}, copied into roots of {@code rows} rows (the last one shorter). */
  private static List<VectorSchemaRoot> regroup(List<ScanBatch> parts, int rows, StromConnection strom) {
    List<VectorSchemaRoot> out = new ArrayList<>();
    VectorSchemaRoot current = null;
    for (ScanBatch part : parts) {
      VectorSchemaRoot source = part.root();
      for (int from = 0; from < source.getRowCount(); ) {
        if (current == null || current.getRowCount() == rows) {
          current = VectorSchemaRoot.create(source.getSchema(), strom.allocator());
          current.allocateNew();
          current.setRowCount(0);
          out.add(current);
        }
        int take = Math.min(rows - current.getRowCount(), source.getRowCount() - from);
        int at = current.getRowCount();
        for (int c = 0; c < source.getFieldVectors().size(); c++) {
          org.apache.arrow.vector.FieldVector to = current.getVector(c);
          org.apache.arrow.vector.FieldVector in = source.getVector(c);
          for (int r = 0; r < take; r++) {
            to.copyFromSafe(from + r, at + r, in);
          }
        }
        current.setRowCount(at + take);
        from += take;
      }
    }
    return out;
  }

  /** Reads a bounded scan to its end; returns the rows read. */
  private static long scan(StromConnection strom, ScanRequest request) {
    long rows = 0;
    try (StromScanner scanner = strom.scan(request)) {
      while (!scanner.isFinished()) {
        try (ScanBatch batch = scanner.poll(Duration.ofSeconds(30))) {
          if (batch != null) {
            rows += batch.root().getRowCount();
          }
        }
      }
    }
    return rows;
  }

  /** The node's CPU seconds from /proc (its pid from --node-pid; 0 when unknown). */
  private static double nodeCpu(long pid) {
    if (pid <= 0) {
      return 0;
    }
    try {
      String stat = java.nio.file.Files.readString(java.nio.file.Path.of("/proc/" + pid + "/stat"));
      String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
      // utime and stime (fields 14 and 15 of the line), in clock ticks of 1/100 s on Linux.
      return (Long.parseLong(fields[11]) + Long.parseLong(fields[12])) / 100.0;
    } catch (java.io.IOException e) {
      return 0;
    }
  }

  /** CPU time of the whole JVM (every thread, the Rust client's included). */
  private static long cpuNanos() {
    return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean())
        .getProcessCpuTime();
  }

  private static Map<String, String> parse(String[] argv) {
    Map<String, String> args = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) {
      if (!argv[i].startsWith("--")) {
        throw new IllegalArgumentException("expected --name value pairs, got " + argv[i]);
      }
      args.put(argv[i].substring(2), argv[i + 1]);
    }
    for (String required : List.of("endpoint", "database", "source", "columns", "write-table")) {
      if (!args.containsKey(required)) {
        throw new IllegalArgumentException("missing --" + required);
      }
    }
    return args;
  }
}
