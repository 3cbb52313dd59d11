package io.strom.example;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The real {@code strom} binary ({@code $STROM_BIN}) on 127.0.0.1 with a port it picks itself
 * ({@code --listen 127.0.0.1:0}) and a temp data directory, as java-connector's StromNode and
 * integration/python/conftest.py run it. The endpoint is read from the line the node prints once
 * it listens, so nothing guesses a free port or sleeps until the node is up.
 */
final class StromNode implements AutoCloseable {
  private static final Pattern LISTENING = Pattern.compile("listening on (grpc://\\S+)");

  private final Process process;
  private final Path dataDir;
  private final String endpoint;

  private StromNode(Process process, Path dataDir, String endpoint) {
    this.process = process;
    this.dataDir = dataDir;
    this.endpoint = endpoint;
  }

  static StromNode start() throws IOException {
    String bin = System.getenv("STROM_BIN");
    if (bin == null || bin.isEmpty() || !Files.isExecutable(Path.of(bin))) {
      throw new IllegalStateException(
          "set STROM_BIN to the strom binary (cargo build -p strom-server); got " + bin);
    }
    Path dataDir = Files.createTempDirectory("strom-java-example-");
    Process process =
        new ProcessBuilder(bin, "serve", "--data-dir", dataDir.toString(), "--listen", "127.0.0.1:0")
            .redirectErrorStream(true)
            .start();
    CompletableFuture<String> endpoint = new CompletableFuture<>();
    StringBuffer log = new StringBuffer(); // the node's output, for the error if it does not start
    Thread reader =
        new Thread(
            () -> {
              try (BufferedReader lines =
                  new BufferedReader(
                      new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = lines.readLine()) != null) {
                  if (!endpoint.isDone()) {
                    log.append(line).append('\n');
                  }
                  Matcher m = LISTENING.matcher(line);
                  if (m.find()) {
                    endpoint.complete(m.group(1));
                  }
                  // Keep draining so the node never blocks on a full pipe.
                }
              } catch (IOException e) {
                endpoint.completeExceptionally(e);
              }
              endpoint.completeExceptionally(new IllegalStateException("strom exited before listening"));
            },
            "strom-node-output");
    reader.setDaemon(true);
    reader.start();
    try {
      return new StromNode(process, dataDir, endpoint.get(60, TimeUnit.SECONDS));
    } catch (Exception e) {
      process.destroyForcibly();
      throw new IllegalStateException("the strom node did not start:\n" + log, e);
    }
  }

  String endpoint() {
    return endpoint;
  }

  @Override
  public void close() throws IOException, InterruptedException {
    process.destroy(); // SIGTERM: a graceful shutdown
    if (!process.waitFor(30, TimeUnit.SECONDS)) {
      process.destroyForcibly();
      process.waitFor();
    }
    try (Stream<Path> files = Files.walk(dataDir)) {
      files.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
    }
  }
}
