package io.strom.flink.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.strom.flink.client.internal.NativeCompletion;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Test;

/** The Java half of the error mapping (the Rust half is tested in jni-bridge/src/errors.rs). */
class StromExceptionTest {

  @Test
  void eachActionableStatusHasItsOwnSubclass() {
    assertInstanceOf(StromNotFoundException.class, StromException.of("NOT_FOUND", "m"));
    assertInstanceOf(
        StromInvalidArgumentException.class, StromException.of("INVALID_ARGUMENT", "m"));
    assertInstanceOf(StromAlreadyExistsException.class, StromException.of("ALREADY_EXISTS", "m"));
    assertInstanceOf(
        StromFailedPreconditionException.class, StromException.of("FAILED_PRECONDITION", "m"));
    assertInstanceOf(StromDataLossException.class, StromException.of("DATA_LOSS", "m"));
    assertInstanceOf(StromUnavailableException.class, StromException.of("UNAVAILABLE", "m"));
    assertSame(StromException.class, StromException.of("RESOURCE_EXHAUSTED", "m").getClass());
  }

  @Test
  void keepsStatusAndNodeMessageApart() {
    StromException e = StromException.of("NOT_FOUND", "table shop.orders does not exist");
    assertEquals("NOT_FOUND", e.status());
    assertEquals("table shop.orders does not exist", e.nodeMessage());
    assertEquals("NOT_FOUND: table shop.orders does not exist", e.getMessage());
  }

  @Test
  void onlyTransientStatusesAreRetriable() {
    assertTrue(StromException.of("UNAVAILABLE", "down").isRetriable());
    assertTrue(StromException.of("ABORTED", "x").isRetriable());
    assertFalse(StromException.of("INVALID_ARGUMENT", "x").isRetriable());
    assertFalse(StromException.of("DATA_LOSS", "x").isRetriable());
  }

  @Test
  void nativeCompletionFailsWithTheTypedExceptionOrIllegalStateWithoutStatus() {
    NativeCompletion typed = new NativeCompletion();
    typed.fail("ALREADY_EXISTS", "database shop exists");
    ExecutionException e = org.junit.jupiter.api.Assertions.assertThrows(ExecutionException.class, typed::get);
    assertInstanceOf(StromAlreadyExistsException.class, e.getCause());

    NativeCompletion closed = new NativeCompletion();
    closed.fail(null, "the writer is closed");
    e = org.junit.jupiter.api.Assertions.assertThrows(ExecutionException.class, closed::get);
    assertInstanceOf(IllegalStateException.class, e.getCause());
    assertEquals("the writer is closed", e.getCause().getMessage());
  }
}
