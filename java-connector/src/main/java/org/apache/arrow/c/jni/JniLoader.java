package org.apache.arrow.c.jni;

import io.strom.flink.client.internal.StromNative;

/**
 * Replaces Arrow Java's own {@code JniLoader} (which extracts and loads {@code
 * arrow_cdata_jni}). The four natives of {@code JniWrapper} that the connector uses
 * (releaseSchema, releaseArray, exportSchema, exportArray) are implemented in {@code
 * libstrom_jni} (jni-bridge/src/cdata.rs), under the original and the relocated class name,
 * because Arrow's library cannot work once {@code org.apache.arrow} is relocated: its JNI
 * symbols and {@code JNI_OnLoad} name the original classes.
 *
 * <p>This class shadows Arrow's: it comes first on the test class path (target/classes), and
 * the shade plugin drops Arrow's copy from the connector jar. The stream natives are not
 * implemented; the connector does not use {@code ArrowArrayStream}.
 */
public final class JniLoader {
  private static final JniLoader INSTANCE = new JniLoader();

  public static JniLoader get() {
    return INSTANCE;
  }

  private JniLoader() {}

  /** Loads {@code libstrom_jni}, which provides the natives (once per class loader). */
  public void ensureLoaded() {
    StromNative.ensureLoaded();
  }
}
