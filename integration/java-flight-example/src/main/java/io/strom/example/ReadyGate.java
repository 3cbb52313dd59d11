package io.strom.example;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.stub.AbstractStub;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.apache.arrow.flight.OutboundStreamListener;

/**
 * Parks a DoPut/DoExchange writer until its gRPC stream is ready for another message, woken by
 * gRPC's own {@code onReady} callback.
 *
 * <p>Why: Arrow Java's {@code ClientStreamListener.putNext()} calls {@code waitUntilStreamReady()},
 * which on the client is {@code while (!isReady()) {}} — a core spinning at 100% for as long as
 * the server or the network is slower than the writer. Calling {@code putNext()} only once
 * {@code isReady()} is true never enters that loop. The obvious way to wait for that, {@code
 * writer.setOnReadyHandler(..)}, does not work on the client: the gRPC call has already started
 * when {@code startPut}/{@code doExchange} return, and gRPC then throws {@code
 * IllegalStateException("Cannot alter onReadyHandler after call started. Use
 * ClientResponseObserver")}. So the notification is taken one layer down: a gRPC {@link
 * ClientInterceptor} on the channel ({@link #INTERCEPTOR}) forwards {@code onReady} (and the end
 * of the call) to the gate that the call was started with. The gate rides on the call as an Arrow
 * {@code CallOption} (this class is one), so each call wakes only its own writer.
 *
 * <p>Use: build the channel with {@code .intercept(ReadyGate.INTERCEPTOR)}, pass a new gate to
 * {@code startPut}/{@code doExchange} among the call options, and call {@link
 * #awaitReady(OutboundStreamListener)} before every {@code putNext()}.
 */
public final class ReadyGate implements org.apache.arrow.flight.CallOptions.GrpcCallOption {
  private static final CallOptions.Key<ReadyGate> KEY = CallOptions.Key.create("strom-ready-gate");

  /** Add to the channel: wires every call that carries a gate to that gate. */
  public static final ClientInterceptor INTERCEPTOR = new Interceptor();

  private final ReentrantLock lock = new ReentrantLock();
  private final Condition changed = lock.newCondition();
  private boolean closed; // guarded by lock
  private volatile boolean attached; // set when INTERCEPTOR saw the call that carries this gate
  private long parks; // guarded by lock

  @Override
  public <T extends AbstractStub<T>> T wrapStub(T stub) {
    return stub.withOption(KEY, this);
  }

  // docs:begin gate
  /**
   * Returns once {@code writer.isReady()} (or once the call has ended: the next {@code putNext}
   * then fails fast and {@code getResult()} reports the status). Parks the thread meanwhile.
   *
   * @throws IllegalStateException if no {@code onReady} came within the timeout
   */
  public void awaitReady(OutboundStreamListener writer, long timeout, TimeUnit unit)
      throws InterruptedException {
    if (!attached) {
      // Without the interceptor nothing would ever wake this writer: fail now, not at the timeout.
      throw new IllegalStateException(
          "no call carries this gate: pass it to startPut/doExchange, on a channel built with"
              + " .intercept(ReadyGate.INTERCEPTOR)");
    }
    long remaining = unit.toNanos(timeout);
    lock.lock();
    try {
      // isReady() is read under the lock that signal() takes, so an onReady that lands between
      // the check and await() is not lost: signal() waits for await() to release the lock.
      while (!writer.isReady() && !closed) {
        if (remaining <= 0) {
          throw new IllegalStateException("the stream did not become ready within " + timeout + " " + unit);
        }
        parks++;
        remaining = changed.awaitNanos(remaining);
      }
    } finally {
      lock.unlock();
    }
  }
  // docs:end gate

  /** {@link #awaitReady(OutboundStreamListener, long, TimeUnit)} with a 60 s limit. */
  public void awaitReady(OutboundStreamListener writer) throws InterruptedException {
    awaitReady(writer, 60, TimeUnit.SECONDS);
  }

  /** How often a writer had to wait (for the example's report). */
  public long parks() {
    lock.lock();
    try {
      return parks;
    } finally {
      lock.unlock();
    }
  }

  private void signal(boolean end) {
    lock.lock();
    try {
      closed |= end;
      changed.signalAll();
    } finally {
      lock.unlock();
    }
  }

  // docs:begin interceptor
  private static final class Interceptor implements ClientInterceptor {
    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(
        MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
      ReadyGate gate = options.getOption(KEY);
      ClientCall<Q, R> call = next.newCall(method, options);
      if (gate == null) {
        return call; // a call without a gate (DoGet, DoAction, ...): nothing to wake
      }
      gate.attached = true;
      return new ForwardingClientCall.SimpleForwardingClientCall<>(call) {
        @Override
        public void start(Listener<R> listener, Metadata headers) {
          super.start(
              new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(listener) {
                @Override
                public void onReady() {
                  gate.signal(false);
                  super.onReady();
                }

                @Override
                public void onClose(Status status, Metadata trailers) {
                  // A failed or finished call never becomes ready again: release the writer.
                  gate.signal(true);
                  super.onClose(status, trailers);
                }
              },
              headers);
        }
      };
    }
  }
  // docs:end interceptor
}
