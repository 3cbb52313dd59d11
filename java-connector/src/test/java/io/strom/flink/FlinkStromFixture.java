package io.strom.flink;

import com.fasterxml.jackson.databind.JsonNode;
import io.strom.flink.client.StromConnection;
import io.strom.flink.client.StromNode;
import io.strom.flink.client.internal.Json;
import io.strom.flink.client.internal.StromNative;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * What every Flink IT against the real node needs, as one JUnit extension: a {@code strom}
 * node of its own (started before the class, stopped after it), the test's own client
 * connection with the class's database created, table environments with the Strom catalog
 * registered, and — after every test — those catalogs dropped and a check that the jobs that
 * ran closed every native object they opened (connections, writers, scanners).
 *
 * <pre>{@code
 * @RegisterExtension static final FlinkStromFixture STROM = new FlinkStromFixture("sink");
 * TableEnvironment tEnv = STROM.flink(EnvironmentSettings.inBatchMode(), 1);
 * }</pre>
 */
public final class FlinkStromFixture implements BeforeAllCallback, AfterAllCallback, AfterEachCallback {
  /** How long jobs that just ended may take to close their native objects. */
  private static final long CLOSE_TIMEOUT_MS = 30_000;

  private final String database;
  private final List<TableEnvironment> environments = new ArrayList<>();
  private StromNode node;
  private StromConnection strom;

  /**
   * A MiniCluster of one TaskManager with {@code slots} slots; a streaming job keeps one slot
   * while a test's batch jobs run beside it.
   */
  public static MiniClusterExtension miniCluster(int slots) {
    return new MiniClusterExtension(
        new MiniClusterResourceConfiguration.Builder().setNumberTaskManagers(1).setNumberSlotsPerTaskManager(slots).build());
  }

  public FlinkStromFixture(String database) {
    this.database = database;
  }

  /** The database created for the test class; the catalog's default database. */
  public String database() {
    return database;
  }

  public String endpoint() {
    return node.endpoint();
  }

  /** The node, for tests that kill and restart it. */
  public StromNode node() {
    return node;
  }

  /** The test's own client connection (the one native connection allowed to stay open). */
  public StromConnection strom() {
    return strom;
  }

  /**
   * A table environment with the catalog {@code strom} (default database {@link #database()})
   * in use. {@code parallelism} 1 keeps the rows of one bucket, and the changes a test makes, in
   * order at the sink or the test's iterator.
   */
  public TableEnvironment flink(EnvironmentSettings settings, int parallelism) {
    TableEnvironment tEnv = TableEnvironment.create(settings);
    environments.add(tEnv);
    tEnv.getConfig().set("parallelism.default", String.valueOf(parallelism));
    tEnv.executeSql(
        "CREATE CATALOG strom WITH ('type' = 'strom', 'endpoint' = '" + endpoint()
            + "', 'default-database' = '" + database + "')");
    tEnv.executeSql("USE CATALOG strom");
    return tEnv;
  }

  @Override
  public void beforeAll(ExtensionContext context) throws Exception {
    node = StromNode.start();
    strom = StromConnection.connect(node.endpoint());
    strom.createDatabase(database, false);
  }

  @Override
  public void afterEach(ExtensionContext context) throws Exception {
    for (TableEnvironment tEnv : environments) {
      tEnv.executeSql("USE CATALOG default_catalog");
      tEnv.executeSql("DROP CATALOG strom");
    }
    environments.clear();
    // Sink writers, enumerators and split readers close when their tasks end, which may be
    // just after the test saw its last row: wait for that, then insist.
    long deadline = System.currentTimeMillis() + CLOSE_TIMEOUT_MS;
    JsonNode handles = Json.parse(StromNative.openHandles());
    while (!onlyTheTestConnection(handles) && System.currentTimeMillis() < deadline) {
      Thread.sleep(20); // polling interval of the condition, not a synchronisation
      handles = Json.parse(StromNative.openHandles());
    }
    if (!onlyTheTestConnection(handles)) {
      throw new AssertionError("native objects left open after the test: " + handles);
    }
  }

  @Override
  public void afterAll(ExtensionContext context) throws Exception {
    if (strom != null) {
      strom.close();
    }
    if (node != null) {
      node.close();
    }
  }

  private static boolean onlyTheTestConnection(JsonNode handles) {
    return handles.path("connections").asInt() == 1
        && handles.path("writers").asInt() == 0
        && handles.path("scanners").asInt() == 0;
  }
}
