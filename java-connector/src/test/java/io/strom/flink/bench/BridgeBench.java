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

/**
 * The Java half of strom-bench's {@code bridge} scenario: what a Java program gets from Strom
 * through the JNI bridge (the connector's client layer: scans and writes in the Rust client,
 * batches crossing as Arrow C Data), timed like the Rust half times the Rust client on the same
 * table, in the same run. Not a test: strom-bench starts it with the test classpath and reads
 * one JSON line per measurement from its stdout.
 *
 * <pre>
 * java --add-opens=java.base/java.nio=ALL-UNNAMED -Dstrom.jni.lib=.../libstrom_jni.so -cp ... \
 *   io.strom.flink.bench.BridgeBench --endpoint grpc://127.0.0.1:9123 --database bench \
 *   --source bridge_src --write-table bridge_w_java --iterations 5 --columns c00_bigint,...
 * </pre>
 *
 * Every scan reads every row of the source and fails if the count differs from the first
 * scan's; the write sends the batches of one full scan held in memory (so both sides write
 * exactly the rows they read) and waits until the node acknowledged all of them.
 */
public final class BridgeBench {
  private BridgeBench() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = parse(argv);
    String endpoint = args.get("endpoint");
    String database = args.get("database");
    String source = args.get("source");
    int iterations = Integer.parseInt(args.getOrDefault("iterations", "5"));
    List<String> projected = Arrays.asList(args.get("columns").split(","));
    try (StromConnection strom = StromConnection.connect(endpoint)) {
      // One unmeasured scan: JIT, the native library's first calls, the node's page cache.
      long rows = scan(strom, ScanRequest.log(database, source));
      for (String which : List.of("full", "projected")) {
        double[] seconds = new double[iterations];
        for (int i = 0; i < iterations; i++) {
          ScanRequest request = ScanRequest.log(database, source);
          if (which.equals("projected")) {
            request = request.columns(projected);
          }
          long start = System.nanoTime();
          long read = scan(strom, request);
          seconds[i] = (System.nanoTime() - start) / 1e9;
          if (read != rows) {
            throw new IllegalStateException(which + " scan read " + read + " rows, the first read " + rows);
          }
        }
        print("scan-" + which, rows, seconds);
      }
      String writeTable = args.get("write-table");
      if (writeTable != null) {
        List<ScanBatch> held = new ArrayList<>();
        try (StromScanner scanner = strom.scan(ScanRequest.log(database, source))) {
          while (!scanner.isFinished()) {
            ScanBatch batch = scanner.poll(Duration.ofSeconds(30));
            if (batch != null) {
              held.add(batch);
            }
          }
        }
        try {
          long start = System.nanoTime();
          long written = 0;
          try (StromWriter writer = strom.appendWriter(database, writeTable)) {
            for (ScanBatch batch : held) {
              writer.writeAsync(batch.root());
              written += batch.root().getRowCount();
            }
            writer.flush();
          }
          print("write", written, new double[] {(System.nanoTime() - start) / 1e9});
        } finally {
          held.forEach(ScanBatch::close);
        }
      }
    }
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

  private static void print(String op, long rows, double[] seconds) {
    StringBuilder json = new StringBuilder("{\"op\":\"").append(op).append("\",\"rows\":").append(rows).append(",\"seconds\":[");
    for (int i = 0; i < seconds.length; i++) {
      json.append(i > 0 ? "," : "").append(seconds[i]);
    }
    System.out.println(json.append("]}"));
    System.out.flush();
  }

  private static Map<String, String> parse(String[] argv) {
    Map<String, String> args = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) {
      if (!argv[i].startsWith("--")) {
        throw new IllegalArgumentException("expected --name value pairs, got " + argv[i]);
      }
      args.put(argv[i].substring(2), argv[i + 1]);
    }
    for (String required : List.of("endpoint", "database", "source", "columns")) {
      if (!args.containsKey(required)) {
        throw new IllegalArgumentException("missing --" + required);
      }
    }
    return args;
  }
}
