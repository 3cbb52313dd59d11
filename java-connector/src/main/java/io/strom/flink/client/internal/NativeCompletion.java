package io.strom.flink.client.internal;

import io.strom.flink.client.StromException;
import java.util.concurrent.CompletableFuture;

/**
 * A future the native side completes from one of the client's runtime threads
 * (jni-bridge/src/completion.rs). Rust calls {@link #succeed} or {@link #fail}; the exception
 * is built here because JNI cannot find the connector's classes from a Rust-owned thread when
 * the connector lives in a child class loader.
 *
 * <p>Those runtime threads drive every call of the connection, so nothing slow may run on
 * them: the public API never hands this future out directly, only stages completed on
 * another executor.
 */
public final class NativeCompletion extends CompletableFuture<String> {

  /** Called by native code with the result (JSON, or null when the result is in C structs). */
  public void succeed(String value) {
    complete(value);
  }

  /** Called by native code; a null status means a closed handle. */
  public void fail(String status, String message) {
    completeExceptionally(
        status == null ? new IllegalStateException(message) : StromException.of(status, message));
  }
}
