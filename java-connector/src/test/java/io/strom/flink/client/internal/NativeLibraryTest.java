package io.strom.flink.client.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import org.junit.jupiter.api.Test;

class NativeLibraryTest {

  @Test
  void platformDirectoryMatchesWhereTheBuildPutsTheLibrary() {
    String arch = System.getProperty("os.arch");
    if (System.getProperty("os.name").startsWith("Linux") && arch.equals("amd64")) {
      assertEquals("linux-x86_64", NativeLibrary.platform());
      // The build copies the library to exactly this resource (pom.xml, antrun).
      assertNotNull(
          NativeLibrary.class.getResource(
              NativeLibrary.RESOURCE_DIRECTORY + "linux-x86_64/libstrom_jni.so"));
    }
  }
}
