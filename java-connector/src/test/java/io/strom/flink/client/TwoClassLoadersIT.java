package io.strom.flink.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * The connector jar as Flink uses it when it is shipped with a job: loaded by a fresh class
 * loader per job (and per restart), in one JVM. Both loaders must load the native library and
 * work side by side, and the relocated Arrow classes must find their C Data natives in
 * libstrom_jni. The loaders see only the jar and the JDK (parent: the platform loader), not
 * the test class path (plus the SLF4J API, as Flink provides it).
 */
class TwoClassLoadersIT {

  @Test
  void twoLoadersOfTheShadedJarEachWorkInOneJvm() throws Exception {
    Path jar = Path.of(System.getProperty("strom.connector.jar"));
    assertTrue(Files.isRegularFile(jar), "build the jar first (mvn package): " + jar);
    try (StromNode node = StromNode.start();
        URLClassLoader first = loaderOf(jar);
        URLClassLoader second = loaderOf(jar)) {
      Class<?> firstCheck = first.loadClass("io.strom.flink.client.internal.SelfCheck");
      Class<?> secondCheck = second.loadClass("io.strom.flink.client.internal.SelfCheck");
      assertNotSame(firstCheck, secondCheck, "two independent copies of the connector");

      // 1 + 2 + ... + 100 = 5050 read back through the first, 1..10 = 55 through the second.
      assertEquals(5050L, roundTrip(firstCheck, node.endpoint(), "t_first", 100));
      assertEquals(55L, roundTrip(secondCheck, node.endpoint(), "t_second", 10));
      // Still working in the first after the second loaded its copy (a restarted job's old
      // loader may keep running while the new one starts).
      assertEquals(5050L, roundTrip(firstCheck, node.endpoint(), "t_first_again", 100));

      for (Class<?> check : new Class<?>[] {firstCheck, secondCheck}) {
        String handles = (String) check.getMethod("openHandles").invoke(null);
        assertEquals(
            "{\"connections\":0,\"lookupers\":0,\"scanners\":0,\"shared_clients\":0,\"writers\":0}", handles);
      }
    }
  }

  /**
   * A job restart in the same TaskManager: the old job's loader is closed and collected (the
   * JVM then unloads its copy of the library, which -z nodelete keeps mapped), and the new
   * job's loader loads the library again and works.
   */
  @Test
  void aLoaderCreatedAfterTheFirstWasCollectedStillWorks() throws Exception {
    Path jar = Path.of(System.getProperty("strom.connector.jar"));
    try (StromNode node = StromNode.start()) {
      java.lang.ref.WeakReference<ClassLoader> firstJob = runJobAndForget(jar, node.endpoint());
      long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(60);
      // Await the collection (prodding the GC), no fixed sleep.
      while (firstJob.get() != null) {
        assertTrue(System.nanoTime() < deadline, "the first job's class loader was never collected");
        System.gc();
        Thread.onSpinWait();
      }
      try (URLClassLoader restarted = loaderOf(jar)) {
        Class<?> check = restarted.loadClass("io.strom.flink.client.internal.SelfCheck");
        assertEquals(55L, roundTrip(check, node.endpoint(), "t_restarted", 10));
      }
    }
  }

  private static java.lang.ref.WeakReference<ClassLoader> runJobAndForget(Path jar, String endpoint)
      throws Exception {
    try (URLClassLoader job = loaderOf(jar)) {
      Class<?> check = job.loadClass("io.strom.flink.client.internal.SelfCheck");
      assertEquals(55L, roundTrip(check, endpoint, "t_before_restart", 10));
      return new java.lang.ref.WeakReference<>(job);
    }
  }

  /** The jar plus SLF4J (API and a binding), which Flink provides and the jar does not bundle. */
  private static URLClassLoader loaderOf(Path jar) throws Exception {
    return new URLClassLoader(
        new URL[] {
          jar.toUri().toURL(),
          jarOf(org.slf4j.Logger.class),
          jarOf(Class.forName("org.slf4j.impl.StaticLoggerBinder"))
        },
        ClassLoader.getPlatformClassLoader());
  }

  private static URL jarOf(Class<?> type) {
    return type.getProtectionDomain().getCodeSource().getLocation();
  }

  private static long roundTrip(Class<?> selfCheck, String endpoint, String table, int rows)
      throws Exception {
    Method roundTrip =
        selfCheck.getMethod("roundTrip", String.class, String.class, String.class, int.class);
    return (long) roundTrip.invoke(null, endpoint, "two_loaders", table, rows);
  }
}
