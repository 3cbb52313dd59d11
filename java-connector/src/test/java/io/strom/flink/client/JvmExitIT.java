package io.strom.flink.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The Rust client's runtime threads attach to the JVM to complete futures and release batches;
 * attached as non-daemon threads they would keep a JVM whose {@code main} returned alive for
 * ever (they live as long as the process). A child JVM runs {@link ExitAfterAsyncWrites}.
 */
class JvmExitIT {
  @Test
  void aProgramUsingAsyncWritesExitsWhenMainReturns(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
    try (StromNode node = StromNode.start()) {
      String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
      Path output = dir.resolve("child.out");
      Process child =
          new ProcessBuilder(
                  List.of(
                      java,
                      "--add-opens=java.base/java.nio=ALL-UNNAMED",
                      "-cp",
                      System.getProperty("java.class.path"),
                      ExitAfterAsyncWrites.class.getName(),
                      node.endpoint()))
              .redirectErrorStream(true)
              .redirectOutput(output.toFile())
              .start();
      boolean exited = child.waitFor(60, TimeUnit.SECONDS);
      String printed = Files.readString(output, StandardCharsets.UTF_8);
      if (!exited) {
        child.destroyForcibly();
      }
      assertTrue(printed.contains("main returned"), "the program ran: " + printed);
      assertTrue(exited, "the JVM exits once main returns (no non-daemon native threads): " + printed);
      assertEquals(0, child.exitValue(), printed);
    }
  }
}
