package io.strom.flink.client.internal;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;

/**
 * Loads {@code libstrom_jni} for the class loader that defined this class.
 *
 * <p>The JVM binds a native library to one class loader: {@code System.load} of a path that
 * another loader already loaded fails with {@code UnsatisfiedLinkError: ... already loaded in
 * another classloader}, and native methods only link against libraries of their own loader.
 * So, like RocksDB's and Netty's loaders, every loading class loader gets <b>its own copy</b>
 * of the library, extracted to a fresh temp file (deleted again right after loading: the
 * mapping stays). The library is linked with {@code -z nodelete}, so when Flink drops a user
 * class loader after a job restart, the old copy stays mapped under any thread it started.
 *
 * <p>Installed the recommended way, the connector jar sits in Flink's {@code lib/}: its classes
 * then belong to the parent class loader, this class is initialized once per JVM, and every job
 * (and every restart) shares one library, one runtime and one set of handles. Only a
 * connector bundled into a job jar gets a copy per job class loader. See docs/jni-bridge.md.
 *
 * <p>{@code -Dstrom.jni.library=/path/libstrom_jni.so} takes the library from a file instead
 * of the jar (a debug build during development); it is copied the same way.
 */
public final class NativeLibrary {
  /** Where the build puts the library inside the jar. */
  static final String RESOURCE_DIRECTORY = "/io/strom/flink/native/";

  private static boolean loaded;

  private NativeLibrary() {}

  public static synchronized void load() {
    if (loaded) {
      return;
    }
    String override = System.getProperty("strom.jni.library");
    String resource = RESOURCE_DIRECTORY + platform() + "/" + System.mapLibraryName("strom_jni");
    Path copy;
    try {
      copy = Files.createTempFile("libstrom_jni-", ".so");
      if (override != null && !override.isEmpty()) {
        Files.copy(Path.of(override), copy, StandardCopyOption.REPLACE_EXISTING);
      } else {
        try (InputStream in = NativeLibrary.class.getResourceAsStream(resource)) {
          if (in == null) {
            Files.deleteIfExists(copy);
            throw new UnsatisfiedLinkError(
                "the Strom connector jar has no native library for "
                    + platform()
                    + " (looked for "
                    + resource
                    + ")");
          }
          Files.copy(in, copy, StandardCopyOption.REPLACE_EXISTING);
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot extract the Strom native library", e);
    }
    try {
      System.load(copy.toAbsolutePath().toString());
    } finally {
      try {
        Files.deleteIfExists(copy);
      } catch (IOException ignored) {
        // A leftover temp file is harmless; the loaded mapping does not need it.
      }
    }
    loaded = true;
  }

  /** {@code linux-x86_64}, {@code linux-aarch64}, ...: the directory of the library in the jar. */
  static String platform() {
    String os = System.getProperty("os.name").toLowerCase(Locale.ROOT);
    String arch = System.getProperty("os.arch").toLowerCase(Locale.ROOT);
    String osName = os.startsWith("linux") ? "linux" : os.startsWith("mac") ? "macos" : os;
    String archName =
        arch.equals("amd64") || arch.equals("x86_64")
            ? "x86_64"
            : arch.equals("arm64") || arch.equals("aarch64") ? "aarch64" : arch;
    return osName + "-" + archName;
  }
}
