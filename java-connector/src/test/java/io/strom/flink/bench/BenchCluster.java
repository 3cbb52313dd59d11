package io.strom.flink.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.flink.api.common.JobID;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.checkpoint.CompletedCheckpointStats;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.apache.flink.streaming.util.TestStreamEnvironment;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;

/**
 * What the join benches share: a Flink MiniCluster started in this JVM (one TaskManager with
 * enough slots for the streaming jobs and the batch jobs that run beside them), set as the
 * context of every table environment, with the handle the benches read checkpoint statistics
 * from; {@code --name value} arguments; one JSON line per measurement on stdout.
 */
final class BenchCluster implements AutoCloseable {
  private static final ObjectMapper JSON = new ObjectMapper();

  private final MiniCluster cluster;
  private final String endpoint;
  private final String database;

  private BenchCluster(MiniCluster cluster, String endpoint, String database) {
    this.cluster = cluster;
    this.endpoint = endpoint;
    this.database = database;
  }

  /** Starts a MiniCluster of one TaskManager with {@code slots} slots; jobs default to {@code parallelism}. */
  static BenchCluster start(int slots, int parallelism, String endpoint, String database) throws Exception {
    Configuration conf = new Configuration();
    // Several jobs at parallelism 2 at once: more network buffers than the MiniCluster's default.
    conf.setString("taskmanager.memory.network.min", "256mb");
    conf.setString("taskmanager.memory.network.max", "256mb");
    MiniCluster cluster = new MiniCluster(
        new MiniClusterConfiguration.Builder()
            .setConfiguration(conf)
            .setNumTaskManagers(1)
            .setNumSlotsPerTaskManager(slots)
            .build());
    cluster.start();
    TestStreamEnvironment.setAsContext(cluster, parallelism);
    return new BenchCluster(cluster, endpoint, database);
  }

  /**
   * A table environment on this cluster with the catalog {@code strom} in use (default database
   * the bench's), the given settings and {@code parallelism.default}.
   */
  TableEnvironment tableEnvironment(boolean streaming, int parallelism, Map<String, String> options) {
    Configuration conf = new Configuration();
    options.forEach(conf::setString);
    conf.setString("parallelism.default", String.valueOf(parallelism));
    EnvironmentSettings.Builder settings = EnvironmentSettings.newInstance().withConfiguration(conf);
    TableEnvironment tEnv = TableEnvironment.create((streaming ? settings.inStreamingMode() : settings.inBatchMode()).build());
    tEnv.executeSql("CREATE CATALOG strom WITH ('type' = 'strom', 'endpoint' = '" + endpoint + "', 'default-database' = '" + database + "')");
    tEnv.executeSql("USE CATALOG strom");
    return tEnv;
  }

  /** The job's latest completed checkpoint (null before the first). */
  CompletedCheckpointStats latestCheckpoint(JobID job) throws Exception {
    var snapshot = cluster.getExecutionGraph(job).get().getCheckpointStatsSnapshot();
    return snapshot == null ? null : snapshot.getHistory().getLatestCompletedCheckpoint();
  }

  /** Bytes of every file under a completed checkpoint's directory ({@code .../chk-N}). */
  static long bytesOnDisk(CompletedCheckpointStats checkpoint) {
    Path dir = Path.of(URI.create(checkpoint.getExternalPath().replaceFirst("^file:/+", "file:///")));
    try (Stream<Path> files = Files.walk(dir)) {
      return files.filter(Files::isRegularFile).mapToLong(BenchCluster::size).sum();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static long size(Path file) {
    try {
      return Files.size(file);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Override
  public void close() throws Exception {
    TestStreamEnvironment.unsetAsContext();
    cluster.closeAsync().get();
  }

  /** {@code --name value} pairs. */
  static Map<String, String> arguments(String[] argv, String... required) {
    Map<String, String> args = new LinkedHashMap<>();
    for (int i = 0; i < argv.length; i += 2) {
      if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
        throw new IllegalArgumentException("expected --name value pairs, got " + argv[i]);
      }
      args.put(argv[i].substring(2), argv[i + 1]);
    }
    for (String name : required) {
      if (!args.containsKey(name)) {
        throw new IllegalArgumentException("missing --" + name);
      }
    }
    return args;
  }

  /** Prints one measurement as a JSON line (what strom-bench reads). */
  static void print(Map<String, Object> line) {
    try {
      System.out.println(JSON.writeValueAsString(line));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    System.out.flush();
  }
}
