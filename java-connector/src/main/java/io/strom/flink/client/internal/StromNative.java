package io.strom.flink.client.internal;

/**
 * The native methods of {@code libstrom_jni} (jni-bridge/src/natives.rs). Handles are opaque
 * {@code long}s; a closed handle (or 0) makes any method throw {@link IllegalStateException}.
 * Arrow data crosses as the memory addresses of Java-allocated C Data structs; see
 * docs/jni-bridge.md for who releases what. Failures are {@code StromException}s.
 *
 * <p>Not part of the public API: use {@code StromConnection} and the objects it opens.
 */
public final class StromNative {
  static {
    NativeLibrary.load();
  }

  private StromNative() {}

  /** Makes sure the library is loaded (the static initializer does the work). */
  public static void ensureLoaded() {}

  public static native long connect(String endpoint);

  public static native String serverVersion(long connection);

  /** Any DoAction of the contract: JSON body in, JSON answer out. */
  public static native String action(long connection, String actionType, String bodyJson);

  /**
   * The node's count of a table (or of one partition when {@code partition} is not null):
   * current rows of a primary-key table when {@code rows}, else stored records.
   */
  public static native long count(
      long connection, String database, String table, String partition, boolean rows);

  public static native void tableSchema(
      long connection, String database, String table, long schemaAddress);

  public static native void closeConnection(long connection);

  public static native long openWriter(
      long connection, String database, String table, String optionsJson);

  /**
   * Writes a batch and blocks until it is durable. {@code schemaAddress} is 0 when the batch
   * has the schema sent earlier on this writer under {@code schemaId}; a schema sent is kept
   * under {@code schemaId}.
   */
  public static native String write(
      long writer, long arrayAddress, long schemaAddress, int schemaId);

  /** {@link #write}, returning once the batch is on its way. */
  public static native void writeAsync(
      long writer, long arrayAddress, long schemaAddress, int schemaId, NativeCompletion completion);

  public static native void flush(long writer);

  public static native void closeWriter(long writer);

  public static native long openScanner(long connection, String ticketJson);

  /**
   * Waits for the next batch. {@code origin[0]} says what came: {@link #POLLED_NOTHING} (nothing
   * within the timeout, or {@link #wakeup} was called), {@link #POLLED_BATCH} (the batch is
   * exported into the structs, {@code origin[1..5]} are its bucket, base offset, high watermark,
   * changelog offset and end offset, -1 where one does not apply, and the return value is its
   * partition or null) or {@link #POLLED_END} (a bounded scan is complete). The schema struct is
   * filled only when {@code haveSchema} is false or the batch's schema differs from the one
   * filled last; otherwise it stays released and the batch has the schema Java imported last.
   *
   * @param origin at least {@link #ORIGIN_LONGS} longs, overwritten
   */
  public static native String poll(
      long scanner, long timeoutMillis, long arrayAddress, long schemaAddress, boolean haveSchema, long[] origin);

  public static final int POLLED_NOTHING = 0;
  public static final int POLLED_BATCH = 1;
  public static final int POLLED_END = 2;
  /** The verdict plus bucket, base offset, high watermark, changelog offset, end offset. */
  public static final int ORIGIN_LONGS = 6;

  public static native void wakeup(long scanner);

  public static native void closeScanner(long scanner);

  public static native long openLookuper(
      long connection, String database, String table, String optionsJson);

  /**
   * Looks the keys up and blocks. Key batches cross as writes do ({@code keysSchema} 0: the
   * schema sent before under {@code keysSchemaId}); the answer's schema struct is filled only
   * when its schema id is not {@code answerSchemaHeld} (0: none held). Returns the answer's
   * schema id.
   */
  public static native int lookup(
      long lookuper,
      long keysArray,
      long keysSchema,
      int keysSchemaId,
      long resultArray,
      long resultSchema,
      int answerSchemaHeld);

  /** {@link #lookup}, completing {@code completion} with the answer's schema id (decimal). */
  public static native void lookupAsync(
      long lookuper,
      long keysArray,
      long keysSchema,
      int keysSchemaId,
      long resultArray,
      long resultSchema,
      int answerSchemaHeld,
      NativeCompletion completion);

  public static native void closeLookuper(long lookuper);

  /** Open native objects per kind, as JSON (leak checks). */
  public static native String openHandles();

  /** Imports a batch and exports it back (tests of the C Data Interface in both directions). */
  public static native void roundTripForTesting(
      long inArray, long inSchema, long outArray, long outSchema);

  /** Panics inside native code; tests use it to prove a panic becomes an exception. */
  public static native void panicForTesting(String message);
}
