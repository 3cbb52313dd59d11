package io.strom.flink.scenarios;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

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
  public void run(org.apache.flink.table.api.TableEnvironment tEnv, String... steps) throws Exception {
    for (String step : steps) {
      for (String sql : step(step)) {
        org.apache.flink.table.api.TableResult result = tEnv.executeSql(sql);
        if (result.getJobClient().isPresent()) {
          result.await();
        }
      }
    }
  }

  public List<String> step(String name) {
    List<String> statements = steps.get(name);
    if (statements == null) {
      throw new IllegalArgumentException("no step '" + name + "' (steps: " + steps.keySet() + ")");
    }
    return statements;
  }
}
