package io.strom.example;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.apache.arrow.flight.FlightClient;
import org.apache.arrow.flight.FlightClient.ClientStreamListener;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.SyncPutListener;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Runs the example against the real node ($STROM_BIN), and checks the claims docs/java.md makes
 * about Arrow Java that the example itself does not exercise.
 */
class FlightExampleTest {
  private static final Path PROJECT = Path.of(System.getProperty("user.dir"));
  private static final Path SOURCES = PROJECT.resolve("src/main/java/io/strom/example");
  private static final Path DOC = PROJECT.resolve("../../docs/java.md").normalize();

  private static StromNode node;

  @BeforeAll
  static void startNode() throws IOException {
    node = StromNode.start();
  }

  @AfterAll
  static void stopNode() throws Exception {
    if (node != null) {
      node.close();
    }
  }

  @Test
  void exampleRunsAndReadsBackWhatItWrote() throws Exception {
    ByteArrayOutputStream captured = new ByteArrayOutputStream();
    try (PrintStream out = new PrintStream(captured, true, StandardCharsets.UTF_8)) {
      FlightExample.run(node.endpoint(), out); // throws on any difference
    }
    String report = captured.toString(StandardCharsets.UTF_8);
    System.out.print(report);
    // Every stage reported, so a stage silently skipped would show here.
    for (String stage :
        List.of("created database", "appended 20000 rows", "read events back", "DoExchange lookups",
            "snapshot scan of users", "rejected requests", "dropped database")) {
      assertTrue(report.contains(stage), "the example reports '" + stage + "':\n" + report);
    }
  }

  /**
   * Without org.apache.arrow:arrow-compression, reading the ZSTD table fails, and main exits 1:
   * runs the example in a JVM whose classpath lacks that jar. The message is quoted in the docs.
   */
  @Test
  void withoutArrowCompressionTheZstdReadFails() throws Exception {
    String classpath = System.getProperty("java.class.path");
    List<String> kept =
        Arrays.stream(classpath.split(File.pathSeparator))
            .filter(entry -> !Path.of(entry).getFileName().toString().startsWith("arrow-compression-"))
            .collect(Collectors.toList());
    assertEquals(
        kept.size() + 1,
        classpath.split(File.pathSeparator).length,
        "the test classpath holds arrow-compression exactly once: " + classpath);
    Path javaBin = Path.of(System.getProperty("java.home"), "bin", "java");
    Process child =
        new ProcessBuilder(
                javaBin.toString(),
                "--add-opens=java.base/java.nio=ALL-UNNAMED",
                "-cp",
                String.join(File.pathSeparator, kept),
                FlightExample.class.getName(),
                node.endpoint())
            .redirectErrorStream(true)
            .start();
    String output = new String(child.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(child.waitFor(120, TimeUnit.SECONDS), "the example ends");
    assertEquals(1, child.exitValue(), "main exits 1 when a step fails:\n" + output);
    String expected = "Please add arrow-compression module to use CommonsCompressionFactory for ZSTD";
    assertTrue(output.contains(expected), "the ZSTD read fails with '" + expected + "':\n" + output);
    assertTrue(output.contains("appended 20000 rows"), "the writes before it worked:\n" + output);
    assertFalse(output.contains("read events back"), "no read succeeded:\n" + output);
    assertTrue(docText().contains(expected), "docs/java.md quotes the error");
  }

  /**
   * docs/java.md: setOnReadyHandler cannot be used on a client writer (the gRPC call has started
   * by the time startPut returns), which is why the example has ReadyGate; and a gate on a
   * channel without its interceptor fails at once.
   */
  @Test
  void setOnReadyHandlerIsRefusedOnAClientWriter() throws Exception {
    try (BufferAllocator allocator = new RootAllocator();
        FlightClient client = FlightClient.builder(allocator, new Location(node.endpoint())).build();
        VectorSchemaRoot root = VectorSchemaRoot.create(LogTable.EVENTS, allocator)) {
      FlightExample example = new FlightExample(client, allocator, System.out, "ready_handler");
      example.action("create_database", Map.of("name", "ready_handler"));
      example.action("create_table", Map.of("database", "ready_handler", "table", "t",
          "columns", List.of(Map.of("name", "id", "type", "BIGINT", "nullable", false),
              Map.of("name", "user_name", "type", "STRING"), Map.of("name", "amount", "type", "INT"))));
      SyncPutListener acks = new SyncPutListener();
      ClientStreamListener writer =
          client.startPut(FlightDescriptor.path("ready_handler", "t"), root, acks, FlightExample.TIMEOUT);
      IllegalStateException refused =
          assertThrows(IllegalStateException.class, () -> writer.setOnReadyHandler(() -> {}));
      assertTrue(refused.getMessage().contains("Cannot alter onReadyHandler after call started"),
          refused.getMessage());
      // This client's channel has no ReadyGate.INTERCEPTOR: a gate would never be woken, so it
      // refuses to wait instead of hanging until its timeout.
      IllegalStateException unwired =
          assertThrows(IllegalStateException.class, () -> new ReadyGate().awaitReady(writer));
      assertTrue(unwired.getMessage().contains("ReadyGate.INTERCEPTOR"), unwired.getMessage());
      writer.completed(); // a stream without batches is valid: nothing is written
      writer.getResult();
      acks.close();
    }
  }

  /** Every docs:begin/docs:end region of the example is quoted verbatim in docs/java.md. */
  @Test
  void docsQuoteTheExampleVerbatim() throws IOException {
    String doc = docText();
    Pattern region = Pattern.compile("(?s)\\n[ ]*// docs:begin (\\w+)\\n(.*?)\\n[ ]*// docs:end \\1\\n");
    List<String> names = new ArrayList<>();
    try (var files = Files.list(SOURCES)) {
      for (Path file : files.sorted().collect(Collectors.toList())) {
        Matcher m = region.matcher(Files.readString(file));
        while (m.find()) {
          names.add(m.group(1));
          String quoted = dedent(m.group(2));
          assertTrue(doc.contains(quoted),
              "docs/java.md must quote region '" + m.group(1) + "' of " + file.getFileName()
                  + " verbatim (dedented):\n" + quoted);
        }
      }
    }
    assertTrue(names.size() >= 10, "the example marks its quoted regions: " + names);
  }

  private static String docText() throws IOException {
    return Files.readString(DOC);
  }

  /** Removes the indentation common to every non-blank line. */
  static String dedent(String text) {
    List<String> lines = text.lines().collect(Collectors.toList());
    int indent = Integer.MAX_VALUE;
    for (String line : lines) {
      if (!line.isBlank()) {
        indent = Math.min(indent, line.length() - line.stripLeading().length());
      }
    }
    final int cut = indent == Integer.MAX_VALUE ? 0 : indent;
    return lines.stream()
        .map(line -> line.isBlank() ? "" : line.substring(cut))
        .collect(Collectors.joining("\n"));
  }
}
