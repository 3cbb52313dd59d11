package io.strom.flink.bench;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;

/**
 * Flink end to end, the second half of strom-bench's {@code bridge} scenario: Flink SQL jobs
 * (batch mode, an in-process MiniCluster) reading a Strom table into a blackhole and writing
 * datagen rows into Strom, against Flink's own {@code datagen → blackhole} on the same schema
 * (the ceiling of a Flink pipeline on this machine). One JSON line per job with its rows, wall
 * time (submission included) and Flink's net runtime.
 *
 * <p>The source table is the 43-column table strom-bench's Rust half loaded ({@code --source});
 * the datagen tables have its schema, strings of 12 characters (the table's average).
 */
public final class FlinkBench {
  private FlinkBench() {}

  private static final String[] TYPES = {"BIGINT", "DOUBLE", "STRING", "INT", "BOOLEAN", "TIMESTAMP(3)"};
  private static final String[] SHORT = {"bigint", "double", "string", "int", "bool", "ts"};
  /** The 13 columns of the projected scan (strom-bench's data::PROJECTED). */
  private static final int[] PROJECTED = {0, 2, 5, 7, 9, 12, 16, 20, 24, 25, 29, 33, 38};

  private static String name(int i) {
    return String.format("c%02d_%s", i, SHORT[i % TYPES.length]);
  }

  private static String columns(int[] which, boolean withTypes) {
    List<String> out = new ArrayList<>();
    for (int i : which) {
      out.add(withTypes ? name(i) + " " + TYPES[i % TYPES.length] : name(i));
    }
    return String.join(", ", out);
  }

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) {
      args.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
    }
    String endpoint = args.get("endpoint");
    String database = args.get("database");
    String source = args.get("source");
    String sinkTable = args.get("sink-table");
    long rows = Long.parseLong(args.getOrDefault("rows", "1000000"));
    int parallelism = Integer.parseInt(args.getOrDefault("parallelism", "2"));
    int[] all = new int[43];
    Arrays.setAll(all, i -> i);

    Configuration conf = new Configuration();
    conf.setString("parallelism.default", String.valueOf(parallelism));
    TableEnvironment tEnv = TableEnvironment.create(EnvironmentSettings.newInstance().inBatchMode().withConfiguration(conf).build());
    tEnv.executeSql("CREATE CATALOG strom WITH ('type' = 'strom', 'endpoint' = '" + endpoint + "', 'default-database' = '" + database + "')");
    for (String kind : List.of("full", "projected")) {
      int[] cols = kind.equals("full") ? all : PROJECTED;
      StringBuilder gen = new StringBuilder("CREATE TEMPORARY TABLE gen_" + kind + " (" + columns(cols, true) + ") WITH ('connector' = 'datagen', 'number-of-rows' = '" + rows + "', 'rows-per-second' = '1000000000'");
      for (int i : cols) {
        if (TYPES[i % TYPES.length].equals("STRING")) {
          gen.append(", 'fields.").append(name(i)).append(".length' = '12'");
        }
      }
      tEnv.executeSql(gen.append(")").toString());
      tEnv.executeSql("CREATE TEMPORARY TABLE bh_" + kind + " (" + columns(cols, true) + ") WITH ('connector' = 'blackhole')");
    }
    // One unmeasured job: class loading, JIT, the MiniCluster's first start.
    run(tEnv, "warmup", "INSERT INTO bh_projected SELECT * FROM gen_projected /*+ OPTIONS('number-of-rows' = '10000') */", 10_000);

    run(tEnv, "datagen-full-to-blackhole", "INSERT INTO bh_full SELECT * FROM gen_full", rows);
    run(tEnv, "datagen-projected-to-blackhole", "INSERT INTO bh_projected SELECT * FROM gen_projected", rows);
    long stored = Long.parseLong(args.getOrDefault("source-rows", String.valueOf(rows)));
    run(tEnv, "strom-projected-to-blackhole",
        "INSERT INTO bh_projected SELECT " + columns(PROJECTED, false) + " FROM strom." + database + "." + source, stored);
    run(tEnv, "strom-full-to-blackhole", "INSERT INTO bh_full SELECT * FROM strom." + database + "." + source, stored);
    if (sinkTable != null) {
      run(tEnv, "datagen-full-to-strom", "INSERT INTO strom." + database + "." + sinkTable + " SELECT * FROM gen_full", rows);
    }
  }

  private static void run(TableEnvironment tEnv, String op, String sql, long rows) throws Exception {
    long start = System.nanoTime();
    TableResult result = tEnv.executeSql(sql);
    JobExecutionResult done = result.getJobClient().orElseThrow().getJobExecutionResult().get();
    double wall = (System.nanoTime() - start) / 1e9;
    if (!op.equals("warmup")) {
      System.out.println("{\"op\":\"" + op + "\",\"rows\":" + rows + ",\"wall_seconds\":" + wall
          + ",\"net_seconds\":" + done.getNetRuntime() / 1e3 + "}");
      System.out.flush();
    }
  }
}
