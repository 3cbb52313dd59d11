package io.strom.flink.client.internal;

import java.lang.ref.Cleaner;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongConsumer;

/**
 * A Java object owning one native handle. {@link #close()} frees it once; a {@link Cleaner}
 * frees it if the object becomes unreachable without being closed (a safety net against
 * leaks, not a substitute for close: it runs late, on the cleaner's thread).
 *
 * <p>After close the handle reads as 0, which the native side rejects with {@link
 * IllegalStateException}, so a use after close never touches freed memory.
 */
public abstract class NativeResource implements AutoCloseable {
  private static final Cleaner CLEANER = Cleaner.create();

  /** The handle and how to free it; must not refer to the owning object, or it never dies. */
  private static final class Handle implements Runnable {
    private final AtomicLong value;
    private final LongConsumer closer;

    Handle(long value, LongConsumer closer) {
      this.value = new AtomicLong(value);
      this.closer = closer;
    }

    @Override
    public void run() {
      long handle = value.getAndSet(0);
      if (handle != 0) {
        closer.accept(handle);
      }
    }
  }

  private final Handle handle;
  private final Cleaner.Cleanable cleanable;

  protected NativeResource(long handle, LongConsumer closer) {
    this.handle = new Handle(handle, closer);
    this.cleanable = CLEANER.register(this, this.handle);
  }

  /** The native handle; 0 once closed. */
  protected final long handle() {
    return handle.value.get();
  }

  public final boolean isClosed() {
    return handle() == 0;
  }

  /** Frees the native object; later calls do nothing. Failures of the final flush propagate. */
  @Override
  public void close() {
    cleanable.clean();
  }
}
