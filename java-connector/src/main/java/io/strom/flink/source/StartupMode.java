package io.strom.flink.source;

/** Where a streaming read starts ({@code scan.startup.mode}). */
public enum StartupMode {
  /** Primary-key tables: the snapshot, then the changelog from it; log tables: the earliest. */
  FULL,
  EARLIEST,
  LATEST,
  /** The first offset committed at or after {@code scan.startup.timestamp}. */
  TIMESTAMP;

  public static StartupMode parse(String value) {
    for (StartupMode mode : values()) {
      if (mode.name().equalsIgnoreCase(value)) {
        return mode;
      }
    }
    throw new IllegalArgumentException(
        "'scan.startup.mode' must be one of full, earliest, latest, timestamp; got '" + value + "'");
  }
}
