package io.strom.flink.scenarios;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;

/**
 * A scenario's SQL file under integration/scenarios/: the statements a user types, grouped
 * into steps by {@code -- step: name} lines. A statement ends with {@code ;} at the end of a
 * line; other comment lines are dropped.
 */
public final class ScenarioScript {
  private final Map<String, List<String>> steps = new LinkedHashMap<>();

  private ScenarioScript() {}

  static ScenarioScript load(String name) throws IOException {
    // Failsafe runs in java-connector/; the scenarios live next to the other integration tests.
    return load(Path.of("..", "integration", "scenarios", name));
  }

  /** A scenario file given by its path (the benches get it from strom-bench). */
  public static ScenarioScript load(Path file) throws IOException {
    ScenarioScript script = new ScenarioScript();
    List<String> current = null;
    StringBuilder statement = new StringBuilder();
    for (String line : Files.readAllLines(file)) {
      String trimmed = line.strip();
      if (trimmed.startsWith("-- step:")) {
        current = new ArrayList<>();
        script.steps.put(trimmed.substring("-- step:".length()).strip().split(" ")[0], current);
        continue;
      }
      if (trimmed.startsWith("--") || trimmed.isEmpty()) {
        continue;
      }
      statement.append(line).append('\n');
      if (trimmed.endsWith(";")) {
        if (current == null) {
          throw new IllegalStateException(file + ": a statement before the first '-- step:' line");
        }
        String sql = statement.toString().strip();
        current.add(sql.substring(0, sql.length() - 1));
        statement.setLength(0);
      }
    }
    return script;
  }

  /** Runs the statements of these steps in order, waiting for each job (batch mode). */
  public void run(TableEnvironment tEnv, String... steps) throws Exception {
    for (String step : steps) {
      for (String sql : step(step)) {
        TableResult result = execute(tEnv, sql);
        if (result != null && result.getJobClient().isPresent()) {
          result.await();
        }
      }
    }
  }

  /** {@code SET 'key' = 'value'}: what the SQL client does with it (TableEnvironment does not parse it). */
  private static final Pattern SET = Pattern.compile("(?is)SET\\s+'([^']+)'\\s*=\\s*'([^']*)'");

  /** Executes one statement; a SET changes the environment's configuration and returns null. */
  private static TableResult execute(TableEnvironment tEnv, String sql) {
    Matcher set = SET.matcher(sql.strip());
    if (set.matches()) {
      tEnv.getConfig().getConfiguration().setString(set.group(1), set.group(2));
      return null;
    }
    return tEnv.executeSql(sql);
  }

  /**
   * Submits the statements of a streaming step (temporary tables, views, then one INSERT) and
   * returns the job the last one started, without waiting for it.
   */
  JobClient start(TableEnvironment tEnv, String step) {
    TableResult last = null;
    for (String sql : step(step)) {
      last = execute(tEnv, sql);
    }
    if (last == null || last.getJobClient().isEmpty()) {
      throw new IllegalStateException("step '" + step + "' does not end with a statement that starts a job");
    }
    return last.getJobClient().get();
  }

  /**
   * A streaming environment with {@code table.optimizer.delta-join.strategy = FORCE}, after
   * checking that the plan of {@code join} (an INSERT of this script) is a delta join.
   */
  static TableEnvironment deltaJoinEnvironment(io.strom.flink.FlinkStromFixture strom, int parallelism, String join) {
    org.apache.flink.configuration.Configuration conf = new org.apache.flink.configuration.Configuration();
    conf.setString("table.optimizer.delta-join.strategy", "FORCE");
    TableEnvironment tEnv = strom.flink(
        org.apache.flink.table.api.EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build(), parallelism);
    String plan = tEnv.explainSql(join);
    if (!plan.contains("DeltaJoin(joinType=[InnerJoin]")) {
      throw new AssertionError("not a delta join:\n" + plan);
    }
    return tEnv;
  }

  public List<String> step(String name) {
    List<String> statements = steps.get(name);
    if (statements == null) {
      throw new IllegalArgumentException("no step '" + name + "' (steps: " + steps.keySet() + ")");
    }
    return statements;
  }
}
