package io.strom.flink.client;

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
 * ({@code --listen 127.0.0.1:0}) and a temp data directory, the way integration/src/lib.rs
 * runs it. The endpoint is read from the line the node prints once it listens, so no test
 * guesses a free port or sleeps until the node is up.
 */
public final class StromNode implements AutoCloseable {
  private static final Pattern LISTENING = Pattern.compile("listening on (grpc://\\S+)");

  private final Path dataDir;
  private final String endpoint;
  private Process process;

  private StromNode(Process process, Path dataDir, String endpoint) {
    this.process = process;
    this.dataDir = dataDir;
    this.endpoint = endpoint;
  }

  public static StromNode start() throws IOException, InterruptedException {
    Path dataDir = Files.createTempDirectory("strom-jni-it-");
    Process process = spawn(dataDir, "127.0.0.1:0");
    return new StromNode(process, dataDir, awaitListening(process));
  }

  /** Kills the node as a power cut would kill its process (SIGKILL), keeping its data. */
  public void kill() throws InterruptedException {
    process.destroyForcibly();
    process.waitFor();
  }

  /**
   * Starts the node again on the same data directory and port (clients keep their endpoint),
   * after {@link #kill()}; returns once it listens.
   */
  public void restart() throws IOException, InterruptedException {
    if (process.isAlive()) {
      throw new IllegalStateException("restart() needs the node stopped first");
    }
    String listen = endpoint.substring("grpc://".length());
    process = spawn(dataDir, listen);
    String again = awaitListening(process);
    if (!again.equals(endpoint)) {
      throw new IllegalStateException("the node came back on " + again + ", not " + endpoint);
    }
  }

  private static Process spawn(Path dataDir, String listen) throws IOException {
    String bin = System.getenv("STROM_BIN");
    if (bin == null || bin.isEmpty() || !Files.isExecutable(Path.of(bin))) {
      throw new IllegalStateException(
          "set STROM_BIN to the strom binary (cargo build -p strom-server); got " + bin);
    }
    return new ProcessBuilder(bin, "serve", "--data-dir", dataDir.toString(), "--listen", listen)
        .redirectErrorStream(true)
        .start();
  }

  private static String awaitListening(Process process) {
    CompletableFuture<String> endpoint = new CompletableFuture<>();
    Thread reader =
        new Thread(
            () -> {
              try (BufferedReader lines =
                  new BufferedReader(
                      new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = lines.readLine()) != null) {
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
      return endpoint.get(60, TimeUnit.SECONDS);
    } catch (Exception e) {
      process.destroyForcibly();
      throw new IllegalStateException("the strom node did not start", e);
    }
  }

  public String endpoint() {
    return endpoint;
  }

  @Override
  public void close() throws IOException, InterruptedException {
    process.destroy();
    if (!process.waitFor(30, TimeUnit.SECONDS)) {
      process.destroyForcibly();
      process.waitFor();
    }
    try (Stream<Path> files = Files.walk(dataDir)) {
      files.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
    }
  }

}
